#!/usr/bin/env python
"""Draw the benchmark's chart: throughput (wrk) and fixed-rate p99 latency (vegeta) per target, and the first
object's throughput alone and during each flood of missing names (when the run has floods).

Usage: chart.py RESULTS_JSON OUTPUT_PNG
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display: draw straight to a file
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position


def figure(results, tool, key):
    """{object: {target: value}} for one tool and one figure (None when the tool has no such figure)."""
    table = {}
    for run in results["runs"]:
        if run["tool"] == tool:
            value = run["latency_ms"].get(key) if key.startswith("p") else run.get(key)
            table.setdefault(run["object"], {})[run["target"]] = value
    return table


def bars(ax, table, title, ylabel):
    objects = list(table)
    targets = list(dict.fromkeys(t for row in table.values() for t in row))
    width = 0.8 / max(len(targets), 1)
    for i, target in enumerate(targets):
        values = [table[o].get(target) or 0 for o in objects]
        xs = [n + i * width for n in range(len(objects))]
        ax.bar(xs, values, width, label=target)
        for x, v in zip(xs, values):
            ax.annotate("%.3g" % v, (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks([n + width * (len(targets) - 1) / 2 for n in range(len(objects))], objects)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def floods(results):
    """{target: {"alone": rps, <flood kind>: rps}} of the first object, in the order of the runs."""
    table = {}
    for run in results.get("flood") or []:
        row = table.setdefault(run["target"], {"alone": run["baseline"]["requests_per_second"]})
        row["during " + run["kind"]] = run["flooded"]["requests_per_second"]
    return table


def main(src, dest):
    with open(src) as f:
        results = json.load(f)
    load = results["load"]
    flood_table = floods(results)
    fig, axes = plt.subplots(1, 3 if flood_table else 2, figsize=(16.5 if flood_table else 11, 4.5))
    left, right = axes[0], axes[1]
    if flood_table:
        bars(axes[2], flood_table, "%s during floods of missing names" % results["flood"][0]["object"],
             "requests/s (log)")
    bars(left, figure(results, "wrk", "requests_per_second"),
         "Throughput, wrk -c %s -d %ss" % (load["concurrency"], load["wrk_duration"]), "requests/s (log)")
    bars(right, figure(results, "vegeta", "p99"),
         "p99 at a fixed %s/s (vegeta)" % load["rate"], "ms (log)")
    fig.suptitle("gcsfront benchmark, %s mode, %s cores, %s" % (
        results["mode"], results["machine"]["cores"], results["date"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(dest, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
