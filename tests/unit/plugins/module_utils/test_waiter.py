"""module_utils._waiter: pure predicates and a clock that never reads the wall time."""

from __future__ import annotations

import pytest

from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import clock, daemon_ready, gone, lb_address, wait


class FakeTime:
    """A monotonic clock that only moves when sleep() is called."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("service, address", [
    (None, None),
    ({}, None),
    ({"status": {"loadBalancer": {}}}, None),
    ({"status": {"loadBalancer": {"ingress": []}}}, None),
    ({"status": {"loadBalancer": {"ingress": [{"ip": "10.254.254.18"}]}}}, "10.254.254.18"),
    ({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.invalid"}]}}}, "lb.example.invalid"),
    ({"status": {"loadBalancer": {"ingress": [{}, {"ip": "10.254.254.19"}]}}}, "10.254.254.19"),
])
def test_lb_address(service, address):
    assert lb_address(service) == address


def test_clock_stops_at_total_and_never_oversleeps():
    t = FakeTime()
    ticks = list(clock(5, 2, t.monotonic, t.sleep))
    assert ticks == [0.0, 2.0, 4.0, 5.0]
    assert t.sleeps == [2, 2, 1.0]


def test_wait_returns_the_first_truthy_value_with_its_elapsed_time():
    t = FakeTime()
    answers = iter([None, None, {"status": {"loadBalancer": {"ingress": [{"ip": "10.254.254.20"}]}}}])
    value, elapsed, last_error, attempts = wait(lambda: next(answers), lb_address, 60, 1, t.monotonic, t.sleep)
    assert (value, elapsed, last_error, attempts) == ("10.254.254.20", 2.0, None, 3)


def test_wait_retries_transient_errors_and_reports_the_last_on_timeout():
    t = FakeTime()

    def fetch():
        raise ConnectionError("refused %d" % len(t.sleeps))

    value, elapsed, last_error, attempts = wait(fetch, bool, 3, 1, t.monotonic, t.sleep)
    assert value is None and elapsed == 3.0 and attempts == 4
    assert str(last_error) == "refused 3"


def test_wait_lets_other_errors_through():
    t = FakeTime()

    def fetch():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait(fetch, bool, 3, 1, t.monotonic, t.sleep, transient=(ConnectionError,))


@pytest.mark.parametrize("state, pid", [
    ({"pid": None, "checked": True, "answered": False, "alive_for": 9}, None),
    ({"pid": None, "checked": False, "answered": False, "alive_for": 9}, None),
    ({"pid": 42, "checked": True, "answered": False, "alive_for": 9}, None),
    ({"pid": 42, "checked": True, "answered": True, "alive_for": 0}, 42),
    ({"pid": 42, "checked": False, "answered": False, "alive_for": 0.5}, None),
    ({"pid": 42, "checked": False, "answered": False, "alive_for": 1}, 42),
])
def test_daemon_ready(state, pid):
    assert daemon_ready(state) == pid


def test_gone():
    assert gone(None) and not gone(42)
