"""The frontend role's workload template, rendered by playbooks/render.yml: what the manifests promise.

Probes never wait on FUSE, rollouts never lower the number of ready pods, a rotated key rolls the pods, and the
key is mounted only where gcsfuse runs.
"""

from __future__ import annotations

import pytest
import yaml
from conftest import render_frontend, run_render


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


def test_the_catalog_is_listed_where_the_key_is_and_read_by_nginx(manifests):
    mode, m = manifests
    pod = m["Deployment"]["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod.get("initContainers", []) + pod["containers"]}
    lister = containers["frontend" if mode == "privileged" else "gcsfuse"]
    assert env(lister)["GCSFRONT_CATALOG_DIR"] == "/var/cache/gcsfront-catalog"
    assert env(lister)["GCSFRONT_GCS_ENDPOINT"] and env(lister)["GCSFRONT_WEBSITE_MAIN_PAGE_SUFFIX"] == "index.html"
    catalog_mounts = {name: next((v for v in c["volumeMounts"] if v["name"] == "catalog"), None)
                      for name, c in containers.items()}
    assert all(v and v["mountPath"] == "/var/cache/gcsfront-catalog" for v in catalog_mounts.values()), catalog_mounts
    if mode == "sidecar":
        # nginx reads the catalog and lists nothing itself: it holds no credentials.
        assert catalog_mounts["nginx"]["readOnly"] and "GCSFRONT_CATALOG_DIR" not in env(containers["nginx"])
    assert next(v for v in pod["volumes"] if v["name"] == "catalog")["emptyDir"]


def test_without_the_catalog_nothing_lists_the_bucket(tmp_path):
    m = render(tmp_path, frontend_catalog=False)
    pod = m["Deployment"]["spec"]["template"]["spec"]
    assert not [c for c in pod["containers"] if "GCSFRONT_CATALOG_DIR" in env(c)]
    assert "catalog" not in [v["name"] for v in pod["volumes"]]
    assert "gcsfront.catalog" not in m["ConfigMap"]["data"]["nginx.conf"]
    assert "GCSFRONT_MIRROR_DIR" not in env(pod["containers"][0]) and "mirror" not in m["ConfigMap"]["data"]["nginx.conf"]


def test_hot_copies_live_in_the_caches_emptydir_kept_by_the_serving_container(manifests):
    _mode, m = manifests
    pod = m["Deployment"]["spec"]["template"]["spec"]
    nginx = pod["containers"][0]
    assert {k: v for k, v in env(nginx).items() if k.startswith("GCSFRONT_MIRROR")} == {
        "GCSFRONT_MIRROR_DIR": "/var/cache/gcsfront/mirror", "GCSFRONT_MIRROR_MAX_SIZE_MB": "1024",
        "GCSFRONT_MIRROR_CATALOG": "/var/cache/gcsfront-catalog/catalog.tsv"}
    assert {"name": "cache", "mountPath": "/var/cache/gcsfront"} in nginx["volumeMounts"]
    # The cache (1024 MiB), the copies (1024 MiB), and room for the temporary files.
    assert next(v for v in pod["volumes"] if v["name"] == "cache")["emptyDir"] == {"sizeLimit": "2112Mi"}
    conf = m["ConfigMap"]["data"]["nginx.conf"]
    assert "try_files $gcsfront_mirror_file @object;" in conf and "proxy_store /var/cache/gcsfront/mirror$" in conf


def test_without_hot_copies_the_cache_serves_every_object(tmp_path):
    m = render(tmp_path, frontend_mirror_max_size_mb=0)
    pod = m["Deployment"]["spec"]["template"]["spec"]
    assert "GCSFRONT_MIRROR_DIR" not in env(pod["containers"][0])
    assert next(v for v in pod["volumes"] if v["name"] == "cache")["emptyDir"] == {"sizeLimit": "1088Mi"}
    conf = m["ConfigMap"]["data"]["nginx.conf"]
    assert "gcsfront_mirror" not in conf and "proxy_store" not in conf and "gcsfront.catalog\").screen()" in conf


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


# csi mode: the volume attributes of the Cloud Storage FUSE CSI driver (GoogleCloudPlatform/gcs-fuse-csi-driver
# pkg/csi_driver/utils.go, VolumeContextKey*), and where each gcsfuse setting of the config file goes in csi mode.
DRIVER_ATTRIBUTES = {"bucketName", "mountOptions", "fileCacheCapacity", "fileCacheForRangeRead",
                     "metadataStatCacheCapacity", "metadataTypeCacheCapacity", "metadataCacheTTLSeconds",
                     "gcsfuseLoggingSeverity", "skipCSIBucketAccessCheck", "disableMetrics"}
# attribute: a typed volume attribute (quantity: a size in MiB as a quantity); option: the mount option PATH:VALUE,
# which the driver writes into its sidecar's config file; flag: the mount option NAME=VALUE, a gcsfuse flag (uid
# and gid must be: the driver passes --uid=0 --gid=0, which beat the config file); driver: the driver sets it.
CSI_PINS = {
    "implicit-dirs": ("flag", "implicit-dirs"),
    "metadata-cache:ttl-secs": ("attribute", "metadataCacheTTLSeconds"),
    "metadata-cache:negative-ttl-secs": ("option", None),
    "metadata-cache:stat-cache-max-size-mb": ("quantity", "metadataStatCacheCapacity"),
    "metadata-cache:type-cache-max-size-mb": ("quantity", "metadataTypeCacheCapacity"),
    "file-system:uid": ("flag", "uid"),
    "file-system:gid": ("flag", "gid"),
    "file-system:file-mode": ("flag", "file-mode"),
    "file-system:dir-mode": ("flag", "dir-mode"),
    "file-system:kernel-list-cache-ttl-secs": ("option", None),
    "gcs-connection:http-client-timeout": ("option", None),
    "gcs-connection:custom-endpoint": ("flag", "custom-endpoint"),
    "enable-hns": ("option", None),
    "cache-dir": ("driver", None),
    "file-cache:max-size-mb": ("quantity", "fileCacheCapacity"),
    "file-cache:cache-file-for-range-read": ("attribute", "fileCacheForRangeRead"),
    "gcs-retries:max-retry-attempts": ("option", None),
    "gcs-retries:max-retry-sleep": ("option", None),
    "logging:format": ("driver", None),
    "logging:severity": ("attribute", "gcsfuseLoggingSeverity"),
}


def leaves(config, prefix=""):
    """The gcsfuse config file as {path: value}, sections joined by ':' as the driver spells them."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(leaves(value, prefix + key + ":"))
        else:
            out[prefix + key] = value
    return out


def text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def csi_pod(m):
    return m["Deployment"]["spec"]["template"]


CSI = dict(WORKLOAD_IDENTITY, frontend_metadata_host="10.96.0.254:80")
PRESETS = {
    "defaults": {},
    "changed": {"frontend_gcsfuse_file_cache_max_size_mb": 0, "frontend_gcsfuse_implicit_dirs": False,
                "frontend_gcsfuse_stat_cache_max_size_mb": -1, "frontend_gcsfuse_metadata_ttl_secs": 7,
                "frontend_gcsfuse_log_severity": "warning", "frontend_gcsfuse_max_retry_sleep": "5s",
                "gcsfront_gcs_endpoint_cluster": ""},
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_csi_mode_passes_every_setting_of_the_gcsfuse_config_to_the_driver(tmp_path, preset):
    extra = dict(CSI, **PRESETS[preset])
    config = yaml.safe_load(render(tmp_path / "sidecar", frontend_mount_mode="sidecar", **extra)[
        "ConfigMap"]["data"]["gcsfuse.yaml"])
    m = render(tmp_path / "csi", frontend_mount_mode="csi", **extra)
    (volume,) = [v for v in csi_pod(m)["spec"]["volumes"] if "csi" in v]
    attributes = dict(volume["csi"]["volumeAttributes"])
    options = attributes.pop("mountOptions").split(",")
    assert attributes.pop("bucketName") == "gcsfront-local"
    assert "gcsfuse.yaml" not in m["ConfigMap"]["data"]

    flat = leaves(config)
    # A setting added to the config file without a pin here (and a csi mapping in vars/main.yml) fails.
    assert set(flat) <= set(CSI_PINS), sorted(set(flat) - set(CSI_PINS))
    expected_attributes, expected_options = {}, []
    for path, value in flat.items():
        kind, name = CSI_PINS[path]
        if kind == "attribute":
            expected_attributes[name] = text(value)
        elif kind == "quantity":
            expected_attributes[name] = "-1" if value < 0 else "%dMi" % value
        elif kind == "flag":
            expected_options.append("%s=%s" % (name, text(value)))
        elif kind == "option":
            expected_options.append("%s:%s" % (path, text(value)))
    assert attributes == expected_attributes
    assert sorted(options) == sorted(expected_options)
    assert set(attributes) <= DRIVER_ATTRIBUTES
    if preset == "defaults":
        # Every pin is exercised (the local inventory sets the emulator's endpoint): none is stale.
        assert set(flat) == set(CSI_PINS)
        assert attributes["fileCacheCapacity"] == "1024Mi" and attributes["metadataCacheTTLSeconds"] == "60"
        assert {"uid=33", "gid=33", "file-mode=0444", "dir-mode=0555", "implicit-dirs=true"} <= set(options)
    else:
        assert "fileCacheCapacity" not in attributes and attributes["metadataStatCacheCapacity"] == "-1"
        assert not [o for o in options if "endpoint" in o or "hns" in o]


def test_a_gcsfuse_setting_without_a_csi_mapping_fails_the_render(tmp_path):
    settings = [{"path": "read:enable-buffered-read", "value": True}]
    proc = run_render(tmp_path, dict(CSI, frontend_mount_mode="csi", _frontend_gcsfuse_settings=settings))
    assert proc.returncode != 0
    assert "the gcsfuse setting read:enable-buffered-read has no csi mapping" in proc.stdout + proc.stderr


def test_csi_mode_has_no_privileged_container_and_serves_the_drivers_mount(tmp_path):
    m = render(tmp_path, frontend_mount_mode="csi",
               frontend_csi_sidecar_resources={"cpu-limit": "1", "memory-limit": "1Gi"}, **CSI)
    template = csi_pod(m)
    pod = template["spec"]
    assert "initContainers" not in pod
    (nginx,) = pod["containers"]
    assert nginx["name"] == "nginx" and env(nginx)["GCSFRONT_MODE"] == "serve"
    # The catalog is listed where the credentials are: here, with the pod's Workload Identity.
    assert env(nginx)["GCSFRONT_CATALOG_DIR"] == "/var/cache/gcsfront-catalog"
    assert env(nginx)["GCSFRONT_BUCKET"] and env(nginx)["GCSFRONT_AUTH"] == "workload_identity"
    assert nginx["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 33, "runAsGroup": 33, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    # The driver's mount, read-only, where the entrypoint's watcher and the mount-serving nginx expect it.
    (mount,) = [v for v in nginx["volumeMounts"] if v["mountPath"] == "/mnt/gcs"]
    assert mount == {"name": "mnt", "mountPath": "/mnt/gcs", "readOnly": True}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["mnt"]["csi"]["driver"] == "gcsfuse.csi.storage.gke.io" and volumes["mnt"]["csi"]["readOnly"]
    # gcsfuse's file cache: the volume the driver's sidecar takes by name, bounded like the other modes' one.
    assert volumes["gke-gcsfuse-cache"] == {"name": "gke-gcsfuse-cache", "emptyDir": {"sizeLimit": "1088Mi"}}
    assert not [v for v in volumes.values() if "hostPath" in v or "secret" in v]
    # Workload Identity: the driver mounts as the pod's ServiceAccount.
    assert pod["serviceAccountName"] == "gcsfront" and m["ServiceAccount"]["metadata"]["name"] == "gcsfront"
    annotations = template["metadata"]["annotations"]
    assert annotations["gke-gcsfuse/volumes"] == "true"
    assert annotations["gke-gcsfuse/cpu-limit"] == "1" and annotations["gke-gcsfuse/memory-limit"] == "1Gi"
    assert "gke-gcsfuse/ephemeral-storage-limit" not in annotations


@pytest.mark.parametrize("extra,needle", [
    ({"frontend_auth": "key"}, "the CSI driver refuses key files: use workload_identity"),
    # The names are the argument spec's suboptions (entry point preflight).
    ({"frontend_csi_sidecar_resources": {"cpu": "1"}},
     "frontend_csi_sidecar_resources.cpu. Supported parameters include: cpu-limit"),
])
def test_csi_mode_stops_before_rendering_on_bad_input(tmp_path, extra, needle):
    proc = run_render(tmp_path, dict(CSI, frontend_mount_mode="csi", **extra))
    assert proc.returncode != 0 and needle in proc.stdout + proc.stderr


def test_a_replicaset_is_never_adopted_by_a_deployment_of_the_same_name(tmp_path):
    """A switch of frontend_kind applies the new workload before the old one goes. The Deployment controller adopts
    any ReplicaSet without an owner whose own labels match its selector (then scales it down, and its deletion
    takes the ReplicaSet along), so the standalone ReplicaSet's labels must not match; its pods' still do, so the
    Service keeps selecting them."""
    deployment = render(tmp_path / "deployment", frontend_kind="Deployment")["Deployment"]
    replicaset = render(tmp_path / "replicaset", frontend_kind="ReplicaSet")["ReplicaSet"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == replicaset["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= replicaset["metadata"]["labels"].items()
    assert selector.items() <= replicaset["spec"]["template"]["metadata"]["labels"].items()
    assert selector.items() <= deployment["metadata"]["labels"].items()
