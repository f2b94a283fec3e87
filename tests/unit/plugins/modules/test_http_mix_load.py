"""gcsfront.gke.http_mix_load and gcsfront.gke.http_until end to end: the real vegeta against a loopback server
started here. Traffic goes only to that 127.0.0.1 server; every load is a second long at a few dozen requests.
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import subprocess
import threading

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
ANSIBLE = REPO / ".venv/bin/ansible"
VEGETA = "/root/.cache/gcsfront/bin/vegeta-v12.13.0/vegeta"
ENV = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
           http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", all_proxy="http://127.0.0.1:9")


@pytest.fixture
def server():
    """/warm/*: 200; /cut: a 200 whose body stops short; /fresh-N: 503 for even N, else 200; others 404.
    /flaky answers 503 twice, then 200."""
    seen = {"flaky": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):  # noqa: N802 - the stdlib's name
            if self.path == "/cut":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                self.close_connection = True
                return
            status = 404
            if self.path.startswith("/warm/"):
                status = 200
            elif self.path.startswith("/fresh-") and not self.path.startswith("/fresh-missing-"):
                status = 503 if int(self.path.rsplit("-", 1)[1]) % 2 == 0 else 200
            elif self.path == "/flaky":
                with lock:
                    seen["flaky"] += 1
                    status = 503 if seen["flaky"] <= 2 else 200
            body = b"0123456789"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def ansible(module, args):
    argv = [str(ANSIBLE), "localhost", "-m", "gcsfront.gke." + module, "-a", json.dumps(args)]
    proc = subprocess.run(argv, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          check=False, timeout=120)
    head, _sep, rest = proc.stdout.partition(" => ")
    state = head.strip().split(" | ")[-1].split()[0] if " | " in head else None
    assert state in ("SUCCESS", "FAILED!"), proc.stdout[-2000:] + proc.stderr[-2000:]
    return state, json.loads(rest)


def test_mix_figures_per_class(server):
    if not os.access(VEGETA, os.X_OK):
        pytest.fail("%s is not built: scripts/test builds vegeta" % VEGETA)
    state, r = ansible("http_mix_load", dict(url=server, duration=1, timeout=5, executable=VEGETA, mix=[
        dict(name="warm", rate=20, paths=["warm/a", "warm/b"]),
        dict(name="cut", rate=4, paths=["cut"]),
        dict(name="fresh", rate=6, distinct_prefix="fresh-"),
        dict(name="unknown", rate=2, distinct_prefix="fresh-missing-"),
    ]))
    assert state == "SUCCESS", r
    k = r["classes"]
    assert r["requests"] == 32 and r["changed"] is False and r["started_at"] > 0
    assert (k["warm"]["requests"], k["warm"]["ok"], k["warm"]["non_2xx"]) == (20, 20, 0)
    # A 200 whose body stops short is no answer for vegeta: counted as such, and as cut short.
    assert k["cut"]["ok"] == 0 and k["cut"]["status_codes"] == {"0": 4} and k["cut"]["short_bodies"] == 4, k["cut"]
    assert k["fresh"]["all_status_codes"] == {"200": 3, "503": 3}
    assert k["unknown"]["all_status_codes"] == {"404": 2}
    assert sum(s["warm"]["requests"] for s in r["timeline"]) == 20
    assert 0 <= k["warm"]["latency_ms"]["p50"] <= k["warm"]["latency_ms"]["p99"] <= k["warm"]["latency_ms"]["max"]


def test_mix_refuses_a_bad_mix(server):
    state, r = ansible("http_mix_load", dict(url=server, executable=VEGETA, mix=[dict(name="a", rate=1)]))
    assert state == "FAILED!" and "one of the following is required" in r["msg"], r


def test_until_waits_for_the_answer(server):
    state, r = ansible("http_until", dict(url=server + "flaky", timeout=10, interval=0.1, min_bytes=1))
    assert state == "SUCCESS" and r["succeeded"] and r["statuses"] == {"503": 2, "200": 1}, r
    assert r["succeeded_at"] >= r["started_at"]


def test_until_gives_up(server):
    state, r = ansible("http_until", dict(url=server + "nothing", timeout=0.5, interval=0.1, fail_on_timeout=False))
    assert state == "SUCCESS" and not r["succeeded"] and r["statuses"].get("404", 0) >= 2, r
    state, r = ansible("http_until", dict(url=server + "nothing", timeout=0.3, interval=0.1))
    assert state == "FAILED!" and "within" in r["msg"], r
