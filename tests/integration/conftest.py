"""Fixtures for integration tests on the live local substrate (roles/local_cluster).

The substrate must be up (`ansible-playbook playbooks/local_cluster.yml`); .ci/run brings it up first.
When it is not, every test here fails with that reason: nothing is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((REPO / "roles/local_cluster/defaults/main.yml").read_text())
CONTEXT = DEFAULTS["local_cluster_context"]
STATE_DIR = pathlib.Path(DEFAULTS["local_cluster_state_dir"])
GCS_ENDPOINT = "http://%s:%s" % (DEFAULTS["local_cluster_gcs_lb_ip"], DEFAULTS["local_cluster_gcs_port"])
GCS_CLUSTER_HOST = "gcs.%s.svc.cluster.local:%s" % (
    DEFAULTS["local_cluster_gcs_namespace"], DEFAULTS["local_cluster_gcs_port"])
SA_KEY_FILE = STATE_DIR / "gcs-emulator/service-account/service-account.json"
REGISTRY = "localhost:%s" % DEFAULTS["local_cluster_registry_port"]
NETNS = DEFAULTS["local_cluster_netns"]

# The collection's own waiter, imported as Ansible does (collections/ links to the repo root).
sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.gcsfront.gke.plugins.module_utils import _waiter  # noqa: E402


def wait_for(fetch, timeout, interval=1.0, what="condition", predicate=lambda value: value):
    """predicate(fetch()) (by default fetch()'s value) once it is truthy, polled on a monotonic clock
    (module_utils._waiter.wait); errors are retried until the deadline. Fails with `what` and the last error
    otherwise."""
    value, _elapsed, last, _attempts = _waiter.wait(fetch, predicate, timeout, interval)
    if not value:
        pytest.fail("timed out after %ss waiting for %s (last error: %s)" % (timeout, what, last))
    return value


def run_playbook(*args, timeout=1200, check=True):
    """Run ansible-playbook from the repo root; return the CompletedProcess (stdout+stderr in .stdout)."""
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), *args]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"}, check=False)
    if check and proc.returncode != 0:
        pytest.fail("%s failed (rc %s):\n%s" % (" ".join(args), proc.returncode, proc.stdout[-4000:]))
    return proc


def redeploy(*args, **kwargs):
    """deploy.yml onto a substrate known to be up, leaving it unchecked (`--skip-tags local_cluster`)."""
    return run_playbook("deploy.yml", "--skip-tags", "local_cluster", *args, **kwargs)


def recap(output):
    """Parse the PLAY RECAP line of localhost into a dict of counters."""
    for line in output.splitlines():
        if line.startswith("localhost") and "ok=" in line:
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split(":", 1)[1].split())}
    raise AssertionError("no PLAY RECAP in output:\n" + output[-2000:])


@pytest.fixture(scope="session")
def kube():
    """A kubernetes ApiClient for the merged gcsfront-local context; fails when the substrate is down."""
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(context=CONTEXT)
        node = client.CoreV1Api(api).read_node(DEFAULTS["local_cluster_node_name"], _request_timeout=5)
    except Exception as e:  # noqa: BLE001
        pytest.fail("the local substrate is not up (context %s: %s); run ansible-playbook "
                    "playbooks/local_cluster.yml first" % (CONTEXT, e))
    assert node is not None
    return api


@pytest.fixture
def namespace(kube):
    """A fresh namespace for one test, deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    name = "t-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def apply(kube, namespace, docs):
    """Create each manifest dict in namespace."""
    from kubernetes import utils

    for doc in docs:
        utils.create_from_dict(kube, doc, namespace=namespace)


def lb_address(kube, namespace, name, timeout=60):
    """The Service's LoadBalancer address, waited for with lb_smoke's predicate (module_utils._waiter.lb_address)."""
    from kubernetes import client

    core = client.CoreV1Api(kube)

    def service():
        return kube.sanitize_for_serialization(core.read_namespaced_service(name, namespace))

    return wait_for(service, timeout, what="a LoadBalancer address for %s/%s" % (namespace, name),
                    predicate=_waiter.lb_address)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        c = docker.from_env()
        c.ping()
    except Exception as e:  # noqa: BLE001
        pytest.fail("no Docker engine answers (%s); the substrate role starts one" % e)
    return c


def build_and_push(docker_client, context, repository, tag, buildargs=None):
    """Build an image from a Dockerfile with dockerd and push it to the local registry; return the ref."""
    ref = "%s/%s:%s" % (REGISTRY, repository, tag)
    docker_client.images.build(path=str(context), tag=ref, buildargs=buildargs or {}, network_mode="host", rm=True)
    for line in docker_client.images.push("%s/%s" % (REGISTRY, repository), tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    return ref


@pytest.fixture(scope="session")
def gcs_session():
    """An AuthorizedSession for the emulator, authenticated with the substrate's service-account key."""
    import google.auth.transport.requests
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        str(SA_KEY_FILE), scopes=["https://www.googleapis.com/auth/devstorage.full_control"])
    session = google.auth.transport.requests.AuthorizedSession(creds)
    session.trust_env = False  # the emulator is local: never through a proxy
    return session


def ensure_bucket(gcs_session, bucket):
    r = gcs_session.post(GCS_ENDPOINT + "/storage/v1/b", params={"project": "gcsfront-local"},
                         json={"name": bucket}, timeout=10)
    assert r.status_code in (200, 409), r.text


def upload(gcs_session, bucket, name, data, content_type="application/octet-stream"):
    r = gcs_session.post(GCS_ENDPOINT + "/upload/storage/v1/b/%s/o" % bucket,
                         params={"uploadType": "media", "name": name}, data=data,
                         headers={"Content-Type": content_type}, timeout=30)
    assert r.status_code == 200, r.text
    return json.loads(r.text)


ECHO_SRC = pathlib.Path(__file__).parent / "fixtures/echo"


@pytest.fixture(scope="session")
def echo_image(docker_client, tmp_path_factory):
    """The echo probe, compiled with a fresh nonce, built by dockerd from a Dockerfile, pushed to the registry."""
    nonce = uuid.uuid4().hex[:12]
    ctx = tmp_path_factory.mktemp("echo")
    shutil.copy(ECHO_SRC / "Dockerfile", ctx)
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "build", "-trimpath", "-ldflags", "-X main.nonce=" + nonce, "-o", str(ctx / "echo"), "."],
                   cwd=ECHO_SRC, check=True, env=env)
    ref = build_and_push(docker_client, ctx, "gcsfront-test/echo", nonce)
    return ref, nonce


def echo_workload(image, replicas=1):
    labels = {"app": "echo"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "enableServiceLinks": False,
                      "containers": [{"name": "echo", "image": image, "imagePullPolicy": "Always",
                                      "ports": [{"containerPort": 8080}],
                                      "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                         "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
         "spec": {"type": "LoadBalancer", "selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]


def ready_pods(kube, namespace, selector):
    from kubernetes import client

    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]


IMAGE_DEFAULTS = yaml.safe_load((REPO / "roles/image/defaults/main.yml").read_text())


@pytest.fixture(scope="session")
def frontend_image(docker_client):
    """The project's nginx + gcsfuse image (roles/image/files), built by dockerd and pushed to the registry."""
    context = REPO / "roles/image/files"
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
    digest.update(("%(image_gcsfuse_version)s %(image_go_version)s" % IMAGE_DEFAULTS).encode())
    return build_and_push(docker_client, context, "gcsfront-test/nginx-gcsfuse", digest.hexdigest()[:12],
                          buildargs={"GCSFUSE_VERSION": str(IMAGE_DEFAULTS["image_gcsfuse_version"]),
                                     "GO_VERSION": str(IMAGE_DEFAULTS["image_go_version"])})


def pod_exec(kube, namespace, pod, command, container=None):
    """Run command in a pod's container and return its stdout (text)."""
    from kubernetes import client
    from kubernetes.stream import stream

    return stream(client.CoreV1Api(kube).connect_get_namespaced_pod_exec, pod, namespace, command=command,
                  container=container, stderr=True, stdin=False, stdout=True, tty=False, _preload_content=True)
