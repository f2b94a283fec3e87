"""gcsfront.gke.lb_smoke, against a stand-in Kubernetes API started here on 127.0.0.1 (discovery and one Service).

The Service's LoadBalancer address is 127.0.0.1 and its port that of a second stand-in that records requests, so a
test sees any HTTP request the module would make to the address. The fetch and compare are tested through
module_utils._http_check (test_http_check.py) and live by deploy.yml.
"""

from __future__ import annotations

import pytest
import yaml
from conftest import adhoc, stand_in

DISCOVERY = {
    "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0"},
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service", "verbs": ["get"]}]},
}


class FakeCluster:
    """The Service gcsfront-bench/proxy; its address appears after `polls_without_address` reads (never: None)."""

    def __init__(self, lb_port):
        self.requests = []
        self.reads = 0
        self.polls_without_address = 0
        self.ports = [{"name": "http", "port": 80}, {"name": "control", "port": lb_port}]

    def answer(self, method, path, _body, _headers):
        self.requests.append((method, path))
        if path in DISCOVERY:
            return 200, DISCOVERY[path]
        if method == "GET" and path == "/api/v1/namespaces/gcsfront-bench/services/proxy":
            self.reads += 1
            ready = self.polls_without_address is not None and self.reads > self.polls_without_address
            return 200, {"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "proxy", "namespace": "gcsfront-bench"},
                         "spec": {"type": "LoadBalancer", "ports": self.ports},
                         "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}] if ready else []}}}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}


@pytest.fixture(name="lab")
def fixture_lab(tmp_path):
    """(FakeCluster, the requests the LoadBalancer's address got, module args reaching the fake cluster)."""
    lb_requests = []
    lb_url, stop_lb = stand_in(lambda method, path, _b, _h: lb_requests.append((method, path)) or (200, {}))
    cluster = FakeCluster(int(lb_url.rsplit(":", 1)[1]))
    api_url, stop_api = stand_in(cluster.answer)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": api_url}}],
        "users": [{"name": "fake", "user": {"token": "stand-in-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
    args = {"kubeconfig": str(kubeconfig), "name": "proxy", "namespace": "gcsfront-bench", "wait_sleep": 1}
    yield cluster, lb_requests, args
    stop_api()
    stop_lb()


def test_address_only_waits_for_the_address_and_makes_no_http_request(lab):
    cluster, lb_requests, args = lab
    cluster.polls_without_address = 2
    port = cluster.ports[1]["port"]
    state, result, _output = adhoc("gcsfront.gke.lb_smoke", dict(args, address_only=True, port=port, wait_timeout=30))
    assert state == "SUCCESS", result
    assert result["address"] == "127.0.0.1"
    assert (result["url"], result["port"]) == ("http://127.0.0.1:%d" % port, port)
    assert result["changed"] is False and result["attempts"] == 0
    assert cluster.reads == 3
    assert lb_requests == []
    assert not {"status", "object", "sha256", "matched"} & set(result)


def test_address_only_url_takes_the_port_named_as_the_scheme(lab):
    cluster, _lb_requests, args = lab
    cluster.ports = [{"name": "control", "port": 4444}, {"name": "https", "port": 443}]
    state, result, _output = adhoc("gcsfront.gke.lb_smoke", dict(args, address_only=True, scheme="https"))
    assert state == "SUCCESS", result
    assert (result["url"], result["port"]) == ("https://127.0.0.1:443", 443)


def test_address_only_times_out_naming_the_service(lab):
    cluster, _lb_requests, args = lab
    cluster.polls_without_address = None
    state, result, _output = adhoc("gcsfront.gke.lb_smoke", dict(args, address_only=True, wait_timeout=2))
    assert state == "FAILED!"
    assert result["msg"] == ("Timed out after 2s waiting for Service gcsfront-bench/proxy to get a LoadBalancer "
                             "address (no address was assigned)")
    assert cluster.reads >= 2


def test_address_only_with_fetch_options_is_an_error_before_any_call(lab):
    cluster, lb_requests, args = lab
    fetch_options = {"bucket": "b", "path": "/index.html", "missing_path": "/nope"}
    state, result, _output = adhoc("gcsfront.gke.lb_smoke", dict(args, address_only=True, **fetch_options))
    assert state == "FAILED!"
    assert result["msg"] == ("address_only waits for the address only, with no HTTP request: remove bucket, path, "
                             "missing_path")
    assert cluster.requests == [] and lb_requests == []


def test_the_fetch_needs_a_bucket(lab):
    cluster, _lb_requests, args = lab
    state, result, _output = adhoc("gcsfront.gke.lb_smoke", args)
    assert state == "FAILED!"
    assert result["msg"] == "address_only is False but all of the following are missing: bucket"
    assert cluster.requests == []
