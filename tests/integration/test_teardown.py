"""Teardown leaves nothing of ours behind, and is safe to run twice. Runs last: it removes the substrate."""

from __future__ import annotations

import os
import pathlib

import yaml
from conftest import CONTEXT, recap, run_playbook
from substrate_state import footprint


def kube_contexts():
    path = pathlib.Path(os.path.expanduser("~/.kube/config"))
    config = yaml.safe_load(path.read_text()) if path.exists() else {}
    return [c["name"] for c in (config or {}).get("contexts") or []]


def test_teardown_leaves_nothing_and_is_idempotent(kube):
    before = footprint()
    print("footprint before teardown:", {k: len(v) for k, v in before.items()})
    # The lister must see the live substrate, or an empty "after" would prove nothing.
    for kind in ("processes", "mounts", "netns", "links", "routes", "iptables"):
        assert before[kind], "nothing of kind %s found on the live substrate: the lister is broken" % kind
    assert CONTEXT in kube_contexts()

    first = run_playbook("playbooks/local_cluster.yml", "-e", "local_cluster_state=absent")
    assert recap(first.stdout)["changed"] > 0

    after = footprint()
    assert after == {k: [] for k in before}, after
    assert CONTEXT not in kube_contexts()
    for path in ("/var/lib/gcsfront", "/run/gcsfront", "/var/log/gcsfront"):
        assert not os.path.exists(path), path

    second = run_playbook("playbooks/local_cluster.yml", "-e", "local_cluster_state=absent")
    counters = recap(second.stdout)
    assert counters["failed"] == 0 and counters["changed"] == 0, second.stdout[-3000:]
