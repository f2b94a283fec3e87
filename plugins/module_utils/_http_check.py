# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""HTTP checks of a served object: fetch with retries, compare with the bucket's bytes."""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import time
from urllib.parse import urlsplit

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import clock

# Statuses worth retrying while a new rollout or a cold mount settles.
RETRY_STATUSES = (404, 500, 502, 503, 504)


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address, presenting server_name (SNI) and checking the certificate against it, as
    curl --resolve NAME:PORT:ADDRESS does: a LoadBalancer's certificate names a host, not its address."""

    def __init__(self, address, port, server_name, context, timeout):
        super().__init__(address, port, context=context, timeout=timeout)
        self._server_name = server_name

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)


def _request_by_name(url, method, headers, timeout, validate_certs, server_name, ca_path):
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_path)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    conn = _NamedHTTPSConnection(parts.hostname, parts.port or 443, server_name, context, timeout)
    try:
        conn.request(method, parts.path + ("?" + parts.query if parts.query else ""),
                     headers=dict(headers or {}, Host=server_name))
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    except (ssl.SSLError, ssl.CertificateError, http.client.HTTPException) as e:
        raise URLError(e) from None
    finally:
        conn.close()


def request(url, method="GET", headers=None, timeout=10, validate_certs=True, server_name=None, ca_path=None):
    """(status, headers, body) of one request; HTTP error statuses are answers, not exceptions.

    server_name: for an https URL to an address, the TLS server name (SNI, certificate check, Host header).
    ca_path: the CA bundle certificates are checked against (default: the system's).
    """
    if server_name and url.startswith("https:"):
        return _request_by_name(url, method, headers, timeout, validate_certs, server_name, ca_path)
    try:
        r = open_url(url, method=method, headers=headers or {}, timeout=timeout, validate_certs=validate_certs,
                     use_proxy=False, follow_redirects="none", ca_path=ca_path)
        return r.status, dict(r.headers), r.read()
    except HTTPError as e:
        return e.code, dict(e.headers or {}), e.read() or b""


def fetch_until(url, deadline_seconds, interval, timeout=10, validate_certs=True, monotonic=time.monotonic,
                sleep=time.sleep, want=200, **tls):
    """GET url until it answers want (or a status not worth retrying) or the time runs out.

    Returns (status, body, attempts, last_error). tls: server_name and ca_path, as request() takes them.
    """
    status, body, attempts, last_error = None, b"", 0, None
    for _elapsed in clock(deadline_seconds, interval, monotonic, sleep):
        attempts += 1
        try:
            status, _headers, body = request(url, timeout=timeout, validate_certs=validate_certs, **tls)
        except (URLError, OSError) as e:
            last_error = str(getattr(e, "reason", e))
            continue
        if status == want or status not in RETRY_STATUSES:
            break
    return status, body, attempts, last_error


def digest(data):
    return hashlib.sha256(data).hexdigest()


def compare(served, expected):
    """(matched, message) for the served body against the object's bytes."""
    a, b = digest(served), digest(expected)
    if a == b:
        return True, None
    return False, "sha256 %s (%d bytes) != %s (%d bytes)" % (a, len(served), b, len(expected))
