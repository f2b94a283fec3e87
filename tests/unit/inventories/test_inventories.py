"""The inventories: keyless and unprivileged by default, usable from a copy anywhere, and the local one agrees
with the substrate it targets."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import REPO, inventory_vars, run_render

INVENTORIES = ["local", "cluster1", "cluster2", "cluster3", "cluster4"]


@pytest.mark.parametrize("name", INVENTORIES)
def test_a_copy_of_every_inventory_renders_keyless_and_unprivileged_pods(tmp_path, name):
    """As a user does: copy the inventory out of the checkout (links and all) and render its manifests."""
    copy = tmp_path / "my-inventory"
    shutil.copytree(REPO / "inventories" / name, copy, symlinks=True)
    out = tmp_path / "manifests"
    # A GKE inventory takes the project's number from the environment, as its users do.
    proc = run_render(out, {"gcsfront_project_number": "123456789012"} if name != "local" else {}, inventory=copy)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    docs = [d for f in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert "Secret" not in kinds and "ServiceAccount" in kinds
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["gcsfuse"]
    nginx = pod["containers"][0]["securityContext"]
    assert nginx["runAsNonRoot"] and nginx["capabilities"] == {"drop": ["ALL"]} and not nginx.get("privileged")
    assert not [p for p in copy.rglob("*") if p.is_symlink()], "an inventory links outside itself"


def test_the_local_inventory_names_the_substrates_project_and_metadata_server():
    v = inventory_vars("local")
    substrate = yaml.safe_load((REPO / "roles/local_cluster/defaults/main.yml").read_text())
    assert v["gcsfront_project_id"] == substrate["local_cluster_project_id"]
    assert v["gcsfront_project_number"] == str(substrate["local_cluster_project_number"])
    assert v["gcsfront_metadata_host"] == "%s:%s" % (substrate["local_cluster_metadata_ip"],
                                                     substrate["local_cluster_metadata_port"])
