"""module_utils._faults: the request mix, its figures per class, and pod samples folded into restarts and flips."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gcsfront.gke.plugins.module_utils._faults import (
    distinct_name, fold_samples, mix_figures, mix_problem, mix_schedule, parse_vegeta_json_lines, percentile,
    pod_state, rfc3339_seconds, run_span, vegeta_mix_targets)
from ansible_collections.gcsfront.gke.plugins.module_utils._load import LoadOutputError
from ansible_collections.gcsfront.gke.plugins.modules.gcs_objects import apply_all, object_names
from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import GcsError

WARM = {"name": "warm", "rate": 4, "paths": ["a.txt", "b.png"]}
FRESH = {"name": "fresh", "rate": 1, "distinct_prefix": "f/case-"}


def test_distinct_name_matches_eight_digits():
    assert distinct_name("f/case-", 7) == "f/case-00000007"


@pytest.mark.parametrize("classes, duration, problem", [
    ([], 5, "at least one class"),
    ([WARM, dict(WARM)], 5, "a name of its own"),
    ([dict(WARM, rate=0)], 5, "rate must be"),
    ([dict(WARM, distinct_prefix="x")], 5, "either paths"),
    ([{"name": "x", "rate": 1}], 5, "either paths"),
    ([WARM], 0, "duration must be"),
    ([WARM, FRESH], 5, None),
])
def test_mix_problem(classes, duration, problem):
    found = mix_problem(classes, duration)
    assert (found is None) if problem is None else (problem in found)


def test_schedule_gives_each_class_its_rate_in_every_second():
    schedule = mix_schedule([WARM, FRESH], 3)
    assert len(schedule) == 15
    # Every 5 requests (one second at 5/s) hold 4 warm and 1 fresh.
    for second in range(3):
        chunk = schedule[second * 5:(second + 1) * 5]
        assert [n for n, _p in chunk].count("fresh") == 1
    assert [p for n, p in schedule if n == "fresh"] == ["f/case-00000000", "f/case-00000001", "f/case-00000002"]
    assert [p for n, p in schedule if n == "warm"][:3] == ["a.txt", "b.png", "a.txt"]


def test_vegeta_targets():
    assert vegeta_mix_targets("http://h", [("warm", "/a.txt"), ("fresh", "f/x")]) == (
        "GET http://h/a.txt\nGET http://h/f/x\n")


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5], 99) == 5


def test_rfc3339_seconds_takes_nanoseconds_and_offsets():
    assert rfc3339_seconds("1970-01-01T00:00:01.500000000Z") == pytest.approx(1.5)
    assert rfc3339_seconds("1970-01-01T01:00:02+01:00") == pytest.approx(2.0)
    assert rfc3339_seconds("1970-01-01T00:00:02-00:30") == pytest.approx(1802.0)


def _line(url, code, ms, t, error=""):
    return json.dumps({"url": url, "code": code, "latency": int(ms * 1e6), "error": error,
                       "timestamp": "2026-11-29T22:00:%02d.%09dZ" % (int(t), int((t % 1) * 1e9))})


def test_figures_per_class_and_timeline():
    text = "\n".join([
        _line("http://h/a.txt", 200, 1.0, 0.0),
        _line("http://h/b.png", 200, 3.0, 0.2),
        _line("http://h/a.txt", 0, 5000.0, 1.1, "Get \"http://h/a.txt\": unexpected EOF"),
        _line("http://h/f/case-00000000", 503, 20.0, 0.5, "503 Service Unavailable"),
        _line("http://h/f/case-00000001", 200, 40.0, 1.5),
        _line("", 0, 0.0, 1.9, "no targets to attack"),
    ])
    rows = parse_vegeta_json_lines(text)
    assert len(rows) == 5
    figures = mix_figures(rows, [WARM, FRESH], "http://h/")
    warm, fresh = figures["classes"]["warm"], figures["classes"]["fresh"]
    assert (warm["requests"], warm["ok"], warm["non_2xx"], warm["status_codes"]) == (3, 2, 1, {"0": 1})
    assert warm["short_bodies"] == 1 and warm["latency_ms"]["max"] == 5000.0 and warm["non_2xx_max_ms"] == 5000.0
    assert fresh["status_codes"] == {"503": 1} and fresh["ok_ratio"] == 0.5
    assert fresh["error_messages"] == [{"message": "503 Service Unavailable", "count": 1}]
    assert figures["timeline"] == [
        {"t": 0, "warm": {"requests": 2, "ok": 2}, "fresh": {"requests": 1, "ok": 0}},
        {"t": 1, "warm": {"requests": 1, "ok": 0}, "fresh": {"requests": 1, "ok": 1}},
    ]
    assert run_span(rows) == pytest.approx(6.1, abs=0.01)
    assert figures["started_at"] == pytest.approx(rfc3339_seconds("2026-11-29T22:00:00Z"))


def test_a_prefix_inside_another_is_told_apart():
    unknown = {"name": "unknown", "rate": 1, "distinct_prefix": "f/case-missing-"}
    lines = [_line("http://h/f/case-missing-00000000", 404, 1.0, 0.0), _line("http://h/f/case-00000000", 200, 1.0, 0.1)]
    rows = parse_vegeta_json_lines("\n".join(lines))
    figures = mix_figures(rows, [FRESH, unknown], "http://h/")
    assert figures["classes"]["unknown"]["all_status_codes"] == {"404": 1}
    assert figures["classes"]["fresh"]["all_status_codes"] == {"200": 1}


def test_empty_class_has_no_latency():
    figures = mix_figures([], [WARM], "http://h")
    assert figures["classes"]["warm"]["requests"] == 0 and figures["classes"]["warm"]["latency_ms"]["p99"] is None


@pytest.mark.parametrize("text", ["not json", json.dumps({"code": 200})])
def test_unparsable_results(text):
    with pytest.raises(LoadOutputError):
        parse_vegeta_json_lines(text)


def _pod(name, ready=True, restarts=0, terminating=False):
    pod = {"metadata": {"name": name, "uid": "uid-" + name},
           "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                      "containerStatuses": [{"restartCount": restarts}, {"restartCount": 0}]}}
    if terminating:
        pod["metadata"]["deletionTimestamp"] = "2026-11-29T22:00:00Z"
    return pod_state(pod)


def test_pod_state():
    assert _pod("a", restarts=2) == dict(name="a", uid="uid-a", ready=True, restarts=2, terminating=False)
    assert pod_state({}) == dict(name=None, uid=None, ready=False, restarts=0, terminating=False)
    # A native sidecar (gcsfuse in sidecar mode) is an init container: its restarts count too.
    sidecar = {"metadata": {"name": "s"},
               "status": {"initContainerStatuses": [{"restartCount": 3}], "containerStatuses": [{"restartCount": 1}]}}
    assert pod_state(sidecar)["restarts"] == 4


def test_quiet_watch():
    folded = fold_samples([(0.0, [_pod("a"), _pod("b")]), (0.5, [_pod("a"), _pod("b")])])
    assert (folded["restarts"], folded["flips"], folded["min_ready"], folded["all_ready_since_s"]) == (0, 0, 2, 0.0)
    assert folded["ready_series"] == [[0.0, 2, 2]]


def test_flip_and_restart_are_counted():
    folded = fold_samples([
        (0.0, [_pod("a"), _pod("b")]),
        (1.0, [_pod("a", ready=False, restarts=1), _pod("b")]),
        (2.0, [_pod("a", ready=True, restarts=1), _pod("b")]),
    ])
    assert folded["restarts"] == 1 and folded["flips"] == 2 and folded["min_ready"] == 1
    assert folded["all_ready_since_s"] == 2.0


def test_a_replaced_pod_is_not_a_flip_but_its_restarts_count():
    folded = fold_samples([
        (0.0, [_pod("a"), _pod("b")]),
        (1.0, [_pod("a", ready=False, terminating=True), _pod("b"), _pod("c", ready=False)]),
        (2.0, [_pod("b"), _pod("c", ready=False, restarts=2)]),
        (3.0, [_pod("b"), _pod("c", restarts=2)]),
    ], expected=2)
    assert folded["flips"] == 0 and folded["restarts"] == 2
    assert folded["new_pods"] == 1 and folded["gone_pods"] == 1 and folded["min_ready"] == 1
    c = [p for p in folded["pods"] if p["name"] == "c"][0]
    assert c["became_ready"] == 3.0 and c["new"]
    assert folded["all_ready_since_s"] == 3.0


def test_not_whole_at_the_end():
    folded = fold_samples([(0.0, [_pod("a"), _pod("b")]), (1.0, [_pod("a"), _pod("b", ready=False)])])
    assert folded["all_ready_since_s"] is None and folded["ready_at_end"] == 1


def test_object_names_flat_or_spread_over_directories():
    assert object_names("p/", 2) == ["p/00000000", "p/00000001"]
    names = object_names("scale/", 2500, directories=1000)
    assert names[:2] == ["scale/d0000/00000000", "scale/d0001/00000001"] and names[1000] == "scale/d0000/00001000"
    assert len(set(names)) == 2500 and len({n.rsplit("/", 1)[0] for n in names}) == 1000


def test_apply_all_counts_and_raises_the_first_error():
    assert apply_all(lambda n: n != "x", ["a", "x", "b"], 2) == 2
    seen = []

    def action(name):
        seen.append(name)
        if name == "b":
            raise GcsError("boom", 500)
        return True

    with pytest.raises(GcsError):
        apply_all(action, ["a", "b", "c"], 1)
    assert sorted(seen) == ["a", "b", "c"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def wall(self):
        return 1000.0 + self.now


def test_probe_until_an_accepted_answer():
    from ansible_collections.gcsfront.gke.plugins.modules.http_until import probe

    answers = iter([(0, None, "refused"), (502, 10, ""), (200, 0, ""), (200, 5, "")])
    c = FakeClock()
    result = probe(lambda: next(answers), lambda status, length: status == 200 and length >= 1, 10, 0.5,
                   c.monotonic, c.sleep, c.wall)
    assert result["succeeded"] and result["attempts"] == 4 and result["elapsed"] == 1.5
    assert result["succeeded_at"] == 1001.5 and result["started_at"] == 1000.0
    assert result["statuses"] == {"0": 1, "502": 1, "200": 2} and result["last_error"] == "refused"


def test_probe_gives_up_at_the_timeout():
    from ansible_collections.gcsfront.gke.plugins.modules.http_until import probe

    c = FakeClock()
    result = probe(lambda: (503, 3, ""), lambda status, length: status == 200, 2, 0.5, c.monotonic, c.sleep, c.wall)
    assert not result["succeeded"] and result["succeeded_at"] is None and result["attempts"] == 5


def test_is_whole():
    from ansible_collections.gcsfront.gke.plugins.module_utils._faults import is_whole

    assert is_whole([_pod("a"), _pod("b")], 2)
    assert not is_whole([_pod("a"), _pod("b", ready=False)], 2)
    assert not is_whole([_pod("a"), _pod("b"), _pod("c", terminating=True)], 2)
