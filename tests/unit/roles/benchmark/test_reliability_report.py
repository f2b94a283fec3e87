"""roles/benchmark/files/reliability.py: each case's targets judged from its figures (met, missed, n/a)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
SPEC = importlib.util.spec_from_file_location("reliability", REPO / "roles/benchmark/files/reliability.py")
reliability = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(reliability)

THRESHOLDS = {"p99_factor": 2, "slow_p99_factor": 1.5, "answer_ms": 5000, "fresh_2xx_pct": 95, "errors_pct": 0.1,
              "recovery_s": 10, "ready_again_s": 30}


def figures(requests, ok, codes=None, p99=10.0, slowest_error=None):
    codes = codes or {}
    return {"requests": requests, "ok": ok, "non_2xx": requests - ok, "status_codes": codes,
            "all_status_codes": dict(codes, **({"200": ok} if ok else {})), "short_bodies": 0,
            "non_2xx_max_ms": slowest_error, "latency_ms": {"p50": 1.0, "p99": p99, "max": p99}}


def row(case, checks, warm=None, fresh=None, unknown=None, **extra):
    r = {"case": case, "target": "frontend", "checks": checks, "applies": True,
         "load": {"classes": {"warm": warm or figures(1000, 1000), "never_seen": fresh or figures(20, 20),
                              "unknown": unknown or figures(10, 0, {"404": 10})}},
         "pods": {"restarts": 0, "flips": 0, "min_ready": 3, "expected_ready": 3},
         "recovery": {"succeeded": True, "seconds": 0.0, "statuses": []}, "ready_again_s": 0}
    r.update(extra)
    return r


def judged(r, baseline_p99=10.0):
    results = {"thresholds": THRESHOLDS, "runs": [row("baseline", [], warm=figures(1000, 1000, p99=baseline_p99)), r]}
    return {check: (value, met) for check, _goal, value, met in reliability.evaluate(r, results)}


def test_half_of_gcs_failing_needs_95_percent_of_never_seen_objects_served():
    assert judged(row("gcs-503-half", ["fresh_most_2xx"], fresh=figures(40, 38, {"504": 2})))["fresh_most_2xx"] == (
        "2xx 38, 504 2 (95.0%)", True)
    assert judged(row("gcs-503-half", ["fresh_most_2xx"], fresh=figures(20, 18, {"504": 2})))["fresh_most_2xx"][1] is False


def test_a_killed_process_may_cost_at_most_a_tenth_of_a_percent_of_answers():
    ok = row("gcsfuse-killed", ["few_errors"], warm=figures(1990, 1989, {"502": 1}), fresh=figures(10, 10))
    assert judged(ok)["few_errors"] == ("1 of 2000 (0.05%)", True)
    bad = row("gcsfuse-killed", ["few_errors"], warm=figures(1000, 990, {"502": 10}))
    assert judged(bad)["few_errors"][1] is False


@pytest.mark.parametrize("check, p99, met", [
    ("warm_p99", 19.9, True), ("warm_p99", 20.1, False), ("warm_p99_slow", 14.9, True), ("warm_p99_slow", 15.1, False),
])
def test_warm_p99_is_judged_against_the_baseline_of_the_same_run(check, p99, met):
    assert judged(row("gcs-slow-10x", [check], warm=figures(1000, 1000, p99=p99)))[check][1] is met


def test_never_seen_errors_must_be_gateway_errors_within_the_bound():
    late = row("gcs-black-hole", ["fresh_answered"], fresh=figures(20, 2, {"504": 18}, slowest_error=5200.0))
    assert judged(late)["fresh_answered"][1] is False
    wrong = row("gcs-black-hole", ["fresh_answered"], fresh=figures(20, 19, {"404": 1}, slowest_error=10.0))
    assert judged(wrong)["fresh_answered"][1] is False
    fine = row("gcs-black-hole", ["fresh_answered"], fresh=figures(20, 2, {"504": 18}, slowest_error=3030.0))
    assert judged(fine)["fresh_answered"][1] is True


def test_a_check_that_does_not_apply_is_neither_met_nor_missed():
    r = row("catalog-killed", ["warm_all_2xx"], applies=False, process="catalog")
    assert judged(r)["warm_all_2xx"][1] is None


def test_ready_again_counts_from_the_end_of_the_fault():
    assert judged(row("pod-deleted", ["ready_again"], ready_again_s=29.0))["ready_again"][1] is True
    assert judged(row("pod-deleted", ["ready_again"], ready_again_s=None))["ready_again"][1] is False
