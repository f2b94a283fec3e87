"""Scheduling knobs, autoscaling and the Service's access settings, as playbooks/render.yml renders them."""

from __future__ import annotations

import pytest
from conftest import render_frontend, run_render

SELECTOR = {"app.kubernetes.io/name": "gcsfront", "app.kubernetes.io/instance": "gcsfront"}


def pod_spec(m):
    return m["Deployment"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    return render_frontend(tmp_path_factory.mktemp("defaults"), {})


def test_each_container_requests_its_own_resources(defaults):
    pod = pod_spec(defaults)
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "100Mi"}}
    assert pod["initContainers"][0]["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}}


def test_replicas_spread_over_zones_then_nodes_without_ever_blocking_a_pod(defaults):
    spread = pod_spec(defaults)["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" and c["labelSelector"] == {"matchLabels": SELECTOR}
               for c in spread)


def test_the_defaults_set_no_other_scheduling_field_and_leave_the_service_open(defaults):
    pod = pod_spec(defaults)
    assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"} & set(pod)
    service = defaults["Service"]
    assert "loadBalancerSourceRanges" not in service["spec"] and "annotations" not in service["metadata"]
    assert "HorizontalPodAutoscaler" not in defaults
    assert defaults["Deployment"]["spec"]["replicas"] == 3


def test_every_knob_lands_where_kubernetes_reads_it(tmp_path):
    toleration = {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["web"]}]}]}}}
    own_selector = {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"tier": "front"}}}
    m = render_frontend(tmp_path, {
        "frontend_node_selector": {"pool": "web"}, "frontend_tolerations": [toleration], "frontend_affinity": affinity,
        "frontend_topology_spread_constraints": [own_selector], "frontend_priority_class_name": "high",
        "frontend_pod_labels": {"team": "web"}, "frontend_pod_annotations": {"example.com/port": 9113},
        "frontend_image_pull_secrets": ["regcred", "other"],
        "frontend_gcsfuse_resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
        "frontend_pdb_max_unavailable": 2,
        "frontend_service_source_ranges": ["203.0.113.0/24", "2001:db8::/32"], "frontend_service_internal": True,
        "frontend_service_load_balancer_ip": "203.0.113.7", "frontend_service_annotations": {"a": "b"}})
    pod = pod_spec(m)
    assert pod["nodeSelector"] == {"pool": "web"} and pod["tolerations"] == [toleration]
    assert pod["affinity"] == affinity and pod["topologySpreadConstraints"] == [own_selector]
    assert pod["priorityClassName"] == "high"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert pod["initContainers"][0]["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    template = m["Deployment"]["spec"]["template"]["metadata"]
    assert template["labels"]["team"] == "web" and SELECTOR.items() <= template["labels"].items()
    assert template["annotations"]["example.com/port"] == "9113" and "gcsfront.gke/config-sha256" in template["annotations"]
    assert m["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 2
    service = m["Service"]
    assert service["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert service["spec"]["loadBalancerIP"] == "203.0.113.7"
    assert service["metadata"]["annotations"] == {"a": "b", "networking.gke.io/load-balancer-type": "Internal"}


def test_the_autoscaler_owns_the_replica_count(tmp_path):
    m = render_frontend(tmp_path, {"frontend_hpa": True, "frontend_hpa_min_replicas": 2, "frontend_hpa_max_replicas": 8,
                                   "frontend_replicas": 1})
    hpa = m["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gcsfront"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    # Nothing runs yet (a render): the autoscaler's lower bound. A deploy applies the count that runs.
    assert m["Deployment"]["spec"]["replicas"] == 2
    # One replica, but an autoscaler may add more: disruptions still go one at a time.
    assert m["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_without_a_pdb_or_with_one_replica_no_budget_is_rendered(tmp_path):
    assert "PodDisruptionBudget" not in render_frontend(tmp_path / "off", {"frontend_pdb": False})
    assert "PodDisruptionBudget" not in render_frontend(tmp_path / "one", {"frontend_replicas": 1})


@pytest.mark.parametrize("extra,needle", [
    ({"frontend_hpa": True, "frontend_kind": "ReplicaSet"}, "frontend_hpa needs frontend_kind Deployment"),
    ({"frontend_hpa": True, "frontend_hpa_min_replicas": 5, "frontend_hpa_max_replicas": 2},
     "1 <= frontend_hpa_min_replicas <="),
    ({"frontend_pod_labels": {"app.kubernetes.io/instance": "other"}}, "frontend_pod_labels may not set the selector"),
    ({"frontend_service_source_ranges": ["everyone"]}, "frontend_service_source_ranges takes address ranges"),
    ({"frontend_service_source_ranges": ["10.0.0.0/8"], "frontend_service_type": "ClusterIP"},
     "need frontend_service_type LoadBalancer (got ClusterIP)"),
])
def test_bad_settings_stop_before_anything_is_rendered(tmp_path, extra, needle):
    proc = run_render(tmp_path, extra)
    assert proc.returncode != 0
    out = " ".join((proc.stdout + proc.stderr).split())
    assert needle in out, out[-2000:]
    assert not (tmp_path / "frontend-workload.yaml").exists()
