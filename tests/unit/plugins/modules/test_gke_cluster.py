"""gcsfront.gke.gke_cluster and the gke_cluster role, against a stand-in GKE API started here on 127.0.0.1.

Nothing here reaches Google Cloud: the module's api_endpoint, and the token_uri of a service-account key made
here, point at the stand-in (FakeGke), which answers clusters get/list/create/update, nodePools create/update/
setSize and operations get, with operations that run for a few polls. Any other address would go to a proxy on
127.0.0.1:9 that does not exist. The pure planning (module_utils._gke) is tested directly.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import pathlib
import re
import subprocess
import threading
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from conftest import OFFLINE_ENV, REPO, adhoc, inventory_vars, stand_in
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.gcsfront.gke.plugins.module_utils._gke import (
    actual_state, desired_state, elsewhere_problem, immutable_problem, operation_problem, plan)

BIN = REPO / ".venv/bin"
# Application Default Credentials only where a test sets them.
ENV = {k: v for k, v in OFFLINE_ENV.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}

TOKEN = "stand-in-access-token"
CA_PEM = "-----BEGIN CERTIFICATE-----\nU3RhbmQtaW4gQ0E=\n-----END CERTIFICATE-----\n"
VERSION = "1.33.5-gke.1162000"
IMAGE = "COS_CONTAINERD"
POOL = "default-pool"
WI_POOL = "my-project.svc.id.goog"
ZONE = "asia-northeast1-a"
BASE = "/v1/projects/my-project/locations/%s" % ZONE
MUTATING = ("POST", "PUT", "DELETE")

# The 2016 cluster types, as the inventories must describe them: (machine type, disk GB), 3 nodes each.
SHAPES = {"cluster1": ("n1-standard-1", 100), "cluster2": ("n1-standard-1", 300),
          "cluster3": ("n1-standard-4", 100), "cluster4": ("n1-standard-4", 300)}
AUTOPILOT = {"gcsfront_cluster": {"name": "gcsfront-autopilot", "zone": ZONE, "autopilot": True},
             "gcsfront_kube_context": "gke_my-project_asia-northeast1_gcsfront-autopilot"}


class FakeGke:
    """The GKE API v1 calls the module makes, for project my-project, with its rules: one update per
    clusters.update, a pool's GKE_METADATA only on a cluster with Workload Identity, nodePools.update only with the
    pool's own version and image type. Each operation answers RUNNING for `polls` polls, then DONE."""

    def __init__(self):
        self.lock = threading.Lock()
        self.clusters = {}  # (location, name) -> Cluster
        self.operations = {}  # name -> [Operation, polls left, effect once done]
        self.requests = []  # (method, path, body), token calls left out
        self.tokens = 0
        self.polls = 2
        self.fail_operation = None  # an error message for the next operation
        self.never_done = False
        self.status = {}  # (method, path regex) -> (status, message)
        self.endpoint = None

    # The state a test starts from.

    def add(self, name, location=ZONE, autopilot=False, machine_type="n1-standard-1", disk=100, count=3,
            metadata="GKE_METADATA", workload_pool=WI_POOL, csi=True, status="RUNNING", pools=True):
        cluster = {"name": name, "location": location, "status": status, "endpoint": "34.84.0.10",
                   "masterAuth": {"clusterCaCertificate": base64.b64encode(CA_PEM.encode()).decode()},
                   "currentMasterVersion": VERSION, "addonsConfig": {"httpLoadBalancing": {}}}
        if workload_pool:
            cluster["workloadIdentityConfig"] = {"workloadPool": workload_pool}
        if csi:
            cluster["addonsConfig"]["gcsFuseCsiDriverConfig"] = {"enabled": True}
        if autopilot:
            cluster["autopilot"] = {"enabled": True}
            cluster["nodePools"] = [_pool("default-pool", "e2-standard-2", 100, 1, "GKE_METADATA")]
        elif pools:
            cluster["nodePools"] = [_pool(POOL, machine_type, disk, count, metadata)]
        self.clusters[(location, name)] = cluster
        return cluster

    def mutations(self):
        return [(method, path, body) for method, path, body in self.requests if method in MUTATING]

    def calls(self):
        """(method, path) of every API call, operation polls folded into one ("GET", ".../operations/NAME")."""
        out = []
        for method, path, _body in self.requests:
            if out and "/operations/" in path and out[-1] == (method, path):
                continue
            out.append((method, path))
        return out

    # The API.

    def answer(self, method, path, body, authorization):
        if path == "/token" and method == "POST":
            with self.lock:
                self.tokens += 1
            return 200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        with self.lock:
            self.requests.append((method, path, body))
            if authorization != "Bearer " + TOKEN:
                return _error(401, "Request had invalid authentication credentials.")
            for (m, pattern), (status, message) in self.status.items():
                if m == method and re.search(pattern, path):
                    return _error(status, message)
            m = re.fullmatch(r"/v1/projects/my-project/locations/([^/]+)/(.*)", unquote(urlsplit(path).path))
            if not m:
                return _error(404, "Not found: %s" % path)
            return self._route(method, m.group(1), m.group(2), body)

    def _route(self, method, location, rest, body):
        parts = rest.split("/")
        if parts == ["clusters"] and method == "GET":
            return 200, {"clusters": [copy.deepcopy(c) for (loc, _n), c in sorted(self.clusters.items())
                                      if location in ("-", loc)]}
        if parts == ["clusters"] and method == "POST":
            return self._create(location, body["cluster"])
        if parts[0] == "operations" and len(parts) == 2 and method == "GET":
            return self._poll(parts[1])
        cluster = self.clusters.get((location, parts[1]))
        if cluster is None:
            return _error(404, "Not found: projects/my-project/locations/%s/clusters/%s." % (location, parts[1]))
        if len(parts) == 2 and method == "GET":
            return 200, copy.deepcopy(cluster)
        if len(parts) == 2 and method == "PUT":
            return self._update(cluster, body["update"])
        if parts[2:] == ["nodePools"] and method == "POST":
            pool = copy.deepcopy(body["nodePool"])
            pool.update(version=VERSION, status="RUNNING")
            pool["config"]["imageType"] = IMAGE
            return self._operation(cluster, "CREATE_NODE_POOL", lambda: cluster.setdefault("nodePools", []).append(pool))
        pool = next((p for p in cluster.get("nodePools") or [] if p["name"] == parts[3].split(":")[0]), None)
        if pool is None:
            return _error(404, "Not found: node pool %s." % parts[3])
        if len(parts) == 4 and parts[3].endswith(":setSize") and method == "POST":
            return self._operation(cluster, "SET_NODE_POOL_SIZE", lambda: pool.update(initialNodeCount=body["nodeCount"]))
        if len(parts) == 4 and method == "PUT":
            if (body.get("nodeVersion"), body.get("imageType")) != (pool["version"], pool["config"]["imageType"]):
                return _error(400, "the update would change the pool's version or image type")
            if not cluster.get("workloadIdentityConfig", {}).get("workloadPool"):
                return _error(400, "Workload Identity must be enabled on the cluster to use GKE_METADATA.")
            return self._operation(cluster, "UPDATE_CLUSTER", lambda: pool["config"].update(
                workloadMetadataConfig=body["workloadMetadataConfig"]))
        return _error(404, "Not found: %s %s" % (method, rest))

    def _create(self, location, spec):
        if (location, spec["name"]) in self.clusters:
            return _error(409, "Already exists: projects/my-project/locations/%s/clusters/%s." % (location, spec["name"]))
        cluster = copy.deepcopy(spec)
        cluster.update(location=location, status="PROVISIONING", endpoint="34.84.0.%d" % (len(self.clusters) + 20),
                       masterAuth={"clusterCaCertificate": base64.b64encode(CA_PEM.encode()).decode()})
        for pool in cluster.get("nodePools") or []:
            pool.update(version=VERSION, status="RUNNING")
            pool["config"]["imageType"] = IMAGE
        if (cluster.get("autopilot") or {}).get("enabled"):
            cluster["nodePools"] = [_pool("default-pool", "e2-standard-2", 100, 1, "GKE_METADATA")]
        self.clusters[(location, spec["name"])] = cluster
        return self._operation(cluster, "CREATE_CLUSTER", lambda: cluster.update(status="RUNNING"))

    def _update(self, cluster, update):
        if len(update) != 1:
            return _error(400, "Only one update can be applied to a cluster with each request.")
        (field, value), = update.items()
        if field not in ("desiredWorkloadIdentityConfig", "desiredAddonsConfig"):
            return _error(400, "unexpected update %s" % field)

        def effect():
            if field == "desiredWorkloadIdentityConfig":
                cluster["workloadIdentityConfig"] = value
            else:
                cluster.setdefault("addonsConfig", {}).update(value)
        return self._operation(cluster, "UPDATE_CLUSTER", effect)

    def _operation(self, cluster, kind, effect):
        name = "operation-%d" % (len(self.operations) + 1)
        op = {"name": name, "operationType": kind, "status": "RUNNING", "zone": cluster["location"],
              "targetLink": "clusters/%s" % cluster["name"]}
        self.operations[name] = [op, self.polls, effect]
        return 200, copy.deepcopy(op)

    def _poll(self, name):
        entry = self.operations.get(name)
        if entry is None:
            return _error(404, "Not found: operation %s." % name)
        op, left, effect = entry
        if op["status"] != "DONE" and not self.never_done:
            if left > 0:
                entry[1] -= 1
            else:
                op["status"] = "DONE"
                if self.fail_operation:
                    op["error"] = {"code": 9, "message": self.fail_operation}
                    op["statusMessage"] = self.fail_operation
                else:
                    effect()
        return 200, copy.deepcopy(op)


def _pool(name, machine_type, disk, count, metadata):
    config = {"machineType": machine_type, "diskSizeGb": disk, "imageType": IMAGE}
    if metadata:
        config["workloadMetadataConfig"] = {"mode": metadata}
    return {"name": name, "config": config, "initialNodeCount": count, "version": VERSION, "status": "RUNNING"}


def _error(status, message):
    return status, {"error": {"code": status, "message": message, "status": "X"}}


@pytest.fixture
def fake():
    gke = FakeGke()
    gke.endpoint, stop = stand_in(lambda method, path, body, headers: gke.answer(method, path, body,
                                                                                 headers.get("Authorization")))
    yield gke
    stop()


@pytest.fixture(scope="module")
def rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def key_file(tmp_path, fake, rsa_pem):
    """An operator's service-account key whose token endpoint is the stand-in."""
    path = tmp_path / "operator-key.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "my-project", "private_key_id": "0123abcd", "private_key": rsa_pem,
        "client_email": "operator@my-project.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": fake.endpoint + "/token"}))
    return path


@pytest.fixture
def plugin_dir(tmp_path):
    """A gke-gcloud-auth-plugin on PATH (the role checks that one is there)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    plugin = directory / "gke-gcloud-auth-plugin"
    plugin.write_text("#!/bin/sh\nexit 1\n")
    plugin.chmod(0o755)
    return directory


def run_module(fake, key_file, *flags, env=None, **args):
    """(state, result, other output) of one ad-hoc run of the module; the other output holds a --diff."""
    args = dict(dict(project="my-project", location=ZONE, name="gcsfront-cluster1", machine_type="n1-standard-1",
                     disk_size_gb=100, node_count=3, credentials_file=str(key_file), api_endpoint=fake.endpoint,
                     wait_sleep=0.05), **args)
    return adhoc("gcsfront.gke.gke_cluster", {k: v for k, v in args.items() if v is not None}, *flags,
                 env=env or ENV)


def run_play(fake, tmp_path, key_file, plugin_dir, inventory, *flags, extra=None, path=None):
    """playbooks/cluster.yml on an inventory, against the stand-in; (returncode, output, kubeconfig path)."""
    kubeconfig = tmp_path / "kubeconfig"
    extra_vars = dict({"gke_cluster_api_endpoint": fake.endpoint, "gke_cluster_kubeconfig": str(kubeconfig),
                       "gke_cluster_wait_sleep": 0.05}, **(extra or {}))
    env = dict(ENV, GCSFRONT_KEY_FILE=str(key_file), PATH=path or "%s:%s" % (plugin_dir, ENV["PATH"]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "playbooks/cluster.yml", "-i", "inventories/" + inventory,
                           "-e", json.dumps(extra_vars), *flags], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr, kubeconfig


def recap(output):
    m = re.search(r"^localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", output, re.M)
    assert m, output[-3000:]
    return {"ok": int(m.group(1)), "changed": int(m.group(2)), "failed": int(m.group(3))}


def standard_body(name, machine_type, disk):
    return {"cluster": {
        "name": name,
        "workloadIdentityConfig": {"workloadPool": WI_POOL},
        "addonsConfig": {"gcsFuseCsiDriverConfig": {"enabled": True}},
        "nodePools": [{"name": POOL, "initialNodeCount": 3,
                       "config": {"machineType": machine_type, "diskSizeGb": disk,
                                  "workloadMetadataConfig": {"mode": "GKE_METADATA"}}}],
    }}


# The inventories.

@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_inventory_describes_its_2016_cluster_and_names_it_as_its_context_does(name):
    v = inventory_vars(name)
    cluster = v["gcsfront_cluster"]
    assert cluster == {"name": "gcsfront-" + name, "zone": ZONE, "machine_type": SHAPES[name][0],
                       "disk_size_gb": SHAPES[name][1], "node_count": 3, "autopilot": False}
    assert v["gcsfront_kube_context"] == "gke_%s_%s_%s" % (v["gcsfront_project_id"], ZONE, cluster["name"])


def test_deploy_runs_the_role_first_and_only_when_asked():
    first = yaml.safe_load((REPO / "deploy.yml").read_text())[0]
    (task,) = first["tasks"]
    assert task["ansible.builtin.include_role"]["name"] == "gcsfront.gke.gke_cluster"
    assert task["when"] == "gcsfront_manage_cluster | default(false) | bool"


# The pure planning.

PARAMS = {"project": "my-project", "location": ZONE, "name": "gcsfront-cluster1", "autopilot": False,
          "node_pool": POOL, "machine_type": "n1-standard-1", "disk_size_gb": 100, "node_count": 3}


def _cluster(**kwargs):
    fake = FakeGke()
    return fake.add("gcsfront-cluster1", **kwargs)


def test_a_matching_cluster_plans_nothing_whatever_else_it_has():
    cluster = _cluster()
    cluster["nodePools"].append(_pool("other", "e2-medium", 50, 7, ""))
    cluster["releaseChannel"] = {"channel": "REGULAR"}
    assert plan(desired_state(PARAMS), cluster) == []
    assert immutable_problem(desired_state(PARAMS), actual_state(cluster, POOL)) is None


def test_the_plan_updates_the_cluster_first_one_field_per_call():
    cluster = _cluster(workload_pool="", csi=False, metadata="GCE_METADATA", count=1)
    steps = plan(desired_state(PARAMS), cluster)
    assert [(action, body) for action, body, _description in steps] == [
        ("update_cluster", {"update": {"desiredWorkloadIdentityConfig": {"workloadPool": WI_POOL}}}),
        ("update_cluster", {"update": {"desiredAddonsConfig": {"gcsFuseCsiDriverConfig": {"enabled": True}}}}),
        ("update_node_pool", {"nodeVersion": VERSION, "imageType": IMAGE,
                              "workloadMetadataConfig": {"mode": "GKE_METADATA"}}),
        ("set_node_pool_size", {"nodeCount": 3}),
    ]
    assert steps[3][2] == "resize node pool default-pool from 1 to 3 nodes"


def test_a_missing_pool_is_created_and_an_autopilot_cluster_has_none_to_manage():
    steps = plan(desired_state(PARAMS), _cluster(pools=False))
    assert steps == [("create_node_pool", {"nodePool": standard_body("x", "n1-standard-1", 100)["cluster"]["nodePools"][0]},
                      "create node pool default-pool (3 x n1-standard-1, 100 GB)")]
    autopilot = dict(PARAMS, autopilot=True, machine_type=None, disk_size_gb=None, node_count=None)
    assert plan(desired_state(autopilot), _cluster(autopilot=True)) == []


@pytest.mark.parametrize("change, expected", [
    ({"machine_type": "n1-standard-4"}, "node pool default-pool of cluster gcsfront-cluster1 in asia-northeast1-a has "
     "machine type n1-standard-1, not n1-standard-4: they cannot change in place; set gcsfront_cluster's "
     "machine_type: n1-standard-1, or replace the pool (gcloud container node-pools delete default-pool --cluster "
     "gcsfront-cluster1 --location asia-northeast1-a) and run again"),
    ({"disk_size_gb": 300}, "node pool default-pool of cluster gcsfront-cluster1 in asia-northeast1-a has disk size "
     "(GB) 100, not 300: they cannot change in place; set gcsfront_cluster's disk_size_gb: 100, or replace the pool"),
    ({"autopilot": True}, "cluster gcsfront-cluster1 in asia-northeast1-a is a Standard cluster, not Autopilot: the "
     "cluster type cannot change; set gcsfront_cluster.autopilot to false, or delete the cluster"),
])
def test_immutable_fields_that_differ_are_one_line_with_the_way_out(change, expected):
    problem = immutable_problem(desired_state(dict(PARAMS, **change)), actual_state(_cluster(), POOL))
    assert problem.startswith(expected) and "\n" not in problem, problem


def test_the_same_name_in_another_zone_is_a_location_that_differs():
    other = _cluster()
    other["location"] = "us-central1-a"
    problem = elsewhere_problem(desired_state(PARAMS), [other])
    assert problem.startswith("cluster gcsfront-cluster1 exists in us-central1-a, not asia-northeast1-a: a cluster's "
                              "location cannot change; set gcsfront_cluster.zone to us-central1-a"), problem
    assert elsewhere_problem(desired_state(PARAMS), [dict(other, name="another")]) is None


def test_operation_problems():
    assert operation_problem({"name": "op", "status": "DONE"}) is None
    assert operation_problem({"name": "op", "operationType": "CREATE_CLUSTER", "status": "DONE",
                              "error": {"code": 8, "message": "Insufficient regional quota\nmore"}}) == (
        "operation op (CREATE_CLUSTER) failed: Insufficient regional quota")
    assert operation_problem({"name": "op", "operationType": "X", "statusMessage": "old style"}).endswith("old style")


# The module against the stand-in.

def test_a_matching_cluster_is_left_alone(fake, key_file):
    fake.add("gcsfront-cluster1")
    state, r, _shown = run_module(fake, key_file)
    assert state == "SUCCESS" and r["changed"] is False and r["actions"] == [] and r["operations"] == [], r
    assert fake.calls() == [("GET", BASE + "/clusters/gcsfront-cluster1")]
    assert fake.tokens == 1
    assert r["cluster"]["endpoint"] == "34.84.0.10" and r["cluster"]["certificate_authority_data"] == CA_PEM, r
    assert r["cluster"]["kube_context"] == "gke_my-project_asia-northeast1-a_gcsfront-cluster1"
    assert r["cluster"]["node_pool"] == {"name": POOL, "machine_type": "n1-standard-1", "disk_size_gb": 100,
                                         "node_count": 3, "workload_metadata": "GKE_METADATA"}


def test_another_node_count_is_one_resize(fake, key_file):
    fake.add("gcsfront-cluster1", count=2)
    state, r, _shown = run_module(fake, key_file)
    assert state == "CHANGED" and r["actions"] == ["resize node pool default-pool from 2 to 3 nodes"], r
    assert fake.mutations() == [("POST", BASE + "/clusters/gcsfront-cluster1/nodePools/default-pool:setSize",
                                 {"nodeCount": 3})]
    assert fake.calls() == [("GET", BASE + "/clusters/gcsfront-cluster1"),
                            ("POST", BASE + "/clusters/gcsfront-cluster1/nodePools/default-pool:setSize"),
                            ("GET", BASE + "/operations/operation-1"),
                            ("GET", BASE + "/clusters/gcsfront-cluster1")]
    assert [op["type"] for op in r["operations"]] == ["SET_NODE_POOL_SIZE"] and r["elapsed"] >= 0, r
    assert r["cluster"]["node_pool"]["node_count"] == 3
    state, r, _shown = run_module(fake, key_file)
    assert state == "SUCCESS" and r["changed"] is False and len(fake.mutations()) == 1, r


def test_check_mode_changes_nothing_and_diff_shows_the_managed_fields(fake, key_file):
    fake.add("gcsfront-cluster1", count=2, workload_pool="", csi=False, metadata="GCE_METADATA")
    state, r, shown = run_module(fake, key_file, "--check", "--diff")
    assert state == "CHANGED" and r["actions"] == [
        "set the Workload Identity pool to my-project.svc.id.goog",
        "enable the Cloud Storage FUSE CSI driver add-on",
        "set node pool default-pool's workload metadata to GKE_METADATA",
        "resize node pool default-pool from 2 to 3 nodes"], r
    assert fake.mutations() == [] and r["operations"] == []
    lines = shown.splitlines()
    for line in ('-    "gcs_fuse_csi_driver": false,', '+    "gcs_fuse_csi_driver": true,',
                 '-        "node_count": 2,', '+        "node_count": 3,', '-    "workload_pool": ""',
                 '+    "workload_pool": "my-project.svc.id.goog"', '-        "workload_metadata": "GCE_METADATA"'):
        assert line in lines, shown


def test_check_mode_on_a_missing_cluster_creates_nothing(fake, key_file):
    state, r, _shown = run_module(fake, key_file, "--check")
    assert state == "CHANGED" and r["actions"] == ["create Standard cluster gcsfront-cluster1 in asia-northeast1-a"]
    assert r["cluster"] == {} and fake.mutations() == [], r
    assert fake.calls() == [("GET", BASE + "/clusters/gcsfront-cluster1"),
                            ("GET", "/v1/projects/my-project/locations/-/clusters")]


def test_updates_come_one_per_operation_in_order(fake, key_file):
    fake.add("gcsfront-cluster1", workload_pool="", csi=False, metadata="GCE_METADATA")
    state, r, _shown = run_module(fake, key_file)
    assert state == "CHANGED", r
    path = BASE + "/clusters/gcsfront-cluster1"
    assert fake.mutations() == [
        ("PUT", path, {"update": {"desiredWorkloadIdentityConfig": {"workloadPool": WI_POOL}}}),
        ("PUT", path, {"update": {"desiredAddonsConfig": {"gcsFuseCsiDriverConfig": {"enabled": True}}}}),
        ("PUT", path + "/nodePools/default-pool", {"nodeVersion": VERSION, "imageType": IMAGE,
                                                   "workloadMetadataConfig": {"mode": "GKE_METADATA"}})]
    assert [op["name"] for op in r["operations"]] == ["operation-1", "operation-2", "operation-3"], r
    assert fake.clusters[(ZONE, "gcsfront-cluster1")]["addonsConfig"] == {
        "httpLoadBalancing": {}, "gcsFuseCsiDriverConfig": {"enabled": True}}
    assert r["cluster"]["workload_pool"] == WI_POOL and r["cluster"]["gcs_fuse_csi_driver"] is True


def test_a_missing_pool_is_created(fake, key_file):
    fake.add("gcsfront-cluster1", pools=False)
    state, r, _shown = run_module(fake, key_file, machine_type="n1-standard-4", disk_size_gb=300)
    assert state == "CHANGED", r
    assert fake.mutations() == [("POST", BASE + "/clusters/gcsfront-cluster1/nodePools",
                                 {"nodePool": standard_body("x", "n1-standard-4", 300)["cluster"]["nodePools"][0]})]


@pytest.mark.parametrize("args, found", [
    ({"machine_type": "n1-standard-4"}, "has machine type n1-standard-1, not n1-standard-4"),
    ({"disk_size_gb": 300, "node_count": 5}, "has disk size (GB) 100, not 300"),
    ({"autopilot": True, "machine_type": None, "disk_size_gb": None, "node_count": None},
     "is a Standard cluster, not Autopilot"),
])
def test_an_immutable_mismatch_fails_before_any_change(fake, key_file, args, found):
    location = "asia-northeast1" if args.get("autopilot") else ZONE
    fake.add("gcsfront-cluster1", location=location, count=2, csi=False)
    state, r, _shown = run_module(fake, key_file, location=location, **args)
    assert state == "FAILED!" and found in r["msg"] and "\n" not in r["msg"], r
    assert fake.mutations() == []


def test_the_same_name_in_another_zone_fails_before_any_change(fake, key_file):
    fake.add("gcsfront-cluster1", location="us-central1-a")
    state, r, _shown = run_module(fake, key_file)
    assert state == "FAILED!" and r["msg"].startswith(
        "cluster gcsfront-cluster1 exists in us-central1-a, not asia-northeast1-a: a cluster's location cannot "
        "change"), r
    assert fake.mutations() == []


def test_autopilot_options_for_nodes_fail_before_any_call(fake, key_file):
    state, r, _shown = run_module(fake, key_file, autopilot=True)
    assert state == "FAILED!" and r["msg"] == (
        "machine_type, disk_size_gb, node_count: Autopilot manages its nodes: leave them unset with autopilot=true"), r
    assert fake.requests == [] and fake.tokens == 0


def test_a_busy_cluster_is_waited_for_before_it_is_changed(fake, key_file):
    fake.add("gcsfront-cluster1", count=1, status="RECONCILING")
    answers = iter(["RECONCILING", "RUNNING"])
    original = fake.answer

    def answer(method, path, body, authorization):
        status, data = original(method, path, body, authorization)
        if method == "GET" and path.endswith("/clusters/gcsfront-cluster1") and status == 200:
            cluster = fake.clusters[(ZONE, "gcsfront-cluster1")]
            cluster["status"] = next(answers, "RUNNING")
        return status, data
    fake.answer = answer
    state, r, _shown = run_module(fake, key_file)
    assert state == "CHANGED", r
    gets = [c for c in fake.calls() if c == ("GET", BASE + "/clusters/gcsfront-cluster1")]
    assert len(gets) >= 3 and fake.mutations()[0][0] == "POST", fake.calls()
    assert fake.calls().index(("POST", BASE + "/clusters/gcsfront-cluster1/nodePools/default-pool:setSize")) >= 2


def test_a_failed_operation_is_one_line(fake, key_file):
    fake.fail_operation = "Insufficient regional quota to satisfy request: resource \"CPUS\".\nDetails follow"
    state, r, _shown = run_module(fake, key_file)
    assert state == "FAILED!" and r["msg"] == (
        'operation operation-1 (CREATE_CLUSTER) failed: Insufficient regional quota to satisfy request: resource '
        '"CPUS".'), r


def test_an_operation_that_outlasts_the_timeout_says_so(fake, key_file):
    fake.add("gcsfront-cluster1", count=2)
    fake.never_done = True
    state, r, _shown = run_module(fake, key_file, wait_timeout=1, wait_sleep=0.2)
    assert state == "FAILED!" and re.fullmatch(
        r"timed out after 1s waiting for operation operation-1 \(SET_NODE_POOL_SIZE of cluster gcsfront-cluster1\); "
        r"GKE goes on with it: run the task again later \(or raise wait_timeout\)", r["msg"]), r
    assert r["elapsed"] >= 1, r


def test_forbidden_names_the_role_and_the_api(fake, key_file):
    fake.status[("GET", r"/clusters/gcsfront-cluster1$")] = (403, "Required 'container.clusters.get' permission")
    state, r, _shown = run_module(fake, key_file)
    assert state == "FAILED!" and r["msg"] == (
        "cannot read cluster gcsfront-cluster1: the GKE API at %s answered 403 (Required 'container.clusters.get' "
        "permission); the credentials need roles/container.admin on project my-project, and the project needs the "
        "container.googleapis.com API enabled" % fake.endpoint), r


def test_application_default_credentials_when_no_key_is_given(fake, key_file):
    fake.add("gcsfront-cluster1")
    env = dict(ENV, GOOGLE_APPLICATION_CREDENTIALS=str(key_file))
    state, r, _shown = run_module(fake, key_file, credentials_file=None, env=env)
    assert state == "SUCCESS" and fake.tokens == 1, r


def test_a_bad_key_is_one_line_without_key_material(fake, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "authorized_user"}')
    state, r, _shown = run_module(fake, bad)
    assert state == "FAILED!" and r["msg"].startswith("%s is a 'authorized_user' key, not a service-account key" % bad)
    assert fake.requests == []


# The role through playbooks/cluster.yml, from each inventory.

@pytest.mark.parametrize("inventory", ["cluster1", "cluster2", "cluster3", "cluster4", "autopilot"])
def test_the_play_creates_each_inventorys_cluster_then_changes_nothing(fake, tmp_path, key_file, plugin_dir, inventory):
    extra = AUTOPILOT if inventory == "autopilot" else None
    rc, out, kubeconfig = run_play(fake, tmp_path, key_file, plugin_dir, "cluster1" if extra else inventory,
                                   extra=extra)
    assert rc == 0, out[-4000:]
    if extra:
        name, location = "gcsfront-autopilot", "asia-northeast1"
        body = {"cluster": {"name": name, "workloadIdentityConfig": {"workloadPool": WI_POOL},
                            "addonsConfig": {"gcsFuseCsiDriverConfig": {"enabled": True}},
                            "autopilot": {"enabled": True}}}
        context = AUTOPILOT["gcsfront_kube_context"]
    else:
        name, location = "gcsfront-" + inventory, ZONE
        body = standard_body(name, *SHAPES[inventory])
        context = inventory_vars(inventory)["gcsfront_kube_context"]
    base = "/v1/projects/my-project/locations/" + location
    assert fake.calls() == [("GET", base + "/clusters/" + name), ("GET", "/v1/projects/my-project/locations/-/clusters"),
                            ("POST", base + "/clusters"), ("GET", base + "/operations/operation-1"),
                            ("GET", base + "/clusters/" + name)]
    assert fake.mutations() == [("POST", base + "/clusters", body)]
    assert "gke_cluster: %s in %s: create %s cluster" % (name, location, "Autopilot" if extra else "Standard") in out
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["current-context"] == context
    assert config["contexts"] == [{"name": context, "context": {"cluster": context, "user": context}}]
    assert config["clusters"] == [{"name": context, "cluster": {
        "server": "https://34.84.0.20", "certificate-authority-data": base64.b64encode(CA_PEM.encode()).decode()}}]
    assert config["users"][0]["user"]["exec"] == {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
        "installHint": "Install gke-gcloud-auth-plugin for use with kubectl: gcloud components install "
                       "gke-gcloud-auth-plugin, or the google-cloud-cli-gke-gcloud-auth-plugin package",
        "provideClusterInfo": True}
    assert recap(out)["changed"] == 2

    rc, out, _kubeconfig = run_play(fake, tmp_path, key_file, plugin_dir, "cluster1" if extra else inventory,
                                    extra=extra)
    assert rc == 0 and recap(out)["changed"] == 0, out[-4000:]
    assert len(fake.mutations()) == 1
    assert "as wanted, nothing to change" in out


def test_the_play_in_check_mode_creates_nothing_and_writes_no_kubeconfig(fake, tmp_path, key_file, plugin_dir):
    rc, out, kubeconfig = run_play(fake, tmp_path, key_file, plugin_dir, "cluster2", "--check", "--diff")
    assert rc == 0, out[-4000:]
    assert fake.mutations() == [] and not kubeconfig.exists()
    assert "create Standard cluster gcsfront-cluster2 in asia-northeast1-a (check mode: nothing was changed)" in out, out


@pytest.mark.parametrize("extra, found", [
    ({"gcsfront_cluster": dict(AUTOPILOT["gcsfront_cluster"], machine_type="n1-standard-1")},
     "gke_cluster: an Autopilot cluster manages its nodes: leave machine_type, disk_size_gb and node_count unset"),
    ({"gcsfront_cluster": {"name": "gcsfront-cluster1", "zone": ZONE, "machine_type": "n1-standard-1"}},
     "gke_cluster: a Standard cluster needs machine_type, disk_size_gb and node_count (at least 1)"),
    ({"gcsfront_kube_context": "gcsfront-cluster1"}, 'gke_cluster: the kube context "gcsfront-cluster1" is not the '
     "cluster's, gke_my-project_asia-northeast1-a_gcsfront-cluster1"),
])
def test_the_preflight_stops_on_cross_field_mistakes(fake, tmp_path, key_file, plugin_dir, extra, found):
    rc, out, _kubeconfig = run_play(fake, tmp_path, key_file, plugin_dir, "cluster1", extra=extra)
    assert rc != 0 and found in out, out[-4000:]
    assert fake.requests == []


def test_the_play_stops_when_the_auth_plugin_is_missing(fake, tmp_path, key_file):
    fake.add("gcsfront-cluster1")
    # A PATH of everything on this machine's PATH but the plugin.
    tools = tmp_path / "tools"
    tools.mkdir()
    for directory in [BIN] + [pathlib.Path(d) for d in ENV["PATH"].split(os.pathsep) if d]:
        for tool in directory.glob("*") if directory.is_dir() else ():
            if tool.name != "gke-gcloud-auth-plugin" and not (tools / tool.name).exists():
                (tools / tool.name).symlink_to(tool)
    rc, out, _kubeconfig = run_play(fake, tmp_path, key_file, None, "cluster1", path=str(tools))
    assert rc != 0 and fake.mutations() == [], out[-4000:]
    assert "gets its credentials from gke-gcloud-auth-plugin, which is not on PATH: install it" in out, out[-4000:]
