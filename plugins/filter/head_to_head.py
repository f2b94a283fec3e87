# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The head_to_head filter: ratios between targets measured in the same round (documented in head_to_head.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# What is compared for each tool: (figure, where it is in an http_load record).
FIGURES = {
    "wrk": [("req/s", ("requests_per_second",))],
    "vegeta": [("p50 ms", ("latency_ms", "p50")), ("p99 ms", ("latency_ms", "p99"))],
}


def _figure(record, path):
    value = record
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def head_to_head(records, pairs, digits=3):
    """One row per object, tool figure and pair [target, against]: each round's ratio target/against, median, range.

    A round counts only when both runs of the pair succeeded, without errors, with the figure measured.
    """
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise AnsibleFilterError("head_to_head: the input must be a list of http_load records")
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise AnsibleFilterError("head_to_head: each pair must be [target, against], got %r" % (pair,))
    runs = {}
    for record in records:
        for key in ("target", "object", "tool", "round"):
            if key not in record:
                raise AnsibleFilterError("head_to_head: a record lacks its %r label: %r" % (key, record))
        ok = not record.get("failed") and not record.get("errors")
        runs[(record["object"], record["tool"], record["round"], record["target"])] = record if ok else None
    objects = list(dict.fromkeys(r["object"] for r in records))
    rounds = sorted({r["round"] for r in records})
    rows = []
    for obj in objects:
        for tool, figures in FIGURES.items():
            for figure, path in figures:
                for target, against in pairs:
                    ratios = []
                    for n in rounds:
                        a, b = runs.get((obj, tool, n, target)), runs.get((obj, tool, n, against))
                        x = _figure(a, path) if a else None
                        y = _figure(b, path) if b else None
                        if x is not None and y:
                            ratios.append(round(x / y, digits))
                    if not any((obj, tool, n, target) in runs for n in rounds):
                        continue  # this tool did not run on this object
                    rows.append({
                        "object": obj, "tool": tool, "figure": figure, "target": target, "against": against,
                        "rounds": len(rounds), "ratios": ratios,
                        "median": round(_median(ratios), digits) if ratios else None,
                        "low": min(ratios) if ratios else None, "high": max(ratios) if ratios else None,
                    })
    return rows


class FilterModule:
    def filters(self):
        return {"head_to_head": head_to_head}
