"""The frontend role's workload template, rendered by playbooks/render.yml: what the manifests promise.

Probes never wait on FUSE, rollouts never lower the number of ready pods, a rotated key rolls the pods, and the
key is mounted only where gcsfuse runs.
"""

from __future__ import annotations

import pytest
from conftest import render_frontend


def render(tmp_path, **extra_vars):
    return render_frontend(tmp_path, extra_vars)


def sidecar(pod):
    """The gcsfuse container of the sidecar mode: a native sidecar (an init container that keeps running)."""
    assert [c["name"] for c in pod["containers"]] == ["nginx"]
    (gcsfuse,) = pod["initContainers"]
    assert gcsfuse["name"] == "gcsfuse" and gcsfuse["restartPolicy"] == "Always"
    return gcsfuse


def env(container):
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.fixture(scope="module", params=["privileged", "sidecar"])
def manifests(request, tmp_path_factory):
    return request.param, render(tmp_path_factory.mktemp(request.param), frontend_mount_mode=request.param,
                                 frontend_auth="key")


def test_probes_ask_the_front_and_never_the_mount(manifests):
    mode, m = manifests
    pod = m["Deployment"]["spec"]["template"]["spec"]
    serving = next(c for c in pod["containers"] if c["name"] in ("frontend", "nginx"))
    assert serving["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert serving["readinessProbe"]["httpGet"]["path"] == "/healthz/ready"
    assert serving["startupProbe"]["httpGet"]["path"] == "/healthz"
    if mode == "sidecar":
        gcsfuse = sidecar(pod)
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
    with_key = [c["name"] for c in pod.get("initContainers", []) + pod["containers"]
                if any(v["name"] == "key" for v in c.get("volumeMounts", []))]
    assert with_key == (["frontend"] if mode == "privileged" else ["gcsfuse"])
    key = next(v for v in pod["volumes"] if v["name"] == "key")
    assert key["secret"]["defaultMode"] == 0o400
    if mode == "sidecar":
        nginx = next(c for c in pod["containers"] if c["name"] == "nginx")
        assert nginx["securityContext"]["runAsNonRoot"] and nginx["securityContext"]["readOnlyRootFilesystem"]
        assert nginx["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_rotated_key_rolls_the_pods_and_its_checksum_reveals_nothing(tmp_path):
    first = render(tmp_path / "a", credentials_key_checksum="a" * 64, frontend_auth="key")
    second = render(tmp_path / "b", credentials_key_checksum="b" * 64, frontend_auth="key")
    a = first["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    b = second["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert a["gcsfront.gke/key-sha256"] == "a" * 64 and b["gcsfront.gke/key-sha256"] == "b" * 64
    assert a["gcsfront.gke/config-sha256"] == b["gcsfront.gke/config-sha256"]
    # Without the credentials role (render alone), no checksum and no annotation.
    plain = render(tmp_path / "c", frontend_auth="key")["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert "gcsfront.gke/key-sha256" not in plain


WORKLOAD_IDENTITY = {"frontend_auth": "workload_identity", "frontend_project_id": "gcsfront-local",
                     "frontend_project_number": "424242424242"}


@pytest.mark.parametrize("mode", ["privileged", "sidecar"])
def test_workload_identity_puts_no_key_in_the_pod_and_runs_it_as_its_service_account(tmp_path, mode):
    m = render(tmp_path, frontend_mount_mode=mode, frontend_metadata_host="10.96.0.254:80",
               credentials_key_checksum="a" * 64, **WORKLOAD_IDENTITY)
    template = m["Deployment"]["spec"]["template"]
    pod = template["spec"]
    assert pod["serviceAccountName"] == "gcsfront" and pod["automountServiceAccountToken"] is False
    assert m["ServiceAccount"]["metadata"]["name"] == "gcsfront"
    assert m["ServiceAccount"]["automountServiceAccountToken"] is False
    assert "annotations" not in m["ServiceAccount"]["metadata"]
    assert all(v["name"] != "key" for v in pod["volumes"])
    assert "gcsfront.gke/key-sha256" not in template["metadata"]["annotations"]
    gcsfuse = sidecar(pod) if mode == "sidecar" else pod["containers"][0]
    assert all(v["name"] != "key" for v in gcsfuse["volumeMounts"])
    assert env(gcsfuse)["GCSFRONT_AUTH"] == "workload_identity"
    assert env(gcsfuse)["GCE_METADATA_HOST"] == "10.96.0.254:80"
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env(gcsfuse)


def test_on_gke_the_nodes_metadata_server_answers_and_a_google_service_account_may_be_impersonated(tmp_path):
    # As on GKE: not the local substrate, no metadata server named.
    m = render(tmp_path, frontend_mount_mode="sidecar", frontend_gcp_service_account="reader@p.iam.gserviceaccount.com",
               gcsfront_local_substrate=False, frontend_metadata_host="", **WORKLOAD_IDENTITY)
    pod = m["Deployment"]["spec"]["template"]["spec"]
    assert "GCE_METADATA_HOST" not in env(sidecar(pod))
    assert m["ServiceAccount"]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "reader@p.iam.gserviceaccount.com"}


def test_a_key_keeps_gcsfuse_away_from_any_metadata_server(manifests):
    mode, m = manifests
    pod = m["Deployment"]["spec"]["template"]["spec"]
    gcsfuse = sidecar(pod) if mode == "sidecar" else pod["containers"][0]
    assert env(gcsfuse)["GCSFRONT_AUTH"] == "key" and env(gcsfuse)["GCE_METADATA_HOST"] == "127.0.0.1:9"
    assert env(gcsfuse)["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/gcsfront/key/key.json"
    assert "ServiceAccount" not in m and "serviceAccountName" not in pod
