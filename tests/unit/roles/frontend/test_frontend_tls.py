"""HTTPS in the frontend role: the manifests it renders, and the rendered front nginx run for real on loopback.

A local CA made here signs a certificate for NAME; nginx serves it from the paths the Secret is mounted at in the
pod (moved under a test root), on 127.0.0.2-3 and ports 18443-18446, with a local directory standing in for the
gcsfuse mount (as in test_frontend_nginx.py). curl checks what a client sees: the bucket's bytes over HTTPS with SNI
for NAME, a handshake refused for any other name, HTTP redirected except the probes' paths, HSTS on HTTPS only.
Needs root (nginx's workers switch to www-data, as in the image) and Debian's nginx (scripts/setup).
"""

from __future__ import annotations

import base64
import datetime
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import yaml
from conftest import REPO, run_render
from test_frontend_nginx import Pod

sys.path.insert(0, str(REPO / "tests"))
from curl_check import curl  # noqa: E402  (tests/curl_check.py)

NAME = "www.gcsfront.test"
DATA = b"0123456789"
KEY_VALUE = "not-a-real-key-4711"


def certificate(ca_key, ca_cert, subject_key, name, is_ca=False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject if ca_cert else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if not is_ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def make_pki(directory, name=NAME):
    """A local CA and a certificate for name it signed: (ca.pem path, certificate PEM, key PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate(ca_key, None, ca_key, "gcsfront test CA", is_ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(ca_key, ca_cert, key, name)
    ca_pem = pathlib.Path(directory) / "ca.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ca_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def render(tmp, extra_vars):
    """playbooks/render.yml with extra_vars: {file name: [documents]}."""
    out = tmp / "render"
    proc = run_render(out, extra_vars)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in out.glob("*.yaml")}


def kinds(docs):
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def strict(pki, tmp_path_factory):
    """TLS from content, for NAME only, HTTP redirected, HSTS; sidecar mode (nginx non-root)."""
    _ca, cert, key = pki
    return render(tmp_path_factory.mktemp("strict"), {
        "frontend_mount_mode": "sidecar", "frontend_auth": "key",
        "frontend_tls_certificate": cert, "frontend_tls_private_key": key,
        "frontend_tls_server_names": [NAME], "frontend_tls_redirect_http": True, "frontend_tls_hsts_max_age": 600})


def test_without_tls_nothing_changes(tmp_path):
    docs = render(tmp_path, {})
    assert "frontend-tls.yaml" not in docs and "frontend-gateway.yaml" not in docs
    m = kinds(docs["frontend-workload.yaml"])
    assert "ssl" not in m["ConfigMap"]["data"]["nginx.conf"]
    assert [p["name"] for p in m["Service"]["spec"]["ports"]] == ["http"]
    pod = m["Deployment"]["spec"]["template"]
    assert "gcsfront.gke/tls-sha256" not in pod["metadata"]["annotations"]
    assert all(v["name"] != "tls" for v in pod["spec"]["volumes"])


def test_the_key_is_in_the_secret_only_and_mounted_read_only_into_nginx(strict, pki):
    _ca, cert, key = pki
    (secret,) = strict["frontend-tls.yaml"]
    assert secret["kind"] == "Secret" and secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.key"]).decode() == key
    assert base64.b64decode(secret["data"]["tls.crt"]).decode() == cert
    workload = json.dumps(strict["frontend-workload.yaml"])
    key_body = "".join(key.splitlines()[1:-1])
    assert key_body[:40] not in workload and base64.b64encode(key.encode()).decode()[:40] not in workload
    m = kinds(strict["frontend-workload.yaml"])
    pod = m["Deployment"]["spec"]["template"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"] == "gcsfront-tls"
    # nginx runs as uid 33, which is neither the owner (root) of the Secret's files nor in their group.
    assert volume["secret"]["defaultMode"] == 0o444
    containers = pod["spec"]["initContainers"] + pod["spec"]["containers"]
    mounted = {c["name"]: m for c in containers for m in c["volumeMounts"] if m["name"] == "tls"}
    assert list(mounted) == ["nginx"] and mounted["nginx"]["readOnly"] is True
    nginx = pod["spec"]["containers"][0]
    assert nginx["securityContext"]["readOnlyRootFilesystem"] and nginx["securityContext"]["runAsUser"] == 33
    assert {"name": "https", "containerPort": 8443} in nginx["ports"]
    assert {"name": "https", "port": 443, "targetPort": "https"} in m["Service"]["spec"]["ports"]
    # The probes keep asking over HTTP.
    assert nginx["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": "http"}


def test_a_new_certificate_rolls_the_pods(strict, tmp_path):
    _ca, cert, key = make_pki(tmp_path)
    other = render(tmp_path, {"frontend_mount_mode": "sidecar", "frontend_auth": "key",
                              "frontend_tls_certificate": cert, "frontend_tls_private_key": key})
    annotation = "gcsfront.gke/tls-sha256"
    before = kinds(strict["frontend-workload.yaml"])["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    after = kinds(other["frontend-workload.yaml"])["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert len(before[annotation]) == 64 and before[annotation] != after[annotation]


def test_privileged_mode_mounts_the_key_for_root_only(pki, tmp_path):
    _ca, cert, key = pki
    m = kinds(render(tmp_path, {"frontend_mount_mode": "privileged", "frontend_auth": "key",
                                "frontend_tls_certificate": cert, "frontend_tls_private_key": key})
              ["frontend-workload.yaml"])
    volume = next(v for v in m["Deployment"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    assert volume["secret"]["defaultMode"] == 0o400


def test_a_named_secret_or_a_cert_manager_certificate(tmp_path):
    named = render(tmp_path / "named", {"frontend_tls_secret": "site-tls"})
    assert "frontend-tls.yaml" not in named
    volumes = kinds(named["frontend-workload.yaml"])["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "tls")["secret"]["secretName"] == "site-tls"
    issued = render(tmp_path / "issued", {"frontend_tls_issuer": "letsencrypt", "frontend_tls_server_names": [NAME]})
    (certificate_,) = issued["frontend-tls.yaml"]
    assert certificate_["apiVersion"] == "cert-manager.io/v1" and certificate_["kind"] == "Certificate"
    assert certificate_["spec"]["secretName"] == "gcsfront-tls" and certificate_["spec"]["dnsNames"] == [NAME]
    assert certificate_["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer",
                                                 "name": "letsencrypt"}


def test_the_gateway_terminates_tls_with_a_certificate_map_and_redirects(tmp_path):
    docs = render(tmp_path, {"frontend_gateway": True, "frontend_gateway_certmap": "site-map",
                             "frontend_gateway_address": "site-ip", "frontend_tls_server_names": [NAME],
                             "frontend_tls_redirect_http": True, "frontend_tls_hsts_max_age": 600})
    gateway, route, http_route, health = docs["frontend-gateway.yaml"]
    assert gateway["kind"] == "Gateway" and gateway["spec"]["gatewayClassName"] == "gke-l7-global-external-managed"
    assert gateway["metadata"]["annotations"] == {"networking.gke.io/certmap": "site-map"}
    assert gateway["spec"]["addresses"] == [{"type": "NamedAddress", "value": "site-ip"}]
    assert {(li["name"], li["protocol"], li["port"]) for li in gateway["spec"]["listeners"]} == {
        ("http", "HTTP", 80), ("https", "HTTPS", 443)}
    assert route["spec"]["parentRefs"] == [{"name": "gcsfront", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == [NAME]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "gcsfront", "port": 80}]
    assert rule["filters"][0]["responseHeaderModifier"]["set"] == [
        {"name": "Strict-Transport-Security", "value": "max-age=600"}]
    assert http_route["spec"]["parentRefs"] == [{"name": "gcsfront", "sectionName": "http"}]
    assert http_route["spec"]["rules"] == [{"filters": [
        {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]
    assert health["kind"] == "HealthCheckPolicy"
    assert health["spec"]["default"]["config"]["httpHealthCheck"] == {"port": 8080, "requestPath": "/healthz/ready"}
    # The Gateway reaches nginx over HTTP after its own TLS: nginx must not redirect it again.
    assert "gcsfront_to_https" not in kinds(docs["frontend-workload.yaml"])["ConfigMap"]["data"]["nginx.conf"]


@pytest.mark.parametrize(("extra_vars", "line"), [
    ({"frontend_tls_certificate": "x"}, "frontend_tls_certificate and frontend_tls_private_key go together"),
    ({"frontend_tls_certificate": "x", "frontend_tls_private_key": KEY_VALUE, "frontend_tls_secret": "s"},
     "make the TLS Secret: do not also set frontend_tls_secret"),
    ({"frontend_tls_redirect_http": True}, "frontend_tls_redirect_http without HTTPS"),
    ({"frontend_tls_hsts_max_age": 60}, "frontend_tls_hsts_max_age is sent with HTTPS answers only"),
    ({"frontend_tls_issuer": "letsencrypt"}, "frontend_tls_issuer needs frontend_tls_server_names"),
    ({"frontend_gateway_certmap": "m"}, "need frontend_gateway: true"),
])
def test_preflight_refuses_settings_that_do_not_fit(tmp_path, extra_vars, line):
    proc = run_render(tmp_path / "render", extra_vars)
    assert proc.returncode != 0 and line in proc.stdout, proc.stdout[-2000:]
    assert KEY_VALUE not in proc.stdout + proc.stderr


class TlsPod:
    """The front and the mount-serving nginx of one pod, the front on ip:https_port and ip:http_port."""

    def __init__(self, docs, cert, key, ip, https_port, http_port):
        self.ip, self.https_port, self.http_port = ip, https_port, http_port
        # Not under pytest's tmp_path (private to root; the workers run as www-data), nor named /tmp/gcsfront*
        # (Pod moves the pod's paths, /tmp/gcsfront among them, under the root).
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="tls-frontend-"))
        self.root.chmod(0o755)
        tls_dir = self.root / "etc/gcsfront-tls"
        tls_dir.mkdir(parents=True)
        (tls_dir / "tls.crt").write_text(cert)
        (tls_dir / "tls.key").write_text(key)
        (tls_dir / "tls.key").chmod(0o400)
        confs = dict(kinds(docs["frontend-workload.yaml"])["ConfigMap"]["data"])
        confs["nginx.conf"] = (confs["nginx.conf"].replace("/etc/gcsfront-tls/", str(tls_dir) + "/")
                               .replace("listen 8443 ", "listen %s:%d " % (ip, https_port))
                               .replace("listen 8080 ", "listen %s:%d " % (ip, http_port)))
        self.pod = Pod(self.root, confs)
        self.pod.put("file1.txt", DATA)
        (self.pod.state / "mount-alive").touch()

    def __enter__(self):
        try:
            self.pod.start("nginx-mount.conf")
            self.pod.start("nginx.conf")
            deadline = time.monotonic() + 10
            while curl("http://%s:%d/healthz" % (self.ip, self.http_port))[1] != 200 or not (
                    self.pod.state / "mount.sock").exists():
                assert time.monotonic() < deadline, (self.root / "nginx.conf.log").read_text()
                time.sleep(0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for name in list(self.pod.procs):
            self.pod.stop(name)
        shutil.rmtree(self.root, ignore_errors=True)

    def https(self, path, name=NAME, *args):
        return curl("--resolve", "%s:%d:%s" % (name, self.https_port, self.ip), *args,
                    "https://%s:%d%s" % (name, self.https_port, path))

    def http(self, path, *args):
        return curl(*args, "http://%s:%d%s" % (self.ip, self.http_port, path))


def test_the_configuration_passes_nginx_and_gixy(strict, pki, tmp_path):
    _ca, cert, key = pki
    with TlsPod(strict, cert, key, "127.0.0.2", 18447, 18448) as pod:
        check = subprocess.run(["nginx", "-t", "-c", str(pod.pod.confs["nginx.conf"])],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
    conf = tmp_path / "nginx.conf"
    conf.write_text(kinds(strict["frontend-workload.yaml"])["ConfigMap"]["data"]["nginx.conf"])
    gixy = subprocess.run([str(REPO / ".venv/bin/gixy"), "--format", "json", str(conf)],
                          capture_output=True, text=True, check=False)
    assert json.loads(gixy.stdout or "[]") == [], gixy.stdout + gixy.stderr


def test_https_serves_the_bucket_for_its_name_only_and_http_redirects(strict, pki):
    ca, cert, key = pki
    with TlsPod(strict, cert, key, "127.0.0.2", 18443, 18444) as pod:
        rc, status, headers, body, err = pod.https("/file1.txt", NAME, "--cacert", str(ca))
        assert (rc, status, body) == (0, 200, DATA), err
        assert headers["strict-transport-security"] == "max-age=600"
        # Any other name (or none) is refused at the handshake: curl's "SSL connect error", an unrecognized_name alert.
        rc, _status, _headers, _body, err = pod.https("/file1.txt", "other.gcsfront.test", "--insecure")
        assert rc == 35 and "unrecognized name" in err, (rc, err)
        rc, _status, _headers, _body, err = curl("--insecure", "https://%s:%d/file1.txt" % (pod.ip, pod.https_port))
        assert rc == 35, (rc, err)
        # HTTP: a 301 to the same path over HTTPS, without HSTS.
        _rc, status, headers, _body, _err = pod.http("/file1.txt?x=1", "-H", "Host: " + NAME)
        assert status == 301 and headers["location"] == "https://%s/file1.txt?x=1" % NAME
        assert "strict-transport-security" not in headers
        # The probes' paths answer over HTTP, never redirected, without HSTS; over HTTPS with it.
        for path in ("/healthz", "/healthz/ready"):
            _rc, status, headers, _body, _err = pod.http(path)
            assert status == 200 and "strict-transport-security" not in headers, (path, status)
            _rc, status, headers, _body, _err = pod.https(path, NAME, "--cacert", str(ca))
            assert status == 200 and headers["strict-transport-security"] == "max-age=600"


def test_without_server_names_any_name_is_served_and_http_is_not_redirected(pki, tmp_path):
    ca, cert, key = pki
    docs = render(tmp_path, {"frontend_mount_mode": "sidecar", "frontend_auth": "key",
                             "frontend_tls_certificate": cert, "frontend_tls_private_key": key})
    with TlsPod(docs, cert, key, "127.0.0.3", 18445, 18446) as pod:
        rc, status, headers, body, err = pod.https("/file1.txt", NAME, "--cacert", str(ca))
        assert (rc, status, body) == (0, 200, DATA), err
        assert "strict-transport-security" not in headers
        rc, status, _headers, body, err = pod.https("/file1.txt", "other.gcsfront.test", "--insecure")
        assert (rc, status, body) == (0, 200, DATA), err
        _rc, status, _headers, body, _err = pod.http("/file1.txt")
        assert (status, body) == (200, DATA)
