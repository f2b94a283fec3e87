"""module_utils._http_check against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import threading

import pytest

from ansible_collections.gcsfront.gke.plugins.module_utils._http_check import compare, fetch_until, request


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def server():
    """A loopback server answering each path from a script of (status, body) answers; the last one repeats."""
    scripts = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            answers = scripts.get(self.path, [(404, b"no such object")])
            status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1], scripts
    httpd.shutdown()
    httpd.server_close()


def test_error_statuses_are_answers(server):
    base, scripts = server
    scripts["/gone"] = [(410, b"gone")]
    assert request(base + "/gone")[0::2] == (410, b"gone")


def test_fetch_retries_while_a_rollout_settles(server):
    base, scripts = server
    scripts["/file1.txt"] = [(503, b""), (404, b""), (200, b"0123456789")]
    t = FakeTime()
    status, body, attempts, last_error = fetch_until(base + "/file1.txt", 30, 1, monotonic=t.monotonic, sleep=t.sleep)
    assert (status, body, attempts, last_error) == (200, b"0123456789", 3, None)


def test_fetch_stops_at_once_on_a_status_that_will_not_change(server):
    base, scripts = server
    scripts["/private"] = [(403, b"forbidden")]
    t = FakeTime()
    status, _body, attempts, _err = fetch_until(base + "/private", 30, 1, monotonic=t.monotonic, sleep=t.sleep)
    assert (status, attempts) == (403, 1)


def test_fetch_reports_the_connection_error_on_timeout():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = FakeTime()
    status, _body, attempts, last_error = fetch_until("http://127.0.0.1:%d/" % port, 3, 1, timeout=2,
                                                      monotonic=t.monotonic, sleep=t.sleep)
    assert status is None and attempts == 4 and "refused" in last_error.lower()


def test_compare():
    assert compare(b"abc", b"abc") == (True, None)
    matched, message = compare(b"abc", b"abcd")
    assert not matched and "(3 bytes)" in message and "(4 bytes)" in message


def test_fetch_can_wait_for_a_404(server):
    base, scripts = server
    scripts["/missing"] = [(503, b""), (404, b"no such object")]
    t = FakeTime()
    status, _body, attempts, _err = fetch_until(base + "/missing", 30, 1, monotonic=t.monotonic, sleep=t.sleep,
                                                want=404)
    assert (status, attempts) == (404, 2)
