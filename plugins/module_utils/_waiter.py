# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""Waiting, after kubernetes.core's waiter: pure predicates and a monotonic clock."""

from __future__ import annotations

import time


def lb_address(service):
    """The first load-balancer address (ip, else hostname) of a Service dict, or None."""
    ingress = ((service or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    for entry in ingress:
        address = (entry or {}).get("ip") or (entry or {}).get("hostname")
        if address:
            return address
    return None


def daemon_ready(state):
    """The pid of a local daemon once it is ready, or None.

    state: pid (None while no live process runs the program), checked (whether it has a readiness check), answered
    (whether that check passed) and alive_for (seconds since the wait began). Without a check, a daemon alive for a
    second is taken as ready.
    """
    if state["pid"] is None:
        return None
    if state["checked"]:
        return state["pid"] if state["answered"] else None
    return state["pid"] if state["alive_for"] >= 1 else None


def gone(pid):
    """True once a process is gone (its pid is None)."""
    return pid is None


def clock(total, interval, monotonic=time.monotonic, sleep=time.sleep):
    """Yield the seconds elapsed, sleeping interval between yields, until total seconds have passed."""
    start = monotonic()
    while True:
        elapsed = monotonic() - start
        yield elapsed
        if elapsed >= total:
            return
        sleep(max(0.0, min(interval, total - elapsed)))


def wait(fetch, predicate, total, interval, monotonic=time.monotonic, sleep=time.sleep, transient=(Exception,)):
    """Call fetch() until predicate(result) is truthy or total seconds pass.

    Errors of the transient kinds are kept (as the last error) and retried: they may be passing
    network trouble. Returns (value, elapsed, last_error, attempts) where value is predicate's
    result, None on timeout.
    """
    last_error = None
    attempts = 0
    elapsed = 0.0
    for elapsed in clock(total, interval, monotonic, sleep):
        attempts += 1
        try:
            value = predicate(fetch())
        except transient as e:  # pylint: disable=broad-exception-caught
            last_error = e
            continue
        if value:
            return value, elapsed, last_error, attempts
    return None, elapsed, last_error, attempts
