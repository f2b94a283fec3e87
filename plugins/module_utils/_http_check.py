# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""HTTP checks of a served object: fetch with retries, compare with the bucket's bytes."""

from __future__ import annotations

import hashlib
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import clock

# Statuses worth retrying while a new rollout or a cold mount settles.
RETRY_STATUSES = (404, 500, 502, 503, 504)


def request(url, method="GET", headers=None, timeout=10, validate_certs=True):
    """(status, headers, body) of one request; HTTP error statuses are answers, not exceptions."""
    try:
        r = open_url(url, method=method, headers=headers or {}, timeout=timeout, validate_certs=validate_certs,
                     use_proxy=False, follow_redirects="none")
        return r.status, dict(r.headers), r.read()
    except HTTPError as e:
        return e.code, dict(e.headers or {}), e.read() or b""


def fetch_until(url, deadline_seconds, interval, timeout=10, validate_certs=True, monotonic=time.monotonic,
                sleep=time.sleep, want=200):
    """GET url until it answers want (or a status not worth retrying) or the time runs out.

    Returns (status, body, attempts, last_error).
    """
    status, body, attempts, last_error = None, b"", 0, None
    for _elapsed in clock(deadline_seconds, interval, monotonic, sleep):
        attempts += 1
        try:
            status, _headers, body = request(url, timeout=timeout, validate_certs=validate_certs)
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
