"""Unit tests import the collection as Ansible does: ansible_collections.gcsfront.gke (collections/ symlink)."""

from __future__ import annotations

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "collections"))

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_render(out, extra_vars, inventory=None):
    """playbooks/render.yml into the directory out, with extra_vars (and an inventory); the CompletedProcess."""
    import json
    import subprocess

    return subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "playbooks/render.yml", "-e", "render_dir=%s" % out,
         "-e", json.dumps(extra_vars)] + (["-i", str(inventory)] if inventory else []),
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def render_frontend(tmp_path, extra_vars):
    """The frontend role's manifests as playbooks/render.yml writes them, with extra_vars: {kind: document}."""
    import yaml

    out = tmp_path / "render"
    proc = run_render(out, extra_vars)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {d["kind"]: d for d in yaml.safe_load_all((out / "frontend-workload.yaml").read_text()) if d}


# Ad-hoc runs of a module against a stand-in started on 127.0.0.1: any other address would go to a proxy on
# 127.0.0.1:9 that does not exist.
_NOWHERE = "http://127.0.0.1:9"
OFFLINE_ENV = {**os.environ, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_FORCE_COLOR": "0", "http_proxy": _NOWHERE, "HTTP_PROXY": _NOWHERE, "https_proxy": _NOWHERE,
               "HTTPS_PROXY": _NOWHERE, "all_proxy": _NOWHERE, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


def adhoc(module, args, *flags, env=None):
    """(state, result, other output) of one `ansible localhost -m module` run; the other output holds a --diff."""
    import json
    import re
    import subprocess

    argv = [str(REPO / ".venv/bin/ansible"), "localhost", "-m", module, "-a", json.dumps(args), *flags]
    proc = subprocess.run(argv, cwd=REPO, env=env or OFFLINE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False, timeout=120)
    m = re.search(r"^localhost \| (SUCCESS|CHANGED|FAILED!) => ", proc.stdout, re.M)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    result, end = json.JSONDecoder().raw_decode(proc.stdout, m.end())
    return m.group(1), result, proc.stdout[:m.start()] + proc.stdout[end:]


def stand_in(answer):
    """Start an HTTP server on 127.0.0.1 that answers every request with answer(method, path, body, headers), a
    (status, JSON-able) pair; body is the request's JSON, its text when it is not JSON, or None. Returns (base URL,
    stop)."""
    import http.server
    import json
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            status, data = answer(self.command, self.path, body, self.headers)
            data = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _serve  # noqa: N815 - the stdlib's names

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
    return "http://127.0.0.1:%d" % httpd.server_address[1], stop


def inventory_vars(name):
    """An inventory's group_vars/all, merged in file order."""
    import yaml

    merged = {}
    for path in sorted((REPO / "inventories" / name / "group_vars/all").iterdir()):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged
