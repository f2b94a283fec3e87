# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""HTTP load tools (ab, wrk, vegeta): pure command lines and parsers of their output, for http_load."""

from __future__ import annotations

import json
import math
import re

from urllib.parse import urlsplit, urlunsplit

TOOLS = ("ab", "wrk", "vegeta")

# Removed from the load tool's environment with `env -u`, so that no request can go through a proxy.
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")

# Hard bounds, checked before anything runs: a typo must not turn into a load that does not stop.
MAX_REQUESTS = 100000
MAX_CONCURRENCY = 1000
MAX_DURATION = 300.0
MAX_RATE = 100000
MAX_WORKERS = 100000
MAX_DISTINCT_PATHS = 1000000
NO_TARGETS = "no targets to attack"
MAX_TIMEOUT = 120.0
AB_GUARD_CAP = 600
GUARD_SLACK = 30
KILL_AFTER = 5

_WRK_TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
_WRK_SIZE = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4, "PB": 1024 ** 5}
_AB_PROGRESS = re.compile(r"^(Completed|Finished) \d+ requests$")


class LoadOutputError(ValueError):
    """The output of a load tool lacks what the parser needs; the message names what is missing."""


def _r(value):
    return round(float(value), 3)


# --- options -------------------------------------------------------------------------------------------------

def url_problem(url):
    """Why url cannot be loaded (a one-line message), or None. Only plain http:// URLs are accepted."""
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "url must be an http:// URL without spaces or control characters: %r" % url
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # .port raises ValueError on a port out of range or not a number
            return "url has port 0: %s" % url
    except ValueError as e:
        return "url is not a valid URL (%s): %s" % (e, url)
    if parts.scheme.lower() != "http":
        return "url must start with http:// (only plain HTTP is supported): %s" % url
    if not parts.hostname:
        return "url has no host: %s" % url
    return None


def normalize_url(url):
    """The URL with an empty path written as '/' (ab refuses a URL without a path)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/")) if not parts.path else url


def whole_seconds(seconds):
    """ab's -s and wrk's --timeout/-d take whole seconds: round up."""
    return int(math.ceil(seconds))


def bounds_problem(tool, requests=500, concurrency=10, duration=5.0, threads=1, rate=100, max_workers=64,
                   timeout=10.0, distinct_paths=0):
    """The first bound the options of `tool` break, as a one-line message, or None."""
    if not 0 < timeout <= MAX_TIMEOUT:
        return "timeout must be in (0, %g] seconds, not %g" % (MAX_TIMEOUT, timeout)
    if distinct_paths and tool != "vegeta":
        return "distinct_paths is for vegeta only, not %s" % tool
    if tool == "ab":
        if not 1 <= requests <= MAX_REQUESTS:
            return "requests must be in 1..%d, not %d" % (MAX_REQUESTS, requests)
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            return "concurrency must be in 1..%d, not %d" % (MAX_CONCURRENCY, concurrency)
        if concurrency > requests:
            return "concurrency (%d) must not exceed requests (%d) for ab" % (concurrency, requests)
        return None
    if not 0 < duration <= MAX_DURATION:
        return "duration must be in (0, %g] seconds, not %g" % (MAX_DURATION, duration)
    if tool == "wrk":
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            return "concurrency must be in 1..%d, not %d" % (MAX_CONCURRENCY, concurrency)
        if not 1 <= threads <= concurrency:
            return "threads must be in 1..concurrency (%d) for wrk, not %d" % (concurrency, threads)
        if duration != int(duration):
            return "wrk takes whole seconds: duration must be a whole number, not %g" % duration
        return None
    if tool == "vegeta":
        if not 0 <= rate <= MAX_RATE:
            return "rate must be in 0..%d requests per second (0: as fast as max_workers allow), not %d" % (
                MAX_RATE, rate)
        if not 1 <= max_workers <= MAX_WORKERS:
            return "max_workers must be in 1..%d, not %d" % (MAX_WORKERS, max_workers)
        if rate == 0 and max_workers > MAX_CONCURRENCY:
            return "max_workers must be in 1..%d with rate 0 (a closed loop), not %d" % (MAX_CONCURRENCY, max_workers)
        if not 0 <= distinct_paths <= MAX_DISTINCT_PATHS:
            return "distinct_paths must be in 0..%d, not %d" % (MAX_DISTINCT_PATHS, distinct_paths)
        return None
    return "tool must be one of %s, not %s" % (", ".join(TOOLS), tool)


def cpus_problem(cpus, allowed=None):
    """Why the CPU list cannot pin the generator (a one-line message), or None."""
    bad = [c for c in cpus if c < 0 or (allowed is not None and c not in allowed)]
    if bad:
        return "cpus %s not available to this process (allowed: %s)" % (
            ",".join(str(c) for c in bad), ",".join(str(c) for c in sorted(allowed or ())) or "none")
    return None


def guard_seconds(tool, requests=500, concurrency=10, duration=5.0, timeout=10.0):
    """Wall-clock limit for one run: the longest a bounded run can take, plus slack."""
    if tool == "ab":
        return int(math.ceil(min(AB_GUARD_CAP, requests * whole_seconds(timeout) / float(concurrency) + GUARD_SLACK)))
    if tool == "wrk":
        return int(math.ceil(duration + whole_seconds(timeout) + GUARD_SLACK))
    return int(math.ceil(duration + timeout + GUARD_SLACK))


# --- command lines ---------------------------------------------------------------------------------------------

def ab_argv(executable, url, requests, concurrency, timeout, keepalive=False):
    """ApacheBench: a closed loop of `requests` requests by `concurrency` clients."""
    argv = [executable, "-n", str(requests), "-c", str(concurrency)]
    if keepalive:
        argv.append("-k")
    return argv + ["-s", str(whole_seconds(timeout)), url]


def wrk_argv(executable, url, threads, concurrency, duration, timeout):
    """wrk: a closed loop of `concurrency` connections for `duration` seconds, with the latency distribution."""
    return [executable, "-t", str(threads), "-c", str(concurrency), "-d", "%ds" % whole_seconds(duration),
            "--latency", "--timeout", "%ds" % whole_seconds(timeout), url]


def _go_seconds(seconds):
    return "%ss" % ("%d" % seconds if seconds == int(seconds) else repr(float(seconds)))


def vegeta_attack_argv(executable, rate, duration, timeout, max_workers, output, targets=None):
    """vegeta attack: an open loop at a fixed rate (coordinated-omission safe), or with rate 0 a closed loop of
    max_workers workers. Targets come on stdin, or from the file `targets`, read as needed (-lazy): the attack ends
    when they run out. (A file, not a pipe: vegeta stops reading at the duration, and a writer would get EPIPE.)"""
    argv = [executable, "attack", "-rate", "%d/1s" % rate if rate else "0", "-duration", _go_seconds(duration),
            "-timeout", _go_seconds(timeout)]
    if not rate:
        argv += ["-workers", str(max_workers)]
    argv += ["-max-workers", str(max_workers), "-keepalive=true",
             # Keep no bodies in the results file: at 1000/s for 20 s a 300 KB object would be 6 GB.
             "-max-body", "0", "-output", output]
    return argv + ["-lazy", "-targets", targets] if targets else argv


def vegeta_report_argv(executable, results):
    return [executable, "report", "-type=json", results]


def vegeta_target(url):
    """The attack's stdin: one target in vegeta's http format."""
    return "GET %s\n" % url


def vegeta_distinct_targets(url, count):
    """The targets of `count` distinct paths, as lines of vegeta's http format: the URL with 0, 1, ... count - 1
    appended (8 digits)."""
    return ("GET %s%08d\n" % (url, i) for i in range(count))


def _drop_exhausted(figures, sent_at_most, errors, seconds):
    """vegeta -lazy counts each worker that found no target left as a request without an answer (status 0,
    error "no targets to attack"); take those out of figures that cannot hold more than sent_at_most."""
    extra = figures["requests"] - sent_at_most
    if extra <= 0 or NO_TARGETS not in errors:
        return figures
    codes = dict(figures["status_codes"])
    dropped = min(extra, codes.get("0", 0))
    if dropped:
        codes["0"] -= dropped
        if not codes["0"]:
            del codes["0"]
    requests = figures["requests"] - dropped
    return dict(figures, requests=requests, errors=figures["errors"] - dropped, status_codes=codes,
                requests_per_second=_r(requests / seconds if seconds > 0 else 0.0))


def guarded(argv, limit, timeout_bin="timeout", env_bin="env", taskset_bin="taskset", cpus=None):
    """argv under a wall-clock guard, without proxy variables, optionally pinned to CPUs.

    `timeout --kill-after` ends a run that does not stop by itself (a hung connection, a tool bug): a load
    loop must never outlive the task. `env -u` removes the proxy variables rather than setting them empty,
    since an empty value is not "unset" for every HTTP client. env and taskset exec the next program, so
    timeout's signal reaches the tool itself.
    """
    prefix = [timeout_bin, "--kill-after=%d" % KILL_AFTER, str(limit), env_bin]
    for name in PROXY_VARIABLES:
        prefix += ["-u", name]
    if cpus:
        prefix += [taskset_bin, "-c", ",".join(str(c) for c in cpus)]
    return prefix + list(argv)


def failure_line(stdout, stderr, limit=300):
    """The first meaningful line of stderr (ab's progress lines skipped), else of stdout."""
    for text in (stderr or "", stdout or ""):
        for line in text.splitlines():
            line = line.strip()
            if line and not _AB_PROGRESS.match(line):
                return line[:limit]
    return "(no output)"


# --- units -----------------------------------------------------------------------------------------------------

def wrk_duration_to_ms(text):
    """wrk's time, e.g. '850.00us', '1.23ms', '2.00s', '1.5m', in milliseconds."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)\s*$", text or "")
    if not m:
        raise LoadOutputError("not a wrk duration (number with us, ms, s, m or h): %r" % text)
    return _r(float(m.group(1)) * _WRK_TIME_MS[m.group(2)])


def wrk_size_to_bytes(text):
    """wrk's size, e.g. '100B', '512.00KB', '1.21MB', '10.5GB', in bytes (wrk's units are 1024-based)."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|PB)\s*$", text or "")
    if not m:
        raise LoadOutputError("not a wrk size (number with B, KB, MB, GB, TB or PB): %r" % text)
    return int(round(float(m.group(1)) * _WRK_SIZE[m.group(2)]))


# --- parsers -----------------------------------------------------------------------------------------------------

def _need(pattern, text, what, flags=re.M):
    m = re.search(pattern, text, flags)
    if not m:
        raise LoadOutputError("no %s in the output" % what)
    return m


def _count(pattern, text):
    m = re.search(pattern, text, re.M)
    return int(m.group(1)) if m else 0


def parse_ab(text):
    """Figures of an ApacheBench 2.3 report."""
    text = text or ""
    requests = int(_need(r"^Complete requests:\s+(\d+)", text, "'Complete requests' line").group(1))
    failed = int(_need(r"^Failed requests:\s+(\d+)", text, "'Failed requests' line").group(1))
    non_2xx = _count(r"^Non-2xx responses:\s+(\d+)", text)
    taken = float(_need(r"^Time taken for tests:\s+([\d.]+) seconds", text, "'Time taken for tests' line").group(1))
    rps = float(_need(r"^Requests per second:\s+([\d.]+)", text, "'Requests per second' line").group(1))
    per_request = float(_need(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$", text,
                              "'Time per request ... (mean)' line").group(1))
    body = int(_need(r"^HTML transferred:\s+(\d+) bytes", text, "'HTML transferred' line").group(1))
    latency = {}
    total = re.search(r"^Total:\s+\d+\s+(\d+)\s", text, re.M)  # Connection Times: min mean [+/-sd] median max
    if total:
        latency["mean"] = _r(total.group(1))
    table = text.split("Percentage of the requests served within a certain time (ms)", 1)
    if len(table) == 2:
        percents = dict(re.findall(r"^\s*(\d+)%\s+(\d+)", table[1], re.M))
        for percent, key in (("50", "p50"), ("90", "p90"), ("99", "p99"), ("100", "max")):
            if percent in percents:
                latency[key] = _r(percents[percent])
    return dict(
        requests=requests,
        # ab counts a non-2xx answer whose length differs from the first answer's twice (Failed: Length and
        # Non-2xx); errors never exceed the requests.
        errors=min(requests, failed + non_2xx),
        requests_per_second=_r(rps),
        time_per_request_ms=_r(per_request),
        latency_ms=latency,
        status_codes={},
        bytes=body,
        duration_s=_r(taken),
    )


def parse_wrk(text):
    """Figures of a wrk 4 report run with --latency."""
    text = text or ""
    header = _need(r"^\s*(\d+) requests in (\S+), (\S+) read", text, "'N requests in T, S read' line")
    rps = float(_need(r"^Requests/sec:\s+([\d.]+)", text, "'Requests/sec' line").group(1))
    line = _need(r"^\s*Latency\s+(\d[\d.]*[a-z]+)\s+\S+\s+(\d[\d.]*[a-z]+)", text, "'Latency' line of the thread stats")
    mean, top = wrk_duration_to_ms(line.group(1)), wrk_duration_to_ms(line.group(2))
    latency = {"mean": mean}
    distribution = text.split("Latency Distribution", 1)
    if len(distribution) == 2:
        for percent, value in re.findall(r"^\s*(\d+(?:\.\d+)?)%\s+(\S+)", distribution[1], re.M):
            key = {50.0: "p50", 90.0: "p90", 99.0: "p99", 99.9: "p999"}.get(float(percent))
            if key:
                latency[key] = wrk_duration_to_ms(value)
    latency["max"] = top
    socket = re.search(r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text, re.M)
    errors = sum(int(n) for n in socket.groups()) if socket else 0
    errors += _count(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", text)
    return dict(
        requests=int(header.group(1)),
        errors=errors,
        requests_per_second=_r(rps),
        time_per_request_ms=mean,
        latency_ms=latency,
        status_codes={},
        read_bytes=wrk_size_to_bytes(header.group(3)),
        duration_s=_r(wrk_duration_to_ms(header.group(2)) / 1000.0),
    )


def parse_vegeta_report(json_text, sent_at_most=None):
    """Figures of `vegeta report -type=json` (times in nanoseconds). With sent_at_most (the number of targets of a
    -lazy attack), the workers that found no target left are not counted as requests."""
    try:
        report = json.loads(json_text or "")
    except ValueError as e:
        raise LoadOutputError("no JSON report in the output (%s)" % e) from None
    if not isinstance(report, dict):
        raise LoadOutputError("no JSON object in the output")
    if not isinstance(report.get("latencies"), dict):
        raise LoadOutputError("no 'latencies' object in the JSON report")
    for key in ("requests", "duration", "wait"):
        if not isinstance(report.get(key), (int, float)) or isinstance(report.get(key), bool):
            raise LoadOutputError("no '%s' number in the JSON report" % key)
    lat = report["latencies"]
    latency = {}
    for source, key in (("mean", "mean"), ("50th", "p50"), ("90th", "p90"), ("99th", "p99"), ("99.9th", "p999"),
                        ("max", "max")):
        if isinstance(lat.get(source), (int, float)):
            latency[key] = _r(lat[source] / 1e6)
    if "mean" not in latency:
        raise LoadOutputError("no 'latencies.mean' in the JSON report")
    codes = {str(k): int(v) for k, v in (report.get("status_codes") or {}).items()}
    requests = int(report["requests"])
    ok = sum(n for code, n in codes.items() if code.isdigit() and 200 <= int(code) < 300)
    seconds = (report["duration"] + report["wait"]) / 1e9
    figures = dict(
        requests=requests,
        errors=requests - ok,
        requests_per_second=_r(requests / seconds if seconds > 0 else 0.0),
        time_per_request_ms=latency["mean"],
        latency_ms=latency,
        status_codes=codes,
        duration_s=_r(seconds),
    )
    if sent_at_most is None:
        return figures
    return _drop_exhausted(figures, sent_at_most, [str(e) for e in report.get("errors") or []], seconds)


# --- the record ----------------------------------------------------------------------------------------------

def gcs_calls_by_kind(stats):
    """The GCS calls counted by the GCS latency proxy, from its /__proxy/stats ({"requests": {kind: count}}). Its
    token exchanges are not GCS calls and are left out."""
    requests = stats.get("requests") if isinstance(stats, dict) else None
    if not isinstance(requests, dict):
        raise LoadOutputError("no 'requests' object in the proxy's stats")
    return {str(kind): int(n) for kind, n in requests.items() if kind != "token"}


def finished_record(labels, figures=None, error="", gcs_calls=None):
    """One run as results.json keeps it: the labels, whether it failed and why, its figures (empty or None when it
    failed), and with the proxy's counters the GCS calls by kind, in all and per request served."""
    figures = figures or {}
    failed = bool(error)
    record = dict(labels or {})
    record.update(
        failed=failed,
        error=error,
        requests=figures.get("requests", 0),
        errors=figures.get("errors"),
        requests_per_second=figures.get("requests_per_second"),
        time_per_request_ms=figures.get("time_per_request_ms"),
        latency_ms=figures.get("latency_ms", {}),
        status_codes=figures.get("status_codes", {}),
        duration_s=figures.get("duration_s"),
        gcs_calls=None,
        gcs_calls_by_kind=None,
        gcs_calls_per_request=None,
    )
    if gcs_calls is not None:
        total = sum(gcs_calls.values())
        record.update(gcs_calls=total, gcs_calls_by_kind=dict(gcs_calls))
        if not failed:
            record["gcs_calls_per_request"] = round(total / max(record["requests"], 1), 4)
    return record
