"""Molecule's scenarios (converge, idempotence, check, verify) on the live local substrate.

privileged (the 2016 layout: one privileged container, a key Secret, a ReplicaSet) runs first, over the default
layout its prepare deploys, then default (sidecar mode, Workload Identity, a Deployment) over it: the switch of
mount mode, auth and kind converges both ways with the inventory's variables alone, and the default deployment is
what the later tests find.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import REPO


@pytest.mark.parametrize("scenario, actions", [
    ("privileged", ("syntax", "prepare", "converge", "idempotence", "check", "verify")),
    ("default", ("syntax", "converge", "idempotence", "check", "verify")),
], ids=["privileged", "default"])
def test_molecule_scenario(kube, scenario, actions):
    proc = subprocess.run([str(REPO / ".venv/bin/molecule"), "test", "-s", scenario], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800, check=False,
                          env={**os.environ, "NO_COLOR": "1", "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0",
                               "PATH": "%s:%s" % (REPO / ".venv/bin", os.environ["PATH"])})
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-6000:]
    # Every step of the sequence ran and succeeded (molecule's own summary lines), verify included.
    for action in actions:
        assert "%s > %s: Executed: Successful" % (scenario, action) in proc.stdout, action
    assert "TASK [Check that the served bytes match the object.]" in proc.stdout
