"""gcsfront.gke.lb_smoke, against a stand-in Kubernetes API started here on 127.0.0.1 (discovery and one Service).

The Service's LoadBalancer address is 127.0.0.1 and its port that of a second stand-in that records requests, so a
test sees any HTTP request the module would make to the address; it answers 404 for the smoke's missing paths and
200 otherwise. A third stand-in is an empty bucket's GCS JSON API. The fetch and compare of an object are tested
through module_utils._http_check (test_http_check.py) and live by deploy.yml.
"""

from __future__ import annotations

import re

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

    def lb_answer(method, path, _body, _headers):
        lb_requests.append((method, path))
        return (404, {}) if path.startswith("/gcsfront-smoke-missing-") else (200, {})

    lb_url, stop_lb = stand_in(lb_answer)
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


@pytest.fixture(name="empty_bucket")
def fixture_empty_bucket():
    """The module options of an empty bucket on a stand-in GCS JSON API (no credentials)."""
    url, stop = stand_in(lambda method, path, _b, _h: (200, {}) if path.startswith("/storage/v1/b/site/o?")
                         else (404, {"error": {"message": "not here"}}))
    yield {"bucket": "site", "gcs_endpoint": url, "gcs_anonymous": True}
    stop()


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


def test_the_missing_path_is_new_for_each_run_and_not_a_dotfile(lab, empty_bucket):
    cluster, lb_requests, args = lab
    cluster.ports = [{"name": "http", "port": cluster.ports[1]["port"]}]
    asked = []
    for _run in range(2):
        state, result, _output = adhoc("gcsfront.gke.lb_smoke", dict(args, **empty_bucket))
        assert state == "SUCCESS", result
        assert result["object"] is None and result["checks"] == {"missing": 404}
        assert re.fullmatch(r"/gcsfront-smoke-missing-[0-9a-f]{16}", result["missing_path"])
        assert lb_requests[-1] == ("GET", result["missing_path"])
        asked.append(result["missing_path"])
    assert asked[0] != asked[1]


def test_a_missing_path_given_is_used(lab, empty_bucket):
    cluster, lb_requests, args = lab
    cluster.ports = [{"name": "http", "port": cluster.ports[1]["port"]}]
    state, result, _output = adhoc("gcsfront.gke.lb_smoke", dict(args, missing_path="/no-such-object", **empty_bucket))
    assert state == "FAILED!"  # the stand-in answers 200 there
    assert result["missing_path"] == "/no-such-object" and lb_requests[-1] == ("GET", "/no-such-object")
    state, result, _output = adhoc("gcsfront.gke.lb_smoke", dict(args, missing_path="no-slash", **empty_bucket))
    assert (state, result["msg"]) == ("FAILED!", "missing_path must start with '/': no-slash")
