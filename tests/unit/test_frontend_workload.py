"""The frontend role's workload template, rendered by playbooks/render.yml: what the manifests promise.

Probes never wait on FUSE, rollouts never lower the number of ready pods, a rotated key rolls the pods, and the
key is mounted only where gcsfuse runs.
"""

from __future__ import annotations

import pytest
from conftest import render_frontend


def render(tmp_path, **extra_vars):
    return render_frontend(tmp_path, extra_vars)


@pytest.fixture(scope="module", params=["privileged", "sidecar"])
def manifests(request, tmp_path_factory):
    return request.param, render(tmp_path_factory.mktemp(request.param), frontend_mount_mode=request.param)


def test_probes_ask_the_front_and_never_the_mount(manifests):
    mode, m = manifests
    pod = m["Deployment"]["spec"]["template"]["spec"]
    serving = next(c for c in pod["containers"] if c["name"] in ("frontend", "nginx"))
    assert serving["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert serving["readinessProbe"]["httpGet"]["path"] == "/healthz/ready"
    assert serving["startupProbe"]["httpGet"]["path"] == "/healthz"
    if mode == "sidecar":
        gcsfuse = next(c for c in pod["containers"] if c["name"] == "gcsfuse")
        # A flag the entrypoint keeps: the probe itself reads local disk only.
        assert gcsfuse["readinessProbe"]["exec"]["command"] == ["test", "-f", "/tmp/gcsfront/mount-alive"]
        assert "livenessProbe" not in gcsfuse


def test_rollouts_and_disruptions_keep_every_replica_serving(manifests):
    _mode, m = manifests
    spec = m["Deployment"]["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert spec["minReadySeconds"] >= 1
    assert m["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert m["PodDisruptionBudget"]["spec"]["selector"] == spec["selector"]
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 5
    assert m["Service"]["spec"]["externalTrafficPolicy"] == "Local"


def test_the_key_is_mounted_only_where_gcsfuse_runs(manifests):
    mode, m = manifests
    pod = m["Deployment"]["spec"]["template"]["spec"]
    with_key = [c["name"] for c in pod["containers"] if any(v["name"] == "key" for v in c.get("volumeMounts", []))]
    assert with_key == (["frontend"] if mode == "privileged" else ["gcsfuse"])
    key = next(v for v in pod["volumes"] if v["name"] == "key")
    assert key["secret"]["defaultMode"] == 0o400
    if mode == "sidecar":
        nginx = next(c for c in pod["containers"] if c["name"] == "nginx")
        assert nginx["securityContext"]["runAsNonRoot"] and nginx["securityContext"]["readOnlyRootFilesystem"]
        assert nginx["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_rotated_key_rolls_the_pods_and_its_checksum_reveals_nothing(tmp_path):
    first = render(tmp_path / "a", credentials_key_checksum="a" * 64)
    second = render(tmp_path / "b", credentials_key_checksum="b" * 64)
    a = first["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    b = second["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert a["gcsfront.gke/key-sha256"] == "a" * 64 and b["gcsfront.gke/key-sha256"] == "b" * 64
    assert a["gcsfront.gke/config-sha256"] == b["gcsfront.gke/config-sha256"]
    # Without the credentials role (render alone), no checksum and no annotation.
    plain = render(tmp_path / "c")["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert "gcsfront.gke/key-sha256" not in plain
