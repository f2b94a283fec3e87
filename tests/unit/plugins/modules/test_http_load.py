"""gcsfront.gke.http_load end to end: the real ab, wrk and vegeta against a loopback server started here.

Traffic goes only to the 127.0.0.1 server of the fixture below, and every load is small and short (at most a
couple of hundred requests or one second).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pathlib
import shutil
import subprocess
import threading

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
ANSIBLE = REPO / ".venv/bin/ansible"
MODULE = REPO / "plugins/modules/http_load.py"
BODY = b"0123456789"

# Run from the repo root so that ansible.cfg resolves gcsfront.gke; results as JSON for the test to read.
# The proxy variables point at a closed loopback port: the module must drop them (a tool that used them
# would fail), and no request can leave the machine either way.
ENV = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
           http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", all_proxy="http://127.0.0.1:9")


# The benchmark role's tools task says where it keeps vegeta (its cache directory and version): asked, not repeated.
TOOLS_PLAYBOOK = """\
- name: Build vegeta as the benchmark does and say where it is.
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Build (or find) vegeta.
      ansible.builtin.include_role:
        name: gcsfront.gke.benchmark
        tasks_from: tools
    - name: Say where.
      ansible.builtin.debug:
        msg: "VEGETA={{ _benchmark_vegeta }}"
"""


@pytest.fixture(scope="session")
def vegeta(tmp_path_factory):
    playbook = tmp_path_factory.mktemp("tools") / "tools.yml"
    playbook.write_text(TOOLS_PLAYBOOK)
    proc = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), str(playbook)], cwd=REPO, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=600)
    found = [line.split("VEGETA=", 1)[1].strip().strip('"') for line in proc.stdout.splitlines() if "VEGETA=" in line]
    assert proc.returncode == 0 and found, proc.stdout[-3000:]
    return need(found[0])


def need(path):
    if not (shutil.which(path) if "/" not in path else os.access(path, os.X_OK)):
        pytest.fail("%s is not installed: scripts/setup installs ab and wrk, scripts/test builds vegeta" % path)
    return path


@contextlib.contextmanager
def serving(handler):
    """A threaded HTTP server on a free loopback port, for the duration of the block; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server():
    """A loopback server: 200 with a 10-byte body, 404 under /missing; it counts the requests it gets."""
    hits = {"count": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as wrk and vegeta use it
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls

        def do_GET(self):  # noqa: N802 - the stdlib's name
            with lock:
                hits["count"] += 1
            if self.path.startswith("/missing"):
                status, body = 404, b"not found\n"
            else:
                status, body = 200, BODY
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if "keep-alive" in (self.headers.get("Connection") or "").lower():
                self.send_header("Connection", "keep-alive")  # ab -k (HTTP/1.0) reuses only on this answer
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with serving(Handler) as url:
        yield url, hits


def ansible(args, check=False):
    """`ansible localhost -m gcsfront.gke.http_load -a JSON`: (state, result) where result is None when SKIPPED."""
    argv = [str(ANSIBLE), "localhost", "-m", "gcsfront.gke.http_load", "-a", json.dumps(args)] + (["-C"] if check else [])
    proc = subprocess.run(argv, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          check=False, timeout=120)
    head, _sep, rest = proc.stdout.partition(" => ")
    state = head.strip().split(" | ")[-1].split()[0] if " | " in head else None
    assert state in ("SUCCESS", "FAILED!", "SKIPPED"), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (proc.returncode == 0) == (state != "FAILED!"), (proc.returncode, proc.stdout[-2000:])
    return state, (json.loads(rest) if rest else None)


def direct(args, tmp_path, check=False):
    """The module run as Ansible's module runner does, for what the ad-hoc output does not show (skipped results)."""
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check)}))
    env = dict(ENV, PYTHONPATH=str(REPO / "collections"))
    proc = subprocess.run([str(REPO / ".venv/bin/python"), str(MODULE), str(argfile)], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, timeout=120)
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def tool_args(request):
    """tool_args(tool, url, **extra): small bounded options of each tool (vegeta's path from the tools task)."""

    def make(tool, url, **extra):
        args = {"ab": dict(requests=200, concurrency=5), "wrk": dict(duration=1, concurrency=2, threads=1),
                "vegeta": dict(rate=50, duration=1)}[tool]
        if tool == "vegeta":
            args["executable"] = request.getfixturevalue("vegeta")
        need(args.get("executable") or tool)
        return dict(args, url=url, tool=tool, timeout=5, **extra)

    return make


def assert_sane(result):
    assert result["ran"] is True and result["changed"] is False and result["rc"] == 0
    assert result["requests"] > 0 and result["requests_per_second"] > 0
    assert result["duration_s"] > 0 and result["time_per_request_ms"] >= 0
    lat = result["latency_ms"]
    assert set(lat) <= {"mean", "p50", "p90", "p99", "p999", "max"} and "p999" not in lat
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert "stdout_tail" not in result and "stdout" not in result


@pytest.mark.parametrize("keepalive", [False, True])
def test_ab(server, keepalive, tool_args):
    base, hits = server
    state, r = ansible(tool_args("ab", base + "/", keepalive=keepalive))
    assert state == "SUCCESS", r
    assert_sane(r)
    assert (r["requests"], r["errors"], r["bytes"], r["status_codes"]) == (200, 0, 200 * len(BODY), {})
    assert hits["count"] == 200
    assert ("-k" in r["cmd"]) is keepalive and r["cmd"][-1] == base + "/"
    assert set(r["latency_ms"]) == {"mean", "p50", "p90", "p99", "max"}


def test_wrk(server, tool_args):
    base, hits = server
    state, r = ansible(tool_args("wrk", base + "/"))
    assert state == "SUCCESS", r
    assert_sane(r)
    assert r["errors"] == 0 and r["status_codes"] == {} and "bytes" not in r and r["read_bytes"] > 0
    assert hits["count"] >= r["requests"]  # wrk does not count the answers still on the way at the end
    assert set(r["latency_ms"]) == {"mean", "p50", "p90", "p99", "max"}


def test_vegeta(server, tool_args):
    base, hits = server
    state, r = ansible(tool_args("vegeta", base + "/"))
    assert state == "SUCCESS", r
    assert_sane(r)
    assert abs(r["requests"] - 50) <= 1 and r["status_codes"] == {"200": r["requests"]} and r["errors"] == 0
    assert "bytes" not in r and hits["count"] == r["requests"]  # -max-body 0: bodies are read, not kept
    assert "-output" in r["cmd"] and r["report_cmd"][-1] == r["cmd"][-1]
    assert not os.path.exists(r["cmd"][-1])  # the results file is gone


def test_vegeta_flood_of_distinct_paths(server, tool_args):
    """A closed loop of 4 workers sends 300 requests, each to its own path, and stops when they run out."""
    base, hits = server
    state, r = ansible(tool_args("vegeta", base + "/missing/n-", rate=0, max_workers=4, distinct_paths=300,
                                 duration=20))
    assert state == "SUCCESS", r
    assert r["requests"] == 300 == hits["count"] and r["status_codes"] == {"404": 300} and r["errors"] == 300
    print("300 distinct paths in %.3f s (the duration allowed 20 s)" % r["duration_s"])
    assert r["cmd"][r["cmd"].index("-rate") + 1] == "0" and "-lazy" in r["cmd"]
    assert not os.path.exists(r["cmd"][r["cmd"].index("-targets") + 1])  # the targets file is gone


def test_vegeta_flood_longer_than_its_duration_stops_at_the_duration(server, tool_args):
    """More paths than the duration lets it send: it stops at the duration, having read only what it sent."""
    base, hits = server
    state, r = ansible(tool_args("vegeta", base + "/missing/m-", rate=0, max_workers=2, distinct_paths=1000000,
                                 duration=1))
    assert state == "SUCCESS", r
    # Stopped by the duration, not by the paths: fewer sent than there were, each one counted by the server.
    assert 0 < r["requests"] < 1000000 and r["requests"] == hits["count"], r
    print("%d of 1000000 paths sent in %.3f s (duration 1 s)" % (r["requests"], r["duration_s"]))


@pytest.mark.parametrize("tool", ["ab", "wrk", "vegeta"])
def test_every_404_is_an_error(server, tool, tool_args):
    base, _hits = server
    args = tool_args(tool, base + "/missing")
    if tool == "ab":
        args.update(requests=50)
    if tool == "vegeta":
        args.update(rate=20)
    state, r = ansible(args)
    assert state == "SUCCESS", r
    assert r["requests"] > 0 and r["errors"] == r["requests"]
    if tool == "vegeta":
        assert r["status_codes"] == {"404": r["requests"]}


def test_pinned_to_a_cpu(server, tool_args):
    base, hits = server
    need("taskset")
    state, r = ansible(tool_args("ab", base + "/", cpus=[0], requests=20, concurrency=2))
    assert state == "SUCCESS", r
    i = r["cmd"].index("-c")
    assert r["cmd"][i - 1].endswith("taskset") and r["cmd"][i + 1] == "0" and hits["count"] == 20


def test_proxy_variables_are_unset_for_the_tool(server, tool_args):
    base, _hits = server
    args = tool_args("vegeta", base + "/", rate=5)
    state, r = ansible(args)
    assert state == "SUCCESS" and r["errors"] == 0, r
    env_at = r["cmd"].index(next(a for a in r["cmd"] if a.endswith("/env")))
    unset = set(r["cmd"][env_at + 2:r["cmd"].index(args["executable"]):2])
    assert {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "no_proxy"} <= unset


@pytest.mark.parametrize("tool", ["ab", "wrk", "vegeta"])
def test_check_mode_sends_nothing(server, tmp_path, tool, tool_args):
    base, hits = server
    args = tool_args(tool, base + "/")
    state, r = ansible(args, check=True)
    assert state == "SKIPPED" and r is None
    rc, r = direct(args, tmp_path, check=True)
    assert rc == 0 and r["ran"] is False and r["changed"] is False and r["skipped"] is True, r
    assert r["cmd"][0].endswith("timeout") and "requests" not in r and "rc" not in r
    assert hits["count"] == 0


def test_missing_executable_fails_with_one_line(server):
    base, hits = server
    state, r = ansible(dict(url=base + "/", tool="ab", executable="/nonexistent/ab", requests=10, concurrency=1))
    assert state == "FAILED!" and r["ran"] is False
    assert r["msg"] == "ab executable /nonexistent/ab is not an executable file"
    assert hits["count"] == 0


@pytest.mark.parametrize("args, needle", [
    (dict(url="https://127.0.0.1:1/", tool="ab"), "url must start with http://"),
    (dict(url="http://127.0.0.1:1/", tool="ab", requests=0), "requests must be in 1..100000"),
    (dict(url="http://127.0.0.1:1/", tool="wrk", duration=301), "duration must be in (0, 300]"),
    (dict(url="http://127.0.0.1:1/", tool="vegeta", rate=-5), "rate must be in 0..100000"),
    (dict(url="http://127.0.0.1:1/", tool="wrk", distinct_paths=5), "distinct_paths is for vegeta only"),
])
def test_bounds_fail_before_running(args, needle):
    state, r = ansible(args)
    assert state == "FAILED!" and needle in r["msg"] and "\n" not in r["msg"] and r["ran"] is False


def test_a_tool_error_fails_with_one_line(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    need("ab")
    rc, r = direct(dict(url="http://127.0.0.1:%d/" % port, tool="ab", requests=2, concurrency=1, timeout=2), tmp_path)
    assert rc != 0 and r["failed"] is True and r["ran"] is True and r["rc"] != 0
    assert r["msg"].startswith("ab against http://127.0.0.1:%d/ failed (rc %d): " % (port, r["rc"]))
    assert "Connection refused" in r["msg"] and "\n" not in r["msg"] and len(r["stdout_tail"]) <= 2000


@pytest.fixture
def counters(server):
    """A loopback stand-in for the GCS latency proxy's control port: POST /__proxy/reset zeroes, GET /__proxy/stats
    reads. Each request the load server (`server`) answers counts as one GCS read, as behind a mount without a
    cache; 3 token exchanges are always counted (the module must leave them out)."""
    _base, hits = server
    state = {"since": -1000, "resets": 0}  # 1000 reads before the first reset
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            if self.path != "/__proxy/reset":
                self.send_error(404)
                return
            with lock:
                state.update(since=hits["count"], resets=state["resets"] + 1)
            self.send_response(204)
            self.end_headers()

        def do_GET(self):  # noqa: N802 - the stdlib's name
            if self.path != "/__proxy/stats":
                self.send_error(404)
                return
            with lock:
                body = json.dumps({"requests": {"metadata": 0, "read": hits["count"] - state["since"], "token": 3}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    with serving(Handler) as url:
        state["url"] = url
        yield state


def test_the_record_counts_the_gcs_calls_of_the_run_only(server, counters, tool_args):
    """The counters are zeroed before the load (what came before is not counted) and read after it."""
    base, _hits = server
    args = tool_args("ab", base + "/", requests=20, concurrency=2, counters_url=counters["url"],
                     labels={"target": "preset", "object": "File1", "tool": "ab"})
    state, r = ansible(args)
    assert state == "SUCCESS", r
    record = r["record"]
    assert counters["resets"] == 1
    assert {k: record[k] for k in ("target", "object", "tool", "failed", "error")} == {
        "target": "preset", "object": "File1", "tool": "ab", "failed": False, "error": ""}
    assert record["requests"] == r["requests"] == 20 and record["latency_ms"] == r["latency_ms"]
    # Zeroed before the load (the 1000 earlier reads are gone), read after it (its 20); the tokens left out.
    assert record["gcs_calls"] == 20 and record["gcs_calls_by_kind"] == {"metadata": 0, "read": 20}
    assert record["gcs_calls_per_request"] == 1.0


def test_a_failed_run_returns_its_record(tmp_path, counters):
    """The tool fails (nothing listens): the record says so, with the GCS calls of the attempt (none)."""
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    need("ab")
    rc, r = direct(dict(url="http://127.0.0.1:%d/" % port, tool="ab", requests=2, concurrency=1, timeout=2,
                        labels={"target": "2016 configuration"}, counters_url=counters["url"]), tmp_path)
    assert rc != 0 and r["failed"] is True
    record = r["record"]
    assert record["target"] == "2016 configuration" and record["failed"] is True and record["error"] == r["msg"]
    assert record["requests"] == 0 and record["requests_per_second"] is None
    assert record["gcs_calls"] == 0 and record["gcs_calls_per_request"] is None


def test_a_run_without_counters_has_no_gcs_calls(server, tool_args):
    base, _hits = server
    state, r = ansible(tool_args("ab", base + "/", requests=10, concurrency=1))
    assert state == "SUCCESS", r
    assert r["record"]["gcs_calls"] is None and r["record"]["gcs_calls_per_request"] is None


def test_a_proxy_that_does_not_answer_fails_before_any_load(server, tool_args):
    import socket

    base, hits = server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state, r = ansible(tool_args("ab", base + "/", requests=10, concurrency=1,
                                 counters_url="http://127.0.0.1:%d" % port))
    assert state == "FAILED!" and r["msg"].startswith("cannot zero the GCS proxy's counters: POST http://127.0.0.1:")
    assert hits["count"] == 0 and r["ran"] is False
