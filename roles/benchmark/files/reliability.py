#!/usr/bin/env python
"""The fault benchmark's report: evaluate each case's targets against its figures (met, missed, or n/a), write
them into the results, and draw the chart (2xx per second of warm and never-seen objects, fault shaded).

Usage: reliability.py RESULTS_JSON OUTPUT_PNG

RESULTS_JSON is rewritten with a "checks" list: {case, target, check, goal, value, met} (met is null when the
check does not apply or a figure is missing). The checks a case applies are named in its row's "checks".
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display: draw straight to a file
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

GATEWAY_ERRORS = {"502", "503", "504"}


def codes(figures):
    """'2xx 98, 503 2' from a class's figures."""
    parts = ["2xx %d" % figures.get("ok", 0)]
    parts += ["%s %d" % (code if code != "0" else "no answer", n) for code, n in sorted(figures.get("status_codes", {}).items())]
    return ", ".join(parts)


def baseline_p99(results, target):
    for row in results["runs"]:
        if row["case"] == "baseline" and row["target"] == target:
            return row["load"]["classes"]["warm"]["latency_ms"]["p99"]
    return None


def evaluate(row, results):
    """[(check, goal, value, met)] for one case and target."""
    th = results["thresholds"]
    classes = row["load"]["classes"]
    warm, fresh, unknown = classes["warm"], classes["never_seen"], classes["unknown"]
    pods = row["pods"]
    out = []
    for check in row["checks"]:
        if not row["applies"]:
            out.append((check, CHECKS_GOAL.get(check, check), "n/a: the target has no %s" % row["process"], None))
            continue
        if check == "warm_all_2xx":
            out.append((check, "warm objects 100% 2xx", codes(warm), warm["requests"] > 0 and warm["non_2xx"] == 0))
        elif check == "fresh_all_2xx":
            out.append((check, "never-seen objects 100% 2xx", codes(fresh), fresh["requests"] > 0 and fresh["non_2xx"] == 0))
        elif check == "fresh_most_2xx":
            share = 100.0 * fresh["ok"] / fresh["requests"] if fresh["requests"] else 0.0
            out.append((check, "never-seen objects >= %g%% 2xx" % th["fresh_2xx_pct"],
                        "%s (%.1f%%)" % (codes(fresh), share), fresh["requests"] > 0 and share >= th["fresh_2xx_pct"]))
        elif check == "few_errors":
            served = [warm, fresh]
            total = sum(c["requests"] for c in served)
            errors = sum(c["non_2xx"] for c in served)
            share = 100.0 * errors / total if total else 0.0
            out.append((check, "<= %g%% non-2xx (warm and never-seen)" % th["errors_pct"],
                        "%d of %d (%.2f%%)" % (errors, total, share), total > 0 and share <= th["errors_pct"]))
        elif check == "fresh_answered":
            bad = set(fresh["status_codes"]) - GATEWAY_ERRORS
            slowest = fresh["non_2xx_max_ms"]
            met = fresh["requests"] > 0 and not bad and (slowest is None or slowest <= th["answer_ms"])
            value = "%s; slowest error %s" % (codes(fresh), "-" if slowest is None else "%.0f ms" % slowest)
            out.append((check, "never-seen objects 2xx, or 502/503/504 within %d s" % (th["answer_ms"] // 1000), value,
                        met))
        elif check == "unknown_404":
            bad = set(unknown["all_status_codes"]) - {"404", "429"}
            out.append((check, "unknown names 404", ", ".join("%s %d" % kv for kv in sorted(
                unknown["all_status_codes"].items())), unknown["requests"] > 0 and not bad))
        elif check == "no_short_bodies":
            short = sum(c["short_bodies"] for c in classes.values())
            out.append((check, "no answer cut short", "%d cut short" % short, short == 0))
        elif check == "no_restarts":
            out.append((check, "0 restarts", "%d" % pods["restarts"], pods["restarts"] == 0))
        elif check == "no_flips":
            out.append((check, "0 readiness flips", "%d" % pods["flips"], pods["flips"] == 0))
        elif check in ("warm_p99", "warm_p99_slow"):
            factor = th["p99_factor" if check == "warm_p99" else "slow_p99_factor"]
            base = baseline_p99(results, row["target"])
            p99 = warm["latency_ms"]["p99"]
            goal = "warm p99 <= %gx baseline (%s ms)" % (factor, "-" if base is None else "%.1f" % base)
            met = None if base is None or p99 is None else p99 <= factor * base
            out.append((check, goal, "-" if p99 is None else "%.1f ms" % p99, met))
        elif check == "recovery":
            rec = row["recovery"]
            value = "%.1f s" % rec["seconds"] if rec["succeeded"] else "not within the wait (%s)" % rec["statuses"]
            out.append((check, "a never-seen object served <= %d s after the fault" % th["recovery_s"], value,
                        bool(rec["succeeded"]) and rec["seconds"] <= th["recovery_s"]))
        elif check == "others_serve":
            want = pods["expected_ready"] - 1
            out.append((check, "the other pods stay ready (>= %d ready)" % want, "min %d ready" % pods["min_ready"],
                        pods["min_ready"] >= want))
        elif check == "ready_again":
            again = row["ready_again_s"]
            out.append((check, "all pods ready again <= %d s after the fault" % th["ready_again_s"],
                        "not by the end of the watch" if again is None else "%.1f s" % again,
                        again is not None and again <= th["ready_again_s"]))
        else:
            out.append((check, check, "unknown check", None))
    return out


CHECKS_GOAL = {"warm_all_2xx": "warm objects 100% 2xx", "no_restarts": "0 restarts", "no_flips": "0 readiness flips"}


def chart(results, path):
    rows = results["runs"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    columns = 3
    lines = (len(cases) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(5 * columns, 2.6 * lines), squeeze=False, sharey=True)
    for ax in axes.flat[len(cases):]:
        ax.axis("off")
    for ax, case in zip(axes.flat, cases):
        shaded = False
        for row in (r for r in rows if r["case"] == case):
            start = row["load"]["started_at"]
            if start is None:
                continue
            if not shaded and row["fault"] != "none":
                began, ended = row["fault_began_at"] - start, row["fault_ended_at"] - start
                ax.axvspan(began, max(ended, began + 0.3), color="tab:red", alpha=0.15, lw=0)
                shaded = True
            for klass, style in (("warm", "-"), ("never_seen", "--")):
                points = [(s["t"], 100.0 * s[klass]["ok"] / s[klass]["requests"])
                          for s in row["load"]["timeline"] if s[klass]["requests"]]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, style, lw=1.2, label="%s, %s" % (row["target"], klass.replace("_", "-")))
        restarts = sum(r["pods"]["restarts"] for r in rows if r["case"] == case)
        ax.set_title("%s (restarts %d)" % (case, restarts), fontsize=9)
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes.flat[0].set_ylabel("2xx per second (%)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("seconds since the load began", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Answers 2xx per second during each case (fault shaded; %s mode)" % results["mode"], fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=110)


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        results = json.load(f)
    results["checks"] = [dict(case=row["case"], target=row["target"], check=check, goal=goal, value=value, met=met)
                         for row in results["runs"] for check, goal, value, met in evaluate(row, results)]
    with open(argv[1], "w") as f:
        json.dump(results, f, indent=4, sort_keys=False)
        f.write("\n")
    chart(results, argv[2])


if __name__ == "__main__":
    main(sys.argv)
