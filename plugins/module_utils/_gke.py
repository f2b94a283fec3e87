# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""The GKE cluster the gke_cluster module manages, as pure data: the desired state from the module's options, the
actual state from the GKE API's Cluster resource (only the fields managed here), the requests that take one to the
other, and the one-line reasons to stop when a field that cannot change differs. No I/O here."""

from __future__ import annotations

import base64

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GKE_METADATA = "GKE_METADATA"
AUTH_PLUGIN = "gke-gcloud-auth-plugin"
# Cluster states (Cluster.status) in which it takes no update, and which pass by themselves.
BUSY = ("PROVISIONING", "RECONCILING")
# An operation's states (Operation.status): it is over once DONE.
DONE = "DONE"


class GkeError(Exception):
    """A failed GKE call or a state to stop at; status is the HTTP status when an answer came."""

    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def context_name(project, location, name):
    """The kubeconfig context gcloud container clusters get-credentials writes."""
    return "gke_%s_%s_%s" % (project, location, name)


def desired_state(params):
    """The managed fields as the module's options ask for them."""
    state = {"name": params["name"], "location": params["location"], "autopilot": bool(params["autopilot"]),
             "workload_pool": "%s.svc.id.goog" % params["project"], "gcs_fuse_csi_driver": True}
    if not params["autopilot"]:
        state["node_pool"] = {"name": params["node_pool"], "machine_type": params["machine_type"],
                              "disk_size_gb": params["disk_size_gb"], "node_count": params["node_count"],
                              "workload_metadata": GKE_METADATA}
    return state


def find_pool(cluster, name):
    """The node pool called name in a Cluster resource, or None."""
    for pool in (cluster or {}).get("nodePools") or []:
        if pool.get("name") == name:
            return pool
    return None


def actual_state(cluster, pool_name):
    """The managed fields of a Cluster resource (None: no cluster). A Standard cluster without the pool has
    node_pool None. A pool's node count is its initialNodeCount, per zone, which a resize (setSize) updates: the
    cluster autoscaler's changes are not in it."""
    if cluster is None:
        return None
    autopilot = bool((cluster.get("autopilot") or {}).get("enabled"))
    addons = cluster.get("addonsConfig") or {}
    state = {"name": cluster.get("name"), "location": cluster.get("location"), "autopilot": autopilot,
             "workload_pool": (cluster.get("workloadIdentityConfig") or {}).get("workloadPool") or "",
             "gcs_fuse_csi_driver": bool((addons.get("gcsFuseCsiDriverConfig") or {}).get("enabled"))}
    if not autopilot:
        pool = find_pool(cluster, pool_name)
        state["node_pool"] = None if pool is None else {
            "name": pool.get("name"),
            "machine_type": (pool.get("config") or {}).get("machineType"),
            "disk_size_gb": (pool.get("config") or {}).get("diskSizeGb"),
            "node_count": pool.get("initialNodeCount"),
            "workload_metadata": ((pool.get("config") or {}).get("workloadMetadataConfig") or {}).get("mode") or "",
        }
    return state


def pool_body(pool):
    """A NodePool resource for nodePools.create, or the cluster's nodePools on create."""
    return {"name": pool["name"], "initialNodeCount": pool["node_count"],
            "config": {"machineType": pool["machine_type"], "diskSizeGb": pool["disk_size_gb"],
                       "workloadMetadataConfig": {"mode": GKE_METADATA}}}


def create_body(desired):
    """The body of clusters.create: the cluster with Workload Identity and the GCS FUSE CSI driver on; a Standard
    cluster with its one node pool, an Autopilot cluster without any (Google manages its nodes)."""
    cluster = {"name": desired["name"],
               "workloadIdentityConfig": {"workloadPool": desired["workload_pool"]},
               "addonsConfig": {"gcsFuseCsiDriverConfig": {"enabled": True}}}
    if desired["autopilot"]:
        cluster["autopilot"] = {"enabled": True}
    else:
        cluster["nodePools"] = [pool_body(desired["node_pool"])]
    return {"cluster": cluster}


def immutable_problem(desired, actual):
    """One line saying which field that cannot change here differs, and what to do; None when none does."""
    where = "cluster %s in %s" % (desired["name"], desired["location"])
    if actual["autopilot"] != desired["autopilot"]:
        kinds = {True: "Autopilot", False: "Standard"}
        return ("%s is a %s cluster, not %s: the cluster type cannot change; set gcsfront_cluster.autopilot to %s, "
                "or delete the cluster (gcloud container clusters delete %s --location %s) and run again"
                % (where, kinds[actual["autopilot"]], kinds[desired["autopilot"]], str(actual["autopilot"]).lower(),
                   desired["name"], desired["location"]))
    want, have = desired.get("node_pool"), actual.get("node_pool")
    if not want or not have:
        return None
    differs = [(label, key) for label, key in (("machine type", "machine_type"), ("disk size (GB)", "disk_size_gb"))
               if have[key] != want[key]]
    if differs:
        what = ", ".join("%s %s, not %s" % (label, have[key], want[key]) for label, key in differs)
        fix = ", ".join("%s: %s" % (key, have[key]) for _label, key in differs)
        return ("node pool %s of %s has %s: they cannot change in place; set gcsfront_cluster's %s, or replace the "
                "pool (gcloud container node-pools delete %s --cluster %s --location %s) and run again"
                % (want["name"], where, what, fix, want["name"], desired["name"], desired["location"]))
    return None


def elsewhere_problem(desired, clusters):
    """One line when a cluster of the same name exists in another location (from clusters.list over locations/-):
    the zone of a cluster cannot change, and another one of the same name would not be the inventory's."""
    for cluster in clusters or []:
        if cluster.get("name") == desired["name"] and cluster.get("location") != desired["location"]:
            return ("cluster %s exists in %s, not %s: a cluster's location cannot change; set gcsfront_cluster.zone "
                    "to %s, or delete that cluster (gcloud container clusters delete %s --location %s) and run again"
                    % (desired["name"], cluster.get("location"), desired["location"], cluster.get("location"),
                       desired["name"], cluster.get("location")))
    return None


def plan(desired, cluster):
    """The calls that bring the cluster to the desired state, in order, as (action, body, description): action is
    create_cluster, update_cluster, create_node_pool, update_node_pool or set_node_pool_size. Call
    immutable_problem first: plan assumes nothing immutable differs. GKE applies one cluster update per call, and
    a node pool takes GKE_METADATA only once its cluster has Workload Identity: cluster updates come first."""
    actual = actual_state(cluster, (desired.get("node_pool") or {}).get("name"))
    if actual is None:
        what = "Autopilot" if desired["autopilot"] else "Standard"
        return [("create_cluster", create_body(desired), "create %s cluster %s in %s"
                 % (what, desired["name"], desired["location"]))]
    steps = []
    if actual["workload_pool"] != desired["workload_pool"]:
        steps.append(("update_cluster", {"update": {"desiredWorkloadIdentityConfig": {
            "workloadPool": desired["workload_pool"]}}}, "set the Workload Identity pool to %s" % desired["workload_pool"]))
    if not actual["gcs_fuse_csi_driver"]:
        steps.append(("update_cluster", {"update": {"desiredAddonsConfig": {"gcsFuseCsiDriverConfig": {
            "enabled": True}}}}, "enable the Cloud Storage FUSE CSI driver add-on"))
    want = desired.get("node_pool")
    if not want:
        return steps
    have = actual["node_pool"]
    if have is None:
        return steps + [("create_node_pool", {"nodePool": pool_body(want)}, "create node pool %s (%d x %s, %d GB)"
                         % (want["name"], want["node_count"], want["machine_type"], want["disk_size_gb"]))]
    if have["workload_metadata"] != GKE_METADATA:
        # nodeVersion and imageType are the pool's own: the call changes the metadata mode, never the version.
        pool = find_pool(cluster, want["name"])
        steps.append(("update_node_pool", {"nodeVersion": pool.get("version") or "-",
                                           "imageType": (pool.get("config") or {}).get("imageType") or "",
                                           "workloadMetadataConfig": {"mode": GKE_METADATA}},
                      "set node pool %s's workload metadata to GKE_METADATA" % want["name"]))
    if have["node_count"] != want["node_count"]:
        steps.append(("set_node_pool_size", {"nodeCount": want["node_count"]}, "resize node pool %s from %s to %d nodes"
                      % (want["name"], have["node_count"], want["node_count"])))
    return steps


def operation_problem(operation):
    """One line when a finished operation failed (its error, or the older statusMessage), else None."""
    error = operation.get("error") or {}
    message = error.get("message") or operation.get("statusMessage")
    if not error and not message:
        return None
    return "operation %s (%s) failed: %s" % (operation.get("name"), operation.get("operationType"),
                                             (message or "code %s" % error.get("code")).split("\n")[0][:300])


def cluster_info(cluster, project, pool_name):
    """What the module returns about the cluster: the managed fields, its status, endpoint and CA (PEM), and the
    context gcloud would name it by."""
    if cluster is None:
        return {}
    ca = (cluster.get("masterAuth") or {}).get("clusterCaCertificate") or ""
    try:
        ca_pem = base64.b64decode(ca).decode() if ca else ""
    except (ValueError, UnicodeDecodeError):
        ca_pem = ""
    return dict(actual_state(cluster, pool_name), status=cluster.get("status"), endpoint=cluster.get("endpoint") or "",
                certificate_authority_data=ca_pem,
                kube_context=context_name(project, cluster.get("location"), cluster.get("name")))
