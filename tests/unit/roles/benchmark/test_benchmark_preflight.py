"""roles/benchmark/tasks/preflight.yml: a bad benchmark_head_to_head is one clear error before the lab is deployed.

The preflight alone runs, on localhost (comparison mode asks for the local substrate's inventory flag, set here);
nothing is deployed or measured.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]

PLAYBOOK = """\
- name: Run the benchmark's preflight.
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Preflight.
      ansible.builtin.include_role:
        name: gcsfront.gke.benchmark
        tasks_from: preflight
"""

GOOD = {"targets": ["a", "b"], "pairs": [["a", "b"]], "short": {"rounds": 2, "duration": 2},
        "full": {"rounds": 5, "duration": 5}}


def preflight(tmp_path, head_to_head):
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PLAYBOOK)
    extra = {"benchmark_compare": True, "gcsfront_local_substrate": True, "benchmark_bucket": "b",
             "benchmark_head_to_head": head_to_head}
    return subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), str(playbook), "-e", json.dumps(extra)],
                          cwd=REPO, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, timeout=300)


def test_a_well_formed_head_to_head_passes(tmp_path):
    proc = preflight(tmp_path, GOOD)
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize("bad", [
    dict(GOOD, short={"rounds": 0, "duration": 2}),
    {k: v for k, v in GOOD.items() if k != "short"},
    dict(GOOD, pairs=[["a", "nowhere"]]),
    dict(GOOD, pairs=[]),
])
def test_a_bad_head_to_head_is_one_clear_error(tmp_path, bad):
    proc = preflight(tmp_path, bad)
    assert proc.returncode != 0
    assert "benchmark: benchmark_head_to_head needs short: {rounds, duration}" in proc.stdout, proc.stdout[-3000:]
