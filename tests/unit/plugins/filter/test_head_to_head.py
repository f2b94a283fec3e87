"""plugins/filter/head_to_head.py: ratios are taken within a round, failed rounds are left out, never guessed."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gcsfront.gke.plugins.filter.head_to_head import FilterModule, head_to_head

PAIR = [["preset", "local disk"]]


def wrk(target, rnd, rps, obj="File1", **extra):
    return dict(target=target, object=obj, tool="wrk", round=rnd, failed=False, errors=0, requests_per_second=rps,
                latency_ms={"p50": 0.2, "p99": 1.0}, **extra)


def vegeta(target, rnd, p50, p99, obj="File1"):
    return dict(target=target, object=obj, tool="vegeta", round=rnd, failed=False, errors=0,
                requests_per_second=1000.0, latency_ms={"p50": p50, "p99": p99})


def test_each_round_is_compared_with_itself_and_the_median_taken():
    records = [wrk("preset", 1, 900), wrk("local disk", 1, 1000),
               wrk("local disk", 2, 500), wrk("preset", 2, 480),
               wrk("preset", 3, 800), wrk("local disk", 3, 1000)]
    (row,) = head_to_head(records, PAIR)
    assert row == {"object": "File1", "tool": "wrk", "figure": "req/s", "target": "preset", "against": "local disk",
                   "rounds": 3, "ratios": [0.9, 0.96, 0.8], "median": 0.9, "low": 0.8, "high": 0.96}


def test_an_even_number_of_rounds_takes_the_mean_of_the_middle_two():
    records = [wrk("preset", n, rps) for n, rps in enumerate([90, 95], 1)] + [wrk("local disk", n, 100) for n in (1, 2)]
    assert head_to_head(records, PAIR)[0]["median"] == 0.925


def test_vegeta_compares_p50_and_p99_latency():
    records = [vegeta("preset", 1, 0.25, 2.0), vegeta("local disk", 1, 0.2, 1.0)]
    rows = head_to_head(records, PAIR)
    assert [(r["figure"], r["median"]) for r in rows] == [("p50 ms", 1.25), ("p99 ms", 2.0)]


def test_a_round_with_a_failed_or_erroring_run_is_left_out_but_counted():
    records = [wrk("preset", 1, 900), wrk("local disk", 1, 1000),
               dict(wrk("preset", 2, 10), failed=True), wrk("local disk", 2, 1000),
               dict(wrk("preset", 3, 10), errors=4), wrk("local disk", 3, 1000)]
    (row,) = head_to_head(records, PAIR)
    assert row["ratios"] == [0.9] and row["rounds"] == 3


def test_no_usable_round_gives_no_median_rather_than_a_made_up_one():
    records = [dict(wrk("preset", 1, 900), failed=True), wrk("local disk", 1, 1000)]
    (row,) = head_to_head(records, PAIR)
    assert row["ratios"] == [] and row["median"] is None and row["low"] is None


def test_rows_follow_objects_then_figures_then_pairs():
    records = []
    for obj in ("File1", "File2"):
        for target in ("preset", "local disk", "nocatalog"):
            records.append(wrk(target, 1, 100, obj=obj))
    rows = head_to_head(records, [["preset", "local disk"], ["preset", "nocatalog"]])
    assert [(r["object"], r["against"]) for r in rows] == [
        ("File1", "local disk"), ("File1", "nocatalog"), ("File2", "local disk"), ("File2", "nocatalog")]


@pytest.mark.parametrize("records, pairs, message", [
    ({"target": "x"}, PAIR, "must be a list of http_load records"),
    ([wrk("preset", 1, 1)], [["preset"]], "each pair must be [target, against]"),
    ([{"target": "preset", "object": "File1", "tool": "wrk"}], PAIR, "lacks its 'round' label"),
])
def test_bad_input_is_one_clear_error(records, pairs, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        head_to_head(records, pairs)


def test_the_filter_is_registered():
    assert FilterModule().filters()["head_to_head"] is head_to_head
