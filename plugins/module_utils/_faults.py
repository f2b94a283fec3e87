# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""The fault benchmark's pure parts: a fixed-rate mix of request classes for vegeta, its per-class figures,
and pod samples folded into restarts and readiness transitions. No I/O here, so all of it is unit-tested."""

from __future__ import annotations

import json
import math

from datetime import datetime, timezone

from ansible_collections.gcsfront.gke.plugins.module_utils._load import LoadOutputError

# vegeta -lazy counts a worker that found no target left as an unanswered request.
NO_TARGETS = "no targets to attack"
# A 2xx whose body stopped short: Go's client reports the cut (Content-Length not reached) or a body
# that stalled past the timeout; vegeta then records status 0 with this error.
SHORT_BODY_MARKERS = ("unexpected EOF", "while reading body")
DISTINCT_DIGITS = 8
MAX_ERROR_MESSAGES = 10


def distinct_name(prefix, index):
    """The index-th distinct name of a prefix (also what gcs_objects writes)."""
    return "%s%0*d" % (prefix, DISTINCT_DIGITS, index)


def mix_problem(classes, duration):
    """Why a mix cannot run (a one-line message), or None. classes: [{name, rate, paths | distinct_prefix}]."""
    if not classes:
        return "mix must name at least one class"
    names = [c.get("name") for c in classes]
    if len(set(names)) != len(names) or not all(names):
        return "every class of the mix needs a name of its own: %s" % names
    for c in classes:
        if not isinstance(c.get("rate"), int) or isinstance(c.get("rate"), bool) or c["rate"] < 1:
            return "class %s: rate must be a whole number of requests per second >= 1" % c["name"]
        if bool(c.get("paths")) == bool(c.get("distinct_prefix")):
            return "class %s: give either paths (a list, cycled) or distinct_prefix (a new name each request)" % (
                c["name"])
    if duration != int(duration) or duration < 1:
        return "duration must be a whole number of seconds >= 1, not %s" % duration
    return None


def mix_schedule(classes, duration):
    """[(class name, path)] in send order for a run of `duration` seconds at the classes' summed rate: each class
    gets rate * duration requests spread evenly (its j-th request is due at j / rate seconds), so a class's share
    holds in every second. A paths class cycles its paths; a distinct_prefix class uses a new name each time."""
    events = []
    for order, c in enumerate(classes):
        for j in range(int(c["rate"] * duration)):
            if c.get("paths"):
                path = c["paths"][j % len(c["paths"])]
            else:
                path = distinct_name(c["distinct_prefix"], j)
            events.append((j / float(c["rate"]), order, c["name"], path))
    events.sort(key=lambda e: (e[0], e[1]))
    return [(name, path) for _due, _order, name, path in events]


def vegeta_mix_targets(base_url, schedule):
    """vegeta's http target format, one GET per scheduled request."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    return "".join("GET %s%s\n" % (base, path.lstrip("/")) for _name, path in schedule)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list, or None when it is empty."""
    if not sorted_values:
        return None
    rank = max(1, int(math.ceil(p / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


def _r(value):
    return None if value is None else round(float(value), 3)


def _class_figures(results):
    latencies = sorted(r["latency_ms"] for r in results)
    codes = {}
    messages = {}
    short = 0
    for r in results:
        codes[str(r["code"])] = codes.get(str(r["code"]), 0) + 1
        if r["error"]:
            messages[r["error"]] = messages.get(r["error"], 0) + 1
            if any(m in r["error"] for m in SHORT_BODY_MARKERS):
                short += 1
    ok = sum(n for code, n in codes.items() if 200 <= int(code) < 300)
    top = sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_ERROR_MESSAGES]
    non_2xx = {code: n for code, n in sorted(codes.items()) if not 200 <= int(code) < 300}
    return dict(
        requests=len(results), ok=ok, non_2xx=sum(non_2xx.values()), status_codes=non_2xx if non_2xx else {},
        all_status_codes=dict(sorted(codes.items())), short_bodies=short,
        ok_ratio=_r(ok / float(len(results))) if results else None,
        latency_ms=dict(p50=_r(percentile(latencies, 50)), p99=_r(percentile(latencies, 99)),
                        max=_r(latencies[-1]) if latencies else None,
                        mean=_r(sum(latencies) / len(latencies)) if latencies else None),
        # Non-2xx answers that came within the limit: a clean, fast refusal rather than a hang.
        non_2xx_max_ms=_r(max((r["latency_ms"] for r in results if not 200 <= r["code"] < 300), default=None)),
        error_messages=[dict(message=m[:200], count=n) for m, n in top],
    )


def parse_vegeta_json_lines(text):
    """vegeta encode -to json output: one result per line -> [{url, code, latency_ms, error, t}] (t: seconds since
    the first request was sent), without the -lazy placeholders of exhausted workers."""
    rows = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError as e:
            raise LoadOutputError("line %d of vegeta encode's output is not JSON (%s)" % (number, e)) from None
        if not isinstance(r, dict) or "code" not in r or "latency" not in r or "timestamp" not in r:
            raise LoadOutputError("line %d of vegeta encode's output has no code, latency or timestamp" % number)
        if (r.get("error") or "") == NO_TARGETS:
            continue
        rows.append(dict(url=r.get("url") or "", code=int(r["code"]), latency_ms=r["latency"] / 1e6,
                         error=r.get("error") or "", timestamp=r["timestamp"]))
    return rows


def rfc3339_seconds(stamp):
    """An RFC 3339 timestamp with up to nanoseconds -> seconds since the epoch (float), without dateutil."""
    date, _sep, clock = stamp.partition("T")
    offset = 0
    for sign in ("Z", "+", "-"):
        if sign in clock:
            clock, _sep, zone = clock.partition(sign)
            if sign != "Z" and zone:
                hours, _sep, minutes = zone.partition(":")
                offset = (int(hours) * 3600 + int(minutes or 0) * 60) * (1 if sign == "+" else -1)
            break
    whole, _sep, fraction = clock.partition(".")
    base = datetime.strptime(date + "T" + whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return base + (float("0." + fraction) if fraction else 0.0) - offset


def run_span(rows):
    """Seconds from the first request sent to the last answer."""
    if not rows:
        return 0.0
    stamps = [rfc3339_seconds(r["timestamp"]) for r in rows]
    return round(max(s + r["latency_ms"] / 1000.0 for s, r in zip(stamps, rows)) - min(stamps), 3)


def mix_figures(rows, classes, base_url):
    """Per-class figures, and a per-second timeline (requests and 2xx of each class), of parsed results."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    by_url = {}
    for c in classes:
        if c.get("paths"):
            for path in c["paths"]:
                by_url[base + path.lstrip("/")] = c["name"]
    # Longest first: one class's prefix may begin with another's (case-, case-missing-).
    prefixes = sorted(((base + c["distinct_prefix"].lstrip("/"), c["name"]) for c in classes
                       if c.get("distinct_prefix")), key=lambda pc: -len(pc[0]))

    def class_of(url):
        if url in by_url:
            return by_url[url]
        for prefix, name in prefixes:
            if url.startswith(prefix):
                return name
        return None

    start = min((rfc3339_seconds(r["timestamp"]) for r in rows), default=0.0)
    grouped = {c["name"]: [] for c in classes}
    timeline = {}
    for r in rows:
        name = class_of(r["url"])
        if name is None:
            continue
        grouped[name].append(r)
        second = int(rfc3339_seconds(r["timestamp"]) - start)
        slot = timeline.setdefault(second, {c["name"]: [0, 0] for c in classes})
        slot[name][0] += 1
        slot[name][1] += 1 if 200 <= r["code"] < 300 else 0
    return dict(
        started_at=round(start, 3) if rows else None,
        classes={name: _class_figures(results) for name, results in grouped.items()},
        timeline=[dict(t=second, **{name: dict(requests=v[0], ok=v[1]) for name, v in slot.items()})
                  for second, slot in sorted(timeline.items())],
    )


# --- pods ----------------------------------------------------------------------------------------------------

def pod_state(pod):
    """The parts of a Pod dict the watch follows: name, uid, ready, restarts (all containers, native sidecars
    included: they are init containers that keep running), terminating."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    containers = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    return dict(name=meta.get("name"), uid=meta.get("uid") or meta.get("name"), ready=ready, restarts=restarts,
                terminating=bool(meta.get("deletionTimestamp")))


def is_whole(states, expected):
    """Whether a listing has at least `expected` ready pods and none terminating (a rollout or a replacement done)."""
    return (sum(1 for s in states if s["ready"] and not s["terminating"]) >= expected
            and not any(s["terminating"] for s in states))


def fold_samples(samples, expected=None):
    """Fold [(t, [pod_state...])] samples (t in seconds since the watch began, ascending) into what happened.

    A flip is a change of a pod's Ready condition other than a new pod becoming ready for the first time and a
    terminating pod going unready. Restarts are the growth of each pod's restart count over the watch, a new pod's
    counted from 0.
    """
    pods = {}
    series = []
    for t, states in samples:
        current = {}
        for s in states:
            current[s["uid"]] = s
            p = pods.get(s["uid"])
            if p is None:
                new = bool(series)  # absent from the first sample: created during the watch
                pods[s["uid"]] = p = dict(name=s["name"], new=new, first_seen_s=round(t, 3), last_seen_s=round(t, 3),
                                          restarts_start=0 if new else s["restarts"], restarts_end=s["restarts"],
                                          ready=s["ready"], became_ready=None, ever_ready=s["ready"],
                                          transitions=[], terminating=s["terminating"], gone=False)
                if new and s["ready"]:
                    p["became_ready"] = round(t, 3)
                continue
            p["last_seen_s"] = round(t, 3)
            p["restarts_end"] = max(p["restarts_end"], s["restarts"])
            p["terminating"] = p["terminating"] or s["terminating"]
            if s["ready"] != p["ready"]:
                first_ready = s["ready"] and not p["ever_ready"]
                expected_change = (first_ready and p["new"]) or (not s["ready"] and s["terminating"])
                p["transitions"].append(dict(t=round(t, 3), ready=s["ready"], counted=not expected_change))
                if first_ready and p["became_ready"] is None:
                    p["became_ready"] = round(t, 3)
                p["ready"] = s["ready"]
                p["ever_ready"] = p["ever_ready"] or s["ready"]
        for uid, p in pods.items():
            if uid not in current and not p["gone"]:
                p["gone"] = True
                p["gone_s"] = round(t, 3)
        ready_now = sum(1 for s in current.values() if s["ready"] and not s["terminating"])
        if not series or series[-1][1] != ready_now or series[-1][2] != len(current):
            series.append((round(t, 3), ready_now, len(current)))
    live = [p for p in pods.values() if not p["gone"]]
    want = expected if expected is not None else (series[0][1] if series else 0)
    full_since = None
    for t, ready_now, _count in series:
        if ready_now >= want:
            if full_since is None:
                full_since = t
        else:
            full_since = None
    return dict(
        samples=len(samples),
        pods=sorted(pods.values(), key=lambda p: (p["first_seen_s"], p["name"] or "")),
        restarts=sum(p["restarts_end"] - p["restarts_start"] for p in pods.values()),
        flips=sum(1 for p in pods.values() for tr in p["transitions"] if tr["counted"]),
        new_pods=sum(1 for p in pods.values() if p["new"]),
        gone_pods=sum(1 for p in pods.values() if p["gone"]),
        min_ready=min((s[1] for s in series), default=0),
        ready_at_end=series[-1][1] if series else 0,
        expected_ready=want,
        # Since when `expected` pods have been ready without a dip (None: not at the end of the watch).
        all_ready_since_s=full_since,
        live_pods=len(live),
        ready_series=[list(s) for s in series],
    )
