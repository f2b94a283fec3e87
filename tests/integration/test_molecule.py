"""Molecule's default scenario (converge, idempotence, check, verify) on the live local substrate."""

from __future__ import annotations

import os
import subprocess

from conftest import REPO


def test_molecule_default_scenario(kube):
    proc = subprocess.run([str(REPO / ".venv/bin/molecule"), "test", "-s", "default"], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800, check=False,
                          env={**os.environ, "NO_COLOR": "1", "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0",
                               "PATH": "%s:%s" % (REPO / ".venv/bin", os.environ["PATH"])})
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-6000:]
    # Every step of the sequence ran and succeeded (molecule's own summary lines), verify included.
    for action in ("syntax", "converge", "idempotence", "check", "verify"):
        assert "default > %s: Executed: Successful" % action in proc.stdout, action
    assert "TASK [Check that the served bytes match the object.]" in proc.stdout
