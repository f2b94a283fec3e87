"""The local substrate, asserted on the live cluster (issue: local substrate)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import requests
from conftest import (DEFAULTS, GCS_CLUSTER_HOST, GCS_ENDPOINT, REGISTRY, SA_KEY_FILE, apply, echo_workload,
                      ensure_bucket, lb_address, pod_exec, ready_pods, upload, wait_for)
from substrate_state import pod_network_namespaces


def test_node_is_ready(kube):
    from kubernetes import client

    node = client.CoreV1Api(kube).read_node(DEFAULTS["local_cluster_node_name"])
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    assert ready == "True"
    assert node.status.node_info.kubelet_version == DEFAULTS["local_cluster_kubernetes_version"]
    assert {a.type: a.address for a in node.status.addresses}["InternalIP"] == DEFAULTS["local_cluster_node_ip"]


def test_pods_network_namespaces_are_kept_under_the_run_directory():
    # The teardown removes the run directory and whatever is mounted under it: a pod's namespace kept in /run/netns
    # would outlive the substrate (a killed pod's sandbox is never stopped by the kubelet).
    namespaces = pod_network_namespaces()
    assert namespaces, "no pod with a network namespace of its own: coredns and metallb should have one"
    run_dir = DEFAULTS["local_cluster_run_dir"] + "/"
    for inode, points in namespaces.items():
        assert points and all(p.startswith(run_dir) for p in points), (inode, points)


def test_the_hosts_routes_keep_cluster_addresses_off_the_external_interface():
    """Pod and Service addresses exist only in the node's namespace: from the host they must lead nowhere (a
    blackhole), never out through the default route; the LoadBalancer pool goes through the node."""
    import subprocess

    for cidr in (DEFAULTS["local_cluster_pod_cidr"], DEFAULTS["local_cluster_service_cidr"]):
        routes = subprocess.run(["ip", "route", "show", "type", "blackhole", cidr], capture_output=True, text=True,
                                check=True).stdout
        assert routes.strip() == "blackhole %s" % cidr, (cidr, routes)
        probe = cidr.split("/")[0].rsplit(".", 1)[0] + ".7"
        got = subprocess.run(["ip", "route", "get", probe], capture_output=True, text=True, check=False)
        assert got.returncode != 0, "a route leads %s somewhere: %s" % (probe, got.stdout)
    lb = subprocess.run(["ip", "route", "get", DEFAULTS["local_cluster_lb_pool"].split("/")[0]], capture_output=True,
                        text=True, check=True).stdout
    assert "via %s dev %s" % (DEFAULTS["local_cluster_node_ip"], DEFAULTS["local_cluster_host_if"]) in lb, lb


MANIFEST_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json",
                  "application/vnd.docker.distribution.manifest.v2+json")


def registry_digest(image):
    """The digest the local registry serves for image's tag (its Docker-Content-Digest), asked on loopback."""
    repository, tag = image.split("/", 1)[1].rsplit(":", 1)
    session = requests.Session()
    session.trust_env = False  # the registry is on loopback: never through a proxy
    answer = session.head("http://%s/v2/%s/manifests/%s" % (REGISTRY, repository, tag),
                          headers={"Accept": ", ".join(MANIFEST_TYPES)}, timeout=10)
    assert answer.status_code == 200, (answer.status_code, image)
    digest = answer.headers["Docker-Content-Digest"]
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64, digest
    return digest


def test_pushed_image_is_pulled_and_served_through_a_loadbalancer(kube, namespace, echo_image):
    """An image built by dockerd and pushed to the registry is pulled (Always) and runs; MetalLB gives its
    Service an address from the pool and a request from the host through it reaches the pod."""
    from kubernetes import client

    image, nonce = echo_image
    apply(kube, namespace, echo_workload(image))
    pods = wait_for(lambda: ready_pods(kube, namespace, "app=echo"), 90, what="the echo pod to be Ready")
    status = pods[0].status.container_statuses[0]
    # The digest the registry gives the pushed tag, under the name it was pushed as.
    assert status.image_id == image.rsplit(":", 1)[0] + "@" + registry_digest(image), (status.image_id, image)

    address = lb_address(kube, namespace, "echo")
    pool_prefix = DEFAULTS["local_cluster_lb_pool"].rsplit(".", 1)[0]
    assert address.startswith(pool_prefix + "."), address
    body = wait_for(lambda: requests.get("http://%s/" % address, timeout=3).json(), 30,
                    what="an answer through the LoadBalancer")
    assert body == {"nonce": nonce, "pod": pods[0].metadata.name}

    # The pod's log is read through the API server and the kubelet (InternalIP, no name lookup).
    log = client.CoreV1Api(kube).read_namespaced_pod_log(pods[0].metadata.name, namespace)
    assert "echo %s starting" % nonce in log


def test_cluster_dns_answers_cluster_names_only(kube, namespace, echo_image):
    """A pod resolves the emulator's Service name; a name outside cluster.local gets NXDOMAIN (no forwarding)."""
    image = echo_image[0]
    apply(kube, namespace, echo_workload(image))
    wait_for(lambda: ready_pods(kube, namespace, "app=echo"), 90, what="the echo pod to be Ready")
    address = lb_address(kube, namespace, "echo")

    def resolve(name):
        return requests.get("http://%s/resolve" % address, params={"name": name}, timeout=10).json()

    inside = wait_for(lambda: resolve(GCS_CLUSTER_HOST.split(":")[0]), 30, what="the emulator's name to resolve")
    assert inside["addrs"] and not inside.get("error"), inside
    outside = resolve("storage.googleapis.com")
    assert outside["not_found"] is True and not outside["addrs"], outside


def _jwt(private_key, claims, kid):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = private_key.sign(header + b"." + payload, padding.PKCS1v15(), hashes.SHA256())
    return (header + b"." + payload + b"." + b64(signature)).decode()


def test_token_endpoint_accepts_the_registered_key_and_refuses_others():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = json.loads(SA_KEY_FILE.read_text())
    assert key["token_uri"] == GCS_ENDPOINT + "/token"
    now = int(time.time())
    claims = {"iss": key["client_email"], "scope": "https://www.googleapis.com/auth/devstorage.read_only",
              "aud": key["token_uri"], "iat": now, "exp": now + 600}
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    registered = serialization.load_pem_private_key(key["private_key"].encode(), password=None)

    good = requests.post(key["token_uri"], data={"grant_type": grant,
                                                 "assertion": _jwt(registered, claims, key["private_key_id"])},
                         timeout=10)
    assert good.status_code == 200, good.text
    assert good.json()["token_type"] == "Bearer"

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for kid in (key["private_key_id"], hashlib.sha1(b"unknown").hexdigest()):
        bad = requests.post(key["token_uri"], data={"grant_type": grant, "assertion": _jwt(stranger, claims, kid)},
                            timeout=10)
        assert bad.status_code == 401, bad.text
        assert bad.json()["error"] == "invalid_grant"

    # And without a token the emulator itself answers nothing.
    anonymous = requests.get(GCS_ENDPOINT + "/storage/v1/b", params={"project": "gcsfront-local"}, timeout=10)
    assert anonymous.status_code == 401


def test_privileged_gcsfuse_pod_reads_a_seeded_object_byte_for_byte(kube, namespace, frontend_image, gcs_session):
    """A privileged pod runs the project's gcsfuse invocation (image entrypoint, mount mode) against the
    in-cluster emulator with the generated service-account key; a seeded binary object reads back exactly."""
    bucket = "fuse-" + namespace
    ensure_bucket(gcs_session, bucket)
    data = os.urandom(300_000)
    upload(gcs_session, bucket, "dir/object.bin", data)

    gcsfuse_yaml = "\n".join([
        "implicit-dirs: true",
        "file-system: {uid: 33, gid: 33, file-mode: '0444', dir-mode: '0555'}",
        "gcs-connection: {custom-endpoint: 'http://%s/storage/v1/'}" % GCS_CLUSTER_HOST,
        "enable-hns: false",
        "gcs-retries: {max-retry-attempts: 3}",
    ])
    apply(kube, namespace, [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "key"},
         "stringData": {"key.json": SA_KEY_FILE.read_text()}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fuse"}, "data": {"gcsfuse.yaml": gcsfuse_yaml}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fuse", "labels": {"app": "fuse"}}, "spec": {
            "enableServiceLinks": False,
            "containers": [{
                "name": "fuse", "image": frontend_image, "imagePullPolicy": "Always",
                "securityContext": {"privileged": True},
                "env": [{"name": "GCSFRONT_MODE", "value": "mount"},
                        {"name": "GCSFRONT_BUCKET", "value": bucket},
                        {"name": "GCSFRONT_GCSFUSE_CONFIG", "value": "/etc/fuse/gcsfuse.yaml"},
                        {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/secrets/key.json"}],
                "readinessProbe": {"exec": {"command": ["mountpoint", "-q", "/mnt/gcs"]}, "periodSeconds": 1},
                "volumeMounts": [{"name": "key", "mountPath": "/var/secrets", "readOnly": True},
                                 {"name": "fuse", "mountPath": "/etc/fuse", "readOnly": True}]}],
            "volumes": [{"name": "key", "secret": {"secretName": "key"}},
                        {"name": "fuse", "configMap": {"name": "fuse"}}]}},
    ])
    wait_for(lambda: ready_pods(kube, namespace, "app=fuse"), 120, what="the gcsfuse pod to mount the bucket")

    mounts = pod_exec(kube, namespace, "fuse", ["cat", "/proc/mounts"])
    assert any(line.split()[:3] == [bucket, "/mnt/gcs", "fuse.gcsfuse"] for line in mounts.splitlines()), mounts
    read_back = base64.b64decode(pod_exec(kube, namespace, "fuse", ["base64", "-w0", "/mnt/gcs/dir/object.bin"]))
    assert len(read_back) == len(data) and read_back == data
