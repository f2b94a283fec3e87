"""The metrics API on the substrate (metrics-server behind the API server's aggregation layer) and the frontend's
HorizontalPodAutoscaler acting on it: a frontend of its own (namespace gcsfront-hpa, 1 to 3 replicas) scales up under
a bounded load sent from the host to its LoadBalancer address, and deploying it again keeps the count that runs.

Figures are printed: time to the autoscaler's first CPU metrics, time to scale up under load.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from conftest import CONTEXT, DEFAULTS, lb_address, run_playbook, wait_for

NAMESPACE = "gcsfront-hpa"
NAME = "gcsfront"
# Idle, a frontend pod uses about 9 % of its CPU requests (nginx 100m + gcsfuse 50m): a target of 30 % stays
# above that, so only the load scales it.
TARGET = 30
ARGS = ["-e", "gcsfront_namespace=%s" % NAMESPACE, "-e", "gcsfront_replicas=1", "-e", "frontend_hpa=true",
        "-e", "frontend_hpa_min_replicas=1", "-e", "frontend_hpa_max_replicas=3",
        "-e", "frontend_hpa_cpu_utilization=%d" % TARGET]
# Load is sent in rounds of ab, each bounded in time and count, until the Deployment scales or this passes.
SCALE_TIMEOUT = 150
ROUND_SECONDS = 10


def test_the_metrics_api_answers(kube):
    out = subprocess.run(["kubectl", "--context", CONTEXT, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    items = json.loads(out)["items"]
    assert [i["metadata"]["name"] for i in items] == [DEFAULTS["local_cluster_node_name"]]
    assert items[0]["usage"]["cpu"] and items[0]["usage"]["memory"]


@pytest.fixture(scope="module")
def autoscaled_site(kube):
    """A frontend with the autoscaler on, in a namespace of its own; removed with the namespace afterwards."""
    try:
        run_playbook("deploy.yml", "--skip-tags", "local_cluster", *ARGS, timeout=900)
        yield "http://%s" % lb_address(kube, NAMESPACE, NAME)
    finally:
        run_playbook("playbooks/teardown.yml", *ARGS, "-e", "gcsfront_teardown_namespace=true", timeout=600)


def replicas(kube):
    from kubernetes import client

    return client.AppsV1Api(kube).read_namespaced_deployment_scale(NAME, NAMESPACE).spec.replicas


def cpu_utilization(kube):
    """The autoscaler's current CPU utilization (percent of requests), or None before its first metrics."""
    from kubernetes import client

    hpa = client.AutoscalingV2Api(kube).read_namespaced_horizontal_pod_autoscaler(NAME, NAMESPACE)
    for metric in hpa.status.current_metrics or []:
        if metric.type == "Resource" and metric.resource.name == "cpu":
            return metric.resource.current.average_utilization
    return None


def load_round(url):
    """One bounded round of load: ab for at most ROUND_SECONDS (and 200000 requests), killed after 15 s more."""
    subprocess.run(["timeout", "--kill-after=5", str(ROUND_SECONDS + 15), "ab", "-q", "-t", str(ROUND_SECONDS),
                    "-n", "200000", "-c", "8", "-s", "5", url + "/index.html"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


class ReplicaWatch:
    """Records every spec.replicas the Deployment has while it runs (a watch: no change is missed)."""

    def __init__(self, kube):
        from kubernetes import client

        self.apps = client.AppsV1Api(kube)
        self.seen = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        from kubernetes import watch

        selector = "metadata.name=%s" % NAME
        listed = self.apps.list_namespaced_deployment(NAMESPACE, field_selector=selector)
        self.seen += [d.spec.replicas for d in listed.items]
        version = listed.metadata.resource_version
        while not self.stop.is_set():
            for event in watch.Watch().stream(self.apps.list_namespaced_deployment, NAMESPACE, field_selector=selector,
                                              resource_version=version, timeout_seconds=2):
                self.seen.append(event["object"].spec.replicas)
                version = event["object"].metadata.resource_version

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def test_the_autoscaler_scales_up_under_load_and_a_deploy_keeps_the_count(kube, autoscaled_site):
    t0 = time.monotonic()
    idle = wait_for(lambda: [u for u in [cpu_utilization(kube)] if u is not None], 180, interval=2,
                    what="the autoscaler's first CPU metrics")[0]
    print("time to first metrics: %.1fs (idle CPU %d%% of requests, target %d%%)" % (time.monotonic() - t0, idle, TARGET))
    assert replicas(kube) == 1, "scaled up before any load"

    t0 = time.monotonic()
    rounds = 0
    while replicas(kube) <= 1:
        if time.monotonic() - t0 > SCALE_TIMEOUT:
            pytest.fail("no scale-up within %ss of load (CPU %s%% of requests, target %d%%)"
                        % (SCALE_TIMEOUT, cpu_utilization(kube), TARGET))
        load_round(autoscaled_site)
        rounds += 1
    scaled = replicas(kube)
    print("time to scale up: %.1fs (%d rounds of load, %d replicas, CPU %s%% of requests)"
          % (time.monotonic() - t0, rounds, scaled, cpu_utilization(kube)))

    # The role reads the count that runs and applies it: never frontend_replicas (1) while the autoscaler is on.
    with ReplicaWatch(kube) as watched:
        run_playbook("deploy.yml", "--skip-tags", "local_cluster", *ARGS, timeout=900)
    print("replicas seen during the second deploy:", sorted(set(watched.seen)))
    assert watched.seen and min(watched.seen) > 1, watched.seen
    assert replicas(kube) > 1
