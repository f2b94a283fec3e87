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


def test_https_by_name_to_an_address_checks_the_certificate_against_that_name(tmp_path):
    """request(server_name=...) presents the name (SNI), checks the certificate against it and the given CA, and
    sends it as Host: what curl --resolve NAME:PORT:ADDRESS does. Another name fails the check."""
    import http.server
    import ssl
    import subprocess
    import threading
    from urllib.error import URLError

    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"), "-days", "1",
                    "-subj", "/CN=www.gcsfront.test", "-addext", "subjectAltName=DNS:www.gcsfront.test"],
                   check=True, capture_output=True)
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen["host"] = self.headers["Host"]
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = "https://127.0.0.1:%d/file1.txt" % httpd.server_address[1]
    try:
        status, _headers, body = request(url, server_name="www.gcsfront.test", ca_path=str(tmp_path / "cert.pem"))
        assert (status, body, seen["host"]) == (200, b"ok", "www.gcsfront.test")
        with pytest.raises(URLError):
            request(url, server_name="other.gcsfront.test", ca_path=str(tmp_path / "cert.pem"))
        with pytest.raises(URLError):  # the system's CAs do not know this one
            request(url, server_name="www.gcsfront.test")
    finally:
        httpd.shutdown()
        httpd.server_close()
