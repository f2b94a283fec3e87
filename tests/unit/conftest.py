"""Unit tests import the collection as Ansible does: ansible_collections.gcsfront.gke (collections/ symlink)."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "collections"))

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_render(out, extra_vars, inventory=None):
    """playbooks/render.yml into the directory out, with extra_vars (and an inventory); the CompletedProcess."""
    import json
    import subprocess

    return subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "playbooks/render.yml", "-e", "render_dir=%s" % out,
         "-e", json.dumps(extra_vars)] + (["-i", str(inventory)] if inventory else []),
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def render_frontend(tmp_path, extra_vars):
    """The frontend role's manifests as playbooks/render.yml writes them, with extra_vars: {kind: document}."""
    import yaml

    out = tmp_path / "render"
    proc = run_render(out, extra_vars)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {d["kind"]: d for d in yaml.safe_load_all((out / "frontend-workload.yaml").read_text()) if d}
