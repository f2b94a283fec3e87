#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gke_cluster
short_description: Make sure a GKE cluster and its node pool exist, with Workload Identity and the GCS FUSE CSI driver
version_added: 0.2.0
description:
  - Makes sure the GKE cluster O(name) exists in O(location) of O(project), with Workload Identity (its pool
    C(PROJECT.svc.id.goog)) and the Cloud Storage FUSE CSI driver add-on enabled, through the GKE API
    (C(container.googleapis.com) v1) with google-auth.
  - A Standard cluster (O(autopilot=false)) gets one node pool, O(node_pool), of O(node_count) nodes of
    O(machine_type) with O(disk_size_gb) GB boot disks, whose workload metadata mode is C(GKE_METADATA) (the GKE
    metadata server Workload Identity needs). An Autopilot cluster (O(autopilot=true)) has no node pool to manage;
    Google manages its nodes, and Autopilot clusters are regional, so O(location) is a region there.
  - Only these fields are compared and changed; everything else about the cluster is left as it is. A missing
    cluster is created; Workload Identity, the add-on, the pool's metadata mode and its size are updated in place;
    a missing pool is created.
  - Fields that cannot change in place (the cluster type, the pool's machine type and disk size, the cluster's
    location) fail the task with one line saying what to do, before any call that changes anything. A cluster of the
    same name in another location counts as a location that differs.
  - Each change is a long-running GKE operation, which the module polls every O(wait_sleep) seconds until it is
    done or O(wait_timeout) seconds have passed; it returns the seconds each took (RV(operations)). An operation
    still running at the timeout goes on in GKE; running the task again waits for the cluster and continues.
  - The node count compared is the pool's C(initialNodeCount) per zone as GKE reports it, which a resize updates;
    nodes added or removed by the cluster autoscaler are not counted.
  - This module cannot run on the local substrate, which has no GKE API, and nothing here reaches Google Cloud.
    It is covered by unit tests against a stand-in GKE API on 127.0.0.1 (O(api_endpoint)).
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - google-auth
  - requests
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes
  - gcsfront.gke.attributes.actiongroups
attributes:
  check_mode:
    details: The cluster is read and the calls that would change it are reported (RV(actions)); none is made.
  diff_mode:
    support: full
    details: The diff shows the managed fields, before and after.
  action_group:
    membership:
      - gcsfront.gke.gke
options:
  project:
    description: The Google Cloud project id.
    type: str
    required: true
  location:
    description:
      - The cluster's zone (a zonal Standard cluster, V(asia-northeast1-a)) or region (V(asia-northeast1), for
        Autopilot, whose clusters are regional).
    type: str
    required: true
  name:
    description: The cluster's name.
    type: str
    required: true
  autopilot:
    description:
      - The cluster type. V(false) is a Standard cluster with the node pool below, V(true) an Autopilot cluster.
      - Cannot change once the cluster exists.
    type: bool
    default: false
  node_pool:
    description: The name of the Standard cluster's node pool.
    type: str
    default: default-pool
  machine_type:
    description:
      - The nodes' machine type, for example V(n1-standard-1). Required for a Standard cluster, not allowed for
        Autopilot. Cannot change once the pool exists.
    type: str
  disk_size_gb:
    description:
      - The nodes' boot disk size in GB. Required for a Standard cluster, not allowed for Autopilot. Cannot change
        once the pool exists.
    type: int
  node_count:
    description:
      - Nodes in the pool (per zone). Required for a Standard cluster, not allowed for Autopilot. A pool of another
        size is resized.
    type: int
  credentials_file:
    description:
      - A service-account key file (JSON) to call the GKE API with. It needs C(roles/container.admin) on the project
        (C(roles/container.clusterViewer) to check only, in check mode), and C(roles/iam.serviceAccountUser) on
        the nodes' service account to create a cluster or pool.
      - Without it, or O(credentials_content), Application Default Credentials are used
        (E(GOOGLE_APPLICATION_CREDENTIALS), C(gcloud auth application-default login), or the metadata server).
    type: path
  credentials_content:
    description: The service-account key itself (JSON), for example from a vaulted variable. Never logged.
    type: str
  api_endpoint:
    description:
      - Base URL of the GKE API, without C(/v1). Set it to a stand-in of the API, as the unit tests do.
    type: str
    default: https://container.googleapis.com
  wait_timeout:
    description:
      - Seconds to wait for each GKE operation, and for a cluster that is being provisioned or reconciled before
        any change. Creating a cluster takes 5 to 10 minutes.
    type: int
    default: 1800
  wait_sleep:
    description: Seconds between two polls of an operation.
    type: float
    default: 10
seealso:
  - module: gcsfront.gke.kubeconfig_context
  - name: GKE API, projects.locations.clusters
    description: The resource this module reads and changes.
    link: https://cloud.google.com/kubernetes-engine/docs/reference/rest/v1/projects.locations.clusters
  - name: Workload Identity Federation for GKE
    description: What the cluster's pool and the node pool's GKE_METADATA mode enable.
    link: https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity
  - name: Cloud Storage FUSE CSI driver
    description: The add-on the frontend's csi mount mode needs.
    link: https://cloud.google.com/kubernetes-engine/docs/how-to/persistent-volumes/cloud-storage-fuse-csi-driver
"""

EXAMPLES = r"""
---
- name: Make sure the 2016 cluster type 1 exists (3 n1-standard-1 nodes, 100 GB disks).
  gcsfront.gke.gke_cluster:
    project: my-project
    location: asia-northeast1-a
    name: gcsfront-cluster1
    machine_type: n1-standard-1
    disk_size_gb: 100
    node_count: 3
    credentials_file: ~/.config/gcsfront/cluster1-key.json
  register: cluster

- name: An Autopilot cluster (regional), with Application Default Credentials.
  gcsfront.gke.gke_cluster:
    project: my-project
    location: asia-northeast1
    name: gcsfront-autopilot
    autopilot: true
"""

RETURN = r"""
changed:
  description: Whether a call changed the cluster (in check mode, whether one would).
  returned: always
  type: bool
  sample: true
actions:
  description: What was changed (in check mode, what would be), one line each, in order.
  returned: success
  type: list
  elements: str
  sample: [resize node pool default-pool from 2 to 3 nodes]
operations:
  description: The GKE operations waited for, with the seconds each took.
  returned: success
  type: list
  elements: dict
  sample: [{name: operation-1700000000000-abcdef, type: CREATE_CLUSTER, elapsed: 312.4}]
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
  sample: 318.2
cluster:
  description: The cluster after the task (before it, in check mode); empty when there is no cluster yet.
  returned: success
  type: dict
  contains:
    name:
      description: The cluster's name.
      returned: when the cluster exists
      type: str
      sample: gcsfront-cluster1
    location:
      description: Its zone or region.
      returned: when the cluster exists
      type: str
      sample: asia-northeast1-a
    status:
      description: Its state as GKE reports it.
      returned: when the cluster exists
      type: str
      sample: RUNNING
    autopilot:
      description: Whether it is an Autopilot cluster.
      returned: when the cluster exists
      type: bool
      sample: false
    workload_pool:
      description: Its Workload Identity pool; empty when Workload Identity is off.
      returned: when the cluster exists
      type: str
      sample: my-project.svc.id.goog
    gcs_fuse_csi_driver:
      description: Whether the Cloud Storage FUSE CSI driver add-on is enabled.
      returned: when the cluster exists
      type: bool
      sample: true
    node_pool:
      description: The managed node pool of a Standard cluster; null when it has none of that name.
      returned: when a Standard cluster exists
      type: dict
      sample: {name: default-pool, machine_type: n1-standard-1, disk_size_gb: 100, node_count: 3,
               workload_metadata: GKE_METADATA}
    endpoint:
      description: The address of the cluster's API server.
      returned: when the cluster exists
      type: str
      sample: 34.84.0.10
    certificate_authority_data:
      description: The PEM of the cluster's CA.
      returned: when the cluster exists
      type: str
      sample: "-----BEGIN CERTIFICATE-----\n..."
    kube_context:
      description: The context name gcloud gives the cluster, C(gke_PROJECT_LOCATION_NAME).
      returned: when the cluster exists
      type: str
      sample: gke_my-project_asia-northeast1-a_gcsfront-cluster1
"""

import time
import traceback
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._gke import (
    BUSY, CLOUD_PLATFORM, DONE, GkeError, actual_state, cluster_info, desired_state, elsewhere_problem,
    immutable_problem, operation_problem, plan)
from ansible_collections.gcsfront.gke.plugins.module_utils._sa_key import InvalidKey, load
from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import wait

try:
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests
    import requests

    GOOGLE_AUTH_IMPORT_ERROR = None
except ImportError:
    GOOGLE_AUTH_IMPORT_ERROR = traceback.format_exc()

STANDARD_ONLY = ("machine_type", "disk_size_gb", "node_count")


class _Passing(Exception):
    """An answer worth asking again for while waiting: none at all, 429 or 5xx."""


class GkeClient:
    """The few GKE API v1 calls of one cluster in one location."""

    def __init__(self, endpoint, session, project, location, name, timeout=60):
        self.endpoint = endpoint.rstrip("/")
        self.session = session
        self.project = project
        self.location = location
        self.name = name
        self.timeout = timeout

    def _path(self, *parts, location=None):
        return "%s/v1/projects/%s/locations/%s/%s" % (self.endpoint, quote(self.project, safe=""),
                                                      quote(location or self.location, safe=""),
                                                      "/".join(quote(p, safe=":") for p in parts))

    def _call(self, method, url, what, body=None):
        try:
            r = self.session.request(method, url, json=body, timeout=self.timeout)
        except google.auth.exceptions.RefreshError as e:
            raise GkeError("cannot get a token to %s: %s" % (what, first_line(e, 200))) from None
        except requests.RequestException as e:
            raise GkeError("cannot %s: no answer from the GKE API at %s (%s)" % (what, self.endpoint,
                                                                                 type(e).__name__)) from None
        if r.status_code != 200:
            raise GkeError(_http_problem(r, what, self.endpoint, self.project), r.status_code)
        try:
            return r.json()
        except ValueError:
            raise GkeError("cannot %s: the GKE API at %s answered without JSON" % (what, self.endpoint)) from None

    def cluster(self):
        """The Cluster resource, or None when there is none."""
        try:
            return self._call("GET", self._path("clusters", self.name), "read cluster %s" % self.name)
        except GkeError as e:
            if e.status == 404:
                return None
            raise

    def clusters_everywhere(self):
        """Every cluster of the project, in every location."""
        return self._call("GET", self._path("clusters", location="-"), "list the clusters of project %s"
                          % self.project).get("clusters") or []

    def operation(self, name):
        return self._call("GET", self._path("operations", name), "read operation %s" % name)

    def start(self, action, body, pool):
        """Start one step of the plan; its Operation."""
        calls = {
            "create_cluster": ("POST", ("clusters",)),
            "update_cluster": ("PUT", ("clusters", self.name)),
            "create_node_pool": ("POST", ("clusters", self.name, "nodePools")),
            "update_node_pool": ("PUT", ("clusters", self.name, "nodePools", pool)),
            "set_node_pool_size": ("POST", ("clusters", self.name, "nodePools", pool + ":setSize")),
        }
        method, parts = calls[action]
        return self._call(method, self._path(*parts), "%s of cluster %s" % (action.replace("_", " "), self.name),
                          body)


def _http_problem(response, what, endpoint, project):
    """One line for an answer other than 200, with the API's own message and, for 403, what is needed."""
    try:
        detail = first_line(response.json()["error"]["message"], 200)
    except (ValueError, KeyError, TypeError):
        detail = response.reason or ""
    line = "cannot %s: the GKE API at %s answered %s%s" % (what, endpoint, response.status_code,
                                                           " (%s)" % detail if detail else "")
    if response.status_code == 403:
        line += ("; the credentials need roles/container.admin on project %s, and the project needs the "
                 "container.googleapis.com API enabled" % project)
    return line


def session_from_params(params):
    """An authorized requests session: the key of credentials_file or credentials_content, else Application
    Default Credentials."""
    try:
        if params["credentials_file"] or params["credentials_content"]:
            _info, creds = load([CLOUD_PLATFORM], path=params["credentials_file"],
                                content=params["credentials_content"], content_source="credentials_content")
        else:
            creds, _project = google.auth.default(scopes=[CLOUD_PLATFORM])
    except InvalidKey as e:
        raise GkeError(str(e)) from None
    except google.auth.exceptions.DefaultCredentialsError:
        raise GkeError("no credentials: set credentials_file (the operator's service-account key), or provide "
                       "Application Default Credentials (gcloud auth application-default login)") from None
    return google.auth.transport.requests.AuthorizedSession(creds)


class Converger:
    """Read, compare and (unless in check mode) change the cluster, waiting for each operation."""

    def __init__(self, client, module, monotonic=time.monotonic, sleep=time.sleep):
        self.client = client
        self.module = module
        self.monotonic = monotonic
        self.sleep = sleep
        self.p = module.params

    def _wait(self, fetch, predicate, what):
        """Poll fetch until predicate holds: (value, elapsed); a GkeError naming what on timeout."""
        def polled():
            try:
                return fetch()
            except GkeError as e:
                if e.status is None or e.status == 429 or e.status >= 500:
                    raise _Passing(str(e)) from None
                raise
        value, elapsed, last_error, _attempts = wait(polled, predicate, self.p["wait_timeout"], self.p["wait_sleep"],
                                                     self.monotonic, self.sleep, transient=(_Passing,))
        if value is None:
            raise GkeError("timed out after %ds waiting for %s%s; GKE goes on with it: run the task again later "
                           "(or raise wait_timeout)" % (elapsed, what, ", last error: %s" % last_error
                                                        if last_error else ""))
        return value, elapsed

    def _ready(self, cluster):
        """The cluster once it takes updates: it may still be provisioning after a run that timed out."""
        status = cluster.get("status")
        if status == "STOPPING":
            raise GkeError("cluster %s in %s is being deleted: wait until it is gone, then run again"
                           % (self.p["name"], self.p["location"]))
        if status == "ERROR":
            raise GkeError("cluster %s in %s is in state ERROR (%s): repair or delete it, then run again"
                           % (self.p["name"], self.p["location"], first_line(cluster.get("statusMessage") or "", 200)))
        if status not in BUSY or self.module.check_mode:
            return cluster
        cluster, _elapsed = self._wait(self.client.cluster, lambda c: c if c and c.get("status") not in BUSY else None,
                                       "cluster %s to leave state %s" % (self.p["name"], status))
        return self._ready(cluster)

    def _operation(self, operation):
        """Wait for an operation to be done; what the module reports of it."""
        name = operation.get("name") or ""
        kind = operation.get("operationType") or ""
        if operation.get("status") != DONE:
            operation, _elapsed = self._wait(lambda: self.client.operation(name),
                                             lambda o: o if o.get("status") == DONE else None,
                                             "operation %s (%s of cluster %s)" % (name, kind, self.p["name"]))
        problem = operation_problem(operation)
        if problem:
            raise GkeError(problem)
        return {"name": name, "type": kind}

    def run(self):
        start = self.monotonic()
        desired = desired_state(self.p)
        pool_name = self.p["node_pool"]
        cluster = self.client.cluster()
        if cluster is None:
            problem = elsewhere_problem(desired, self.client.clusters_everywhere())
        else:
            cluster = self._ready(cluster)
            problem = immutable_problem(desired, actual_state(cluster, pool_name))
        if problem:
            raise GkeError(problem)
        steps = plan(desired, cluster)
        result = dict(changed=bool(steps), actions=[description for _action, _body, description in steps],
                      operations=[])
        if self.module._diff:
            result["diff"] = dict(before=actual_state(cluster, pool_name) or {}, after=desired,
                                  before_header="cluster %s" % self.p["name"], after_header="cluster %s" % self.p["name"])
        if steps and not self.module.check_mode:
            for action, body, _description in steps:
                began = self.monotonic()
                record = self._operation(self.client.start(action, body, pool_name))
                result["operations"].append(dict(record, elapsed=round(self.monotonic() - began, 1)))
            cluster = self.client.cluster()
        result["cluster"] = cluster_info(cluster, self.p["project"], pool_name)
        result["elapsed"] = round(self.monotonic() - start, 1)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project=dict(type="str", required=True),
            location=dict(type="str", required=True),
            name=dict(type="str", required=True),
            autopilot=dict(type="bool", default=False),
            node_pool=dict(type="str", default="default-pool"),
            machine_type=dict(type="str"),
            disk_size_gb=dict(type="int"),
            node_count=dict(type="int"),
            credentials_file=dict(type="path"),
            credentials_content=dict(type="str", no_log=True),
            api_endpoint=dict(type="str", default="https://container.googleapis.com"),
            wait_timeout=dict(type="int", default=1800),
            wait_sleep=dict(type="float", default=10),
        ),
        mutually_exclusive=[("credentials_file", "credentials_content")],
        required_if=[("autopilot", False, STANDARD_ONLY)],
        supports_check_mode=True,
    )
    if GOOGLE_AUTH_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("google-auth"), exception=GOOGLE_AUTH_IMPORT_ERROR)
    p = module.params
    start = time.monotonic()
    given = [option for option in STANDARD_ONLY if p[option] is not None]
    if p["autopilot"] and given:
        module.fail_json(msg="%s: Autopilot manages its nodes: leave them unset with autopilot=true" % ", ".join(given),
                         elapsed=0.0)
    too_small = [option for option in STANDARD_ONLY[1:] if p[option] is not None and p[option] < 1]
    if too_small:
        module.fail_json(msg="%s must be at least 1" % " and ".join(too_small), elapsed=0.0)
    try:
        client = GkeClient(p["api_endpoint"], session_from_params(p), p["project"], p["location"], p["name"])
        result = Converger(client, module).run()
    except GkeError as e:
        module.fail_json(msg=str(e), elapsed=round(time.monotonic() - start, 1))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
