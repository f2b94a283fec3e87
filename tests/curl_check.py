"""curl as a client, for the unit and the integration tests (both put tests/ on sys.path to import this)."""

from __future__ import annotations

import subprocess


def curl(*args, netns=None):
    """One curl request, never through a proxy: (exit code, status, {header: value}, body, stderr).

    netns: run it inside that network namespace (a pod address is reachable only from the node's).
    The status is None when curl failed (exit code 35: the TLS handshake, 7: the connection).
    """
    inside = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.run([*inside, "curl", "-sS", "--noproxy", "*", "-m", "10", "-D", "-", "-o", "-", *args],
                          capture_output=True, timeout=20, check=False)
    head, _blank, body = proc.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if proc.returncode == 0 else None
    fields = {n.strip().lower(): v.strip() for n, _c, v in (line.partition(":") for line in lines[1:])}
    return proc.returncode, status, fields, body, proc.stderr.decode()
