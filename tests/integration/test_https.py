"""HTTPS on the live substrate: a second frontend in its own namespace (gcsfront-tls, 1 replica) whose nginx
terminates TLS with a certificate from a local CA made here (the role makes the Secret from it), for one name only,
HTTP redirected, HSTS on. Reached through its LoadBalancer address (inside the substrate) with curl --resolve, as a
client that resolves the name to the address would. Removed afterwards.

The GKE Gateway and HTTPRoute the role renders with frontend_gateway are checked by server-side dry-run against the
Gateway API CRDs the substrate installs (roles/local_cluster/tasks/gateway_api.yml); GKE's HealthCheckPolicy has no
CRD here and is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import CONTEXT, REPO, lb_address, run_playbook

sys.path.insert(0, str(REPO / "tests"))
from curl_check import curl  # noqa: E402  (tests/curl_check.py)

NAMESPACE = "gcsfront-tls"
NAME = "www.gcsfront.test"
SEED = (REPO / "playbooks/files/seed/file1.txt").read_bytes()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A local CA (ca.pem) and a certificate for NAME it signed (tls.crt, tls.key)."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=gcsfront test CA", "-days", "1",
            cwd=d)
    openssl("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=" + NAME,
            "-addext", "subjectAltName=DNS:" + NAME, cwd=d)
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-copy_extensions", "copy", "-out", "tls.crt", "-days", "1", cwd=d)
    return d


@pytest.fixture(scope="module")
def deployment(kube, pki):
    """The TLS frontend: (its LoadBalancer address, the deploy's output); it and its namespace are removed afterwards."""
    # The key goes to ansible-playbook in a file only its owner reads, never on a command line.
    extra = pki / "vars.json"
    extra.touch(mode=0o600)
    extra.write_text(json.dumps({
        "gcsfront_namespace": NAMESPACE, "gcsfront_replicas": 1,
        "frontend_tls_certificate": (pki / "tls.crt").read_text(),
        "frontend_tls_private_key": (pki / "tls.key").read_text(),
        "frontend_tls_server_names": [NAME], "frontend_tls_redirect_http": True, "frontend_tls_hsts_max_age": 600,
        "gcsfront_smoke_ca_path": str(pki / "ca.pem")}))
    args = ["-e", "gcsfront_namespace=%s" % NAMESPACE, "-e", "gcsfront_replicas=1", "-e", "gcsfront_teardown_namespace=true"]
    try:
        deployed = run_playbook("deploy.yml", "--skip-tags", "local_cluster", "-e", "@%s" % extra, timeout=600)
        yield lb_address(kube, NAMESPACE, "gcsfront"), deployed.stdout
    finally:
        run_playbook("playbooks/teardown.yml", *args, timeout=300)


@pytest.fixture(scope="module")
def site(deployment):
    """The TLS frontend's LoadBalancer address."""
    return deployment[0]


def test_the_deploys_smoke_fetch_goes_over_https_by_name(deployment):
    """HTTP redirects to HTTPS: deploy.yml's smoke fetch connects to the address with the server name (SNI, the
    certificate checked against the test's CA) and reports the URL by that name."""
    _address, output = deployment
    text = " ".join(output.split())
    assert "as https://%s/" % NAME in text and "matches the bucket" in text, text[-2000:]


def test_https_serves_the_buckets_bytes_for_its_name(site, pki):
    rc, status, headers, body, err = curl("--cacert", str(pki / "ca.pem"), "--resolve", "%s:443:%s" % (NAME, site),
                                          "https://%s/file1.txt" % NAME)
    assert (rc, status, body) == (0, 200, SEED), err
    assert headers["strict-transport-security"] == "max-age=600"


def test_a_handshake_for_another_name_is_refused(site):
    rc, _status, _headers, _body, err = curl("--insecure", "--resolve", "other.gcsfront.test:443:%s" % site,
                                             "https://other.gcsfront.test/file1.txt")
    assert rc == 35 and "unrecognized name" in err, (rc, err)


def test_http_is_redirected_to_https_without_hsts(site):
    _rc, status, headers, _body, err = curl("-H", "Host: " + NAME, "http://%s/file1.txt" % site)
    assert status == 301, err
    assert headers["location"] == "https://%s/file1.txt" % NAME and "strict-transport-security" not in headers


def test_the_key_is_in_the_tls_secret_only_and_the_pods_carry_its_checksum(site, kube):
    from kubernetes import client

    secret = client.CoreV1Api(kube).read_namespaced_secret("gcsfront-tls", NAMESPACE)
    assert secret.type == "kubernetes.io/tls" and set(secret.data) == {"tls.crt", "tls.key"}
    template = client.AppsV1Api(kube).read_namespaced_deployment("gcsfront", NAMESPACE).spec.template
    assert len(template.metadata.annotations["gcsfront.gke/tls-sha256"]) == 64
    config = client.CoreV1Api(kube).read_namespaced_config_map("gcsfront-config", NAMESPACE)
    assert "PRIVATE KEY" not in json.dumps(config.data)


def test_a_named_tls_secret_that_is_missing_stops_the_deploy_in_one_line(site):
    del site  # in its namespace; the deploy stops before the workload is applied
    proc = run_playbook("deploy.yml", "--skip-tags", "local_cluster", "-e", "gcsfront_namespace=%s" % NAMESPACE,
                        "-e", "gcsfront_replicas=1", "-e", "frontend_tls_secret=gcsfront-missing", timeout=300,
                        check=False)
    assert proc.returncode != 0
    assert ("frontend: the TLS Secret %s/gcsfront-missing (frontend_tls_secret) does not exist" % NAMESPACE
            in proc.stdout), proc.stdout[-3000:]


def test_the_gateway_and_its_routes_pass_a_server_side_dry_run(site, tmp_path):
    del site  # its namespace holds the dry run
    out = tmp_path / "render"
    run_playbook("playbooks/render.yml", "-e", "render_dir=%s" % out, "-e", json.dumps({
        "gcsfront_namespace": NAMESPACE, "frontend_gateway": True, "frontend_gateway_certmap": "gcsfront-map",
        "frontend_gateway_address": "gcsfront-ip", "frontend_tls_server_names": [NAME],
        "frontend_tls_redirect_http": True, "frontend_tls_hsts_max_age": 600}), timeout=120)
    docs = [d for d in yaml.safe_load_all((out / "frontend-gateway.yaml").read_text()) if d]
    gateway_api = [d for d in docs if d["apiVersion"].startswith("gateway.networking.k8s.io/")]
    assert [d["kind"] for d in gateway_api] == ["Gateway", "HTTPRoute", "HTTPRoute"]
    assert [d["kind"] for d in docs if d not in gateway_api] == ["HealthCheckPolicy"]

    def dry_run(manifests):
        path = tmp_path / "dry-run.yaml"
        path.write_text(yaml.safe_dump_all(manifests))
        return subprocess.run(["kubectl", "--context", CONTEXT, "apply", "--server-side", "--dry-run=server",
                               "--field-manager", "gcsfront-test", "-f", str(path)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "NO_PROXY": "*"})

    proc = dry_run(gateway_api)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == 3, proc.stdout
    # The CRDs' validation is what passed: a Gateway they refuse fails.
    broken = json.loads(json.dumps(gateway_api[0]))
    broken["spec"]["listeners"][0]["protocol"] = "HTTP2 over pigeons"
    proc = dry_run([broken])
    assert proc.returncode != 0 and "listeners" in proc.stderr, proc.stdout + proc.stderr
