"""gcsfront.gke.local_daemon, run ad hoc on this machine with small programs (sleep, false, a Python listener on
127.0.0.1) in a temporary run_dir. The readiness predicate itself is tested in test_waiter.py."""

from __future__ import annotations

import socket
import sys

import pytest
from conftest import adhoc


@pytest.fixture(name="run_dir")
def fixture_run_dir(tmp_path):
    yield tmp_path
    for pid_file in tmp_path.glob("*.pid"):  # whatever a failed test left running
        adhoc("gcsfront.gke.local_daemon", {"name": pid_file.stem, "run_dir": str(tmp_path), "state": "stopped"})


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_start_is_ready_when_the_check_answers_then_idempotent_then_stopped(run_dir):
    port = _free_port()
    args = {"name": "listener", "run_dir": str(run_dir), "ready": {"tcp": "127.0.0.1:%d" % port}, "ready_timeout": 30,
            "command": [sys.executable, "-c", "import socket, time; s = socket.socket(); time.sleep(1); "
                        "s.bind(('127.0.0.1', %d)); s.listen(); time.sleep(600)" % port]}
    state, result, _output = adhoc("gcsfront.gke.local_daemon", args)
    assert (state, result["action"]) == ("CHANGED", "started"), result
    assert result["elapsed"] >= 1  # it waited for the listener, which binds after a second
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    state, again, _output = adhoc("gcsfront.gke.local_daemon", args)
    assert (state, again["action"], again["pid"]) == ("SUCCESS", "none", result["pid"])
    state, stopped, _output = adhoc("gcsfront.gke.local_daemon", dict(args, state="stopped"))
    assert (state, stopped["action"]) == ("CHANGED", "stopped")
    assert not (run_dir / "listener.pid").exists()


def test_a_program_that_exits_while_starting_is_reported_with_its_log(run_dir):
    args = {"name": "quits", "run_dir": str(run_dir), "ready_timeout": 30,
            "command": [sys.executable, "-c", "print('bad flag'); raise SystemExit(2)"]}
    state, result, _output = adhoc("gcsfront.gke.local_daemon", args)
    assert state == "FAILED!"
    assert result["msg"] == "quits exited while starting; see %s: bad flag" % (run_dir / "quits.log")


def test_a_daemon_never_ready_is_stopped_after_the_timeout(run_dir):
    args = {"name": "deaf", "run_dir": str(run_dir), "ready_timeout": 2, "ready": {"tcp": "127.0.0.1:%d" % _free_port()},
            "command": ["/bin/sleep", "600"]}
    state, result, _output = adhoc("gcsfront.gke.local_daemon", args)
    assert state == "FAILED!"
    assert result["msg"].startswith("deaf not ready within 2s; see %s: " % (run_dir / "deaf.log"))
    assert not (run_dir / "deaf.pid").exists()
