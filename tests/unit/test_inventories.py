"""The inventories: keyless and unprivileged by default, and the local one agrees with the substrate it targets."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, inventory_vars

INVENTORIES = ["local", "cluster1", "cluster2", "cluster3", "cluster4"]


@pytest.mark.parametrize("name", INVENTORIES)
def test_every_inventory_runs_keyless_and_unprivileged(name):
    v = inventory_vars(name)
    assert (v["gcsfront_mount_mode"], v["gcsfront_auth"]) == ("sidecar", "workload_identity")
    assert v["gcsfront_project_id"] and v["gcsfront_project_number"]


def test_the_local_inventory_names_the_substrates_project_and_metadata_server():
    v = inventory_vars("local")
    substrate = yaml.safe_load((REPO / "roles/local_cluster/defaults/main.yml").read_text())
    assert v["gcsfront_project_id"] == substrate["local_cluster_project_id"]
    assert v["gcsfront_project_number"] == str(substrate["local_cluster_project_number"])
    assert v["gcsfront_metadata_host"] == "%s:%s" % (substrate["local_cluster_metadata_ip"],
                                                     substrate["local_cluster_metadata_port"])
