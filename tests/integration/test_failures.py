"""Bring-up failures stop with one clear line naming the cause, before anything changes (issue: local substrate).

These run against the live substrate: each failing run must leave it exactly as healthy as it was.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from conftest import REPO, recap, run_playbook


def _failure_lines(output):
    """ansible-core 2.19 prints each failure's message whole on one "[ERROR]: ..." line."""
    return [line for line in output.splitlines() if line.startswith("[ERROR]: ")]


def _assert_one_clear_failure(proc, needle):
    assert proc.returncode != 0, proc.stdout[-3000:]
    counters = recap(proc.stdout)
    assert counters["failed"] == 1, proc.stdout[-3000:]
    errors = _failure_lines(proc.stdout)
    assert len(errors) == 1 and needle in errors[0], "no one line naming %r in:\n%s" % (needle, proc.stdout[-3000:])
    return counters


def test_missing_fuse_device_stops_before_any_change():
    proc = run_playbook("playbooks/local_cluster.yml", "-e", "local_cluster_fuse_device=/dev/gcsfront-no-fuse",
                        check=False)
    counters = _assert_one_clear_failure(proc, "/dev/gcsfront-no-fuse is missing")
    assert counters["changed"] == 0


def test_registry_port_held_by_another_program_stops_before_any_change():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        proc = run_playbook("playbooks/local_cluster.yml", "-e", "local_cluster_registry_port=%d" % port,
                            check=False)
    counters = _assert_one_clear_failure(proc, "port %d is already in use by another program" % port)
    assert "pid=%d," % os.getpid() in proc.stdout  # the holder (this test) is named
    assert counters["changed"] == 0


@pytest.mark.parametrize("script, argv, needle", [
    # Seen answering 403 "not available" from this machine's module proxy (shared notes).
    ("build-go-module.sh", ["k8s.io/endpointslice", "v0.32.13", "k8s.io/endpointslice"],
     "Go module proxy refused k8s.io/endpointslice@v0.32.13 (not available)"),
])
def test_refused_go_module_is_named_in_one_line(tmp_path, script, argv, needle):
    proc = subprocess.run(["bash", str(REPO / "roles/local_cluster/files" / script), *argv,
                           str(tmp_path / "out/bin"), str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GOMODCACHE": str(tmp_path / "mod"), "GOCACHE": str(tmp_path / "cache"),
                               "GOTOOLCHAIN": "local"}, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(needle), proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()  # nothing half-made


def test_refused_kubernetes_version_stops_the_role_with_its_name():
    # k8s.io/kubernetes@v1.34.13 answers 403 from this machine's module proxy; the build is the first
    # step that needs it, and it fails before any daemon is touched.
    proc = run_playbook("playbooks/local_cluster.yml", "--tags", "local_cluster,local_cluster_build",
                        "-e", "local_cluster_kubernetes_version=v1.34.13", check=False)
    _assert_one_clear_failure(proc, "Go module proxy refused k8s.io/kubernetes@v1.34.13 (not available)")
