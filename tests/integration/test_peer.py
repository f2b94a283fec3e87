"""The GCS proxy peer of the comparison (issue 10): roles/comparison_lab/tasks/peer.yml on the live substrate.

nginx with proxy_cache straight in front of the GCS API, no FUSE. In a scratch namespace the credentials role
stores the key Secret and the peer is deployed reading the bucket through a relay of this test's own (a plain
nginx in front of the emulator, standing where the benchmark puts its fault proxy), so that GCS can be made
unreachable without touching anything outside the namespace: scaling the relay to 0 leaves its Service with
no endpoints. The namespace is deleted afterwards.

The token refresh is proven on the image alone, on loopback: a token endpoint whose tokens live 12 s must
see the peer come back for new ones, and every request reach GCS with a valid token, nginx never restarted.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from conftest import GCS_CLUSTER_HOST, GCS_ENDPOINT, SA_KEY_FILE, ready_pods, recap, run_playbook, upload, wait_for

NAMESPACE = "gcsfront-peer-test"
BUCKET = "gcsfront-local"
RELAY = "gcs-relay"
RELAY_PORT = 4443
CACHE_VALID = 5  # seconds: the peer's entries go stale quickly, so the stale test need not wait long
SEED_OBJECTS = ("index.html", "file1.txt", "file2.png")

PLAYBOOK = """\
- name: Deploy the GCS proxy peer into a scratch namespace.
  hosts: all
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s:
      kubeconfig: "{{{{ gcsfront_kubeconfig | default(omit) }}}}"
      context: "{{{{ gcsfront_kube_context | default(omit) }}}}"
    group/gcsfront.gke.k8s:
      kubeconfig: "{{{{ gcsfront_kubeconfig | default(omit) }}}}"
      context: "{{{{ gcsfront_kube_context | default(omit) }}}}"
  tasks:
    - name: Store the key Secret in the namespace.
      ansible.builtin.include_role:
        name: gcsfront.gke.credentials
      vars:
        credentials_namespace: {namespace}

    - name: Deploy the peer.
      ansible.builtin.include_role:
        name: gcsfront.gke.comparison_lab
        tasks_from: peer
      vars:
        comparison_lab_namespace: {namespace}
        comparison_lab_peer_gcs_endpoint: http://{relay}.{namespace}.svc.cluster.local:{port}/storage/v1/
        comparison_lab_peer_replicas: 1
        comparison_lab_peer_cache_valid: {valid}s

    - name: Hand the peer's fact to the test.
      ansible.builtin.copy:
        dest: {out}
        content: "{{{{ comparison_lab_peer | to_json }}}}"
        mode: "0644"
"""

# The relay: nginx (the peer's image) passing every request through to the emulator unchanged, the path
# as it came (an escaped name stays escaped) and the peer's Authorization header with it.
RELAY_CONF = """\
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path /tmp/client-body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server {
        listen 8080;
        location / {
            proxy_pass http://%s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
""" % GCS_CLUSTER_HOST


def _session():
    s = requests.Session()
    s.trust_env = False  # the substrate is local: never through a proxy
    return s


def _delete_namespace(kube):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube)
    try:
        core.delete_namespace(NAMESPACE, propagation_policy="Foreground")
    except ApiException as e:
        if e.status != 404:
            raise

    def gone():
        try:
            core.read_namespace(NAMESPACE)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, 180, interval=2, what="namespace %s to be deleted" % NAMESPACE)


def _relay_service():
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": RELAY},
            "spec": {"selector": {"app": RELAY}, "ports": [{"port": RELAY_PORT, "targetPort": 8080}]}}


def _relay_workload(image):
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                  "capabilities": {"drop": ["ALL"]}}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": RELAY}, "data": {"nginx.conf": RELAY_CONF}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": RELAY},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": RELAY}},
                  "template": {"metadata": {"labels": {"app": RELAY}}, "spec": {
                      "enableServiceLinks": False, "automountServiceAccountToken": False,
                      "terminationGracePeriodSeconds": 5,
                      "securityContext": {"runAsUser": 33, "runAsGroup": 33, "runAsNonRoot": True,
                                          "seccompProfile": {"type": "RuntimeDefault"}},
                      "containers": [{
                          "name": "nginx", "image": image,
                          "command": ["nginx", "-e", "stderr", "-c", "/etc/relay/nginx.conf", "-g", "daemon off;"],
                          "ports": [{"containerPort": 8080}],
                          "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                          "securityContext": restricted,
                          "volumeMounts": [{"name": "conf", "mountPath": "/etc/relay", "readOnly": True},
                                           {"name": "tmp", "mountPath": "/tmp"}]}],
                      "volumes": [{"name": "conf", "configMap": {"name": RELAY}},
                                  {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]}}}},
    ]


def _scale_relay(kube, replicas):
    from kubernetes import client

    client.AppsV1Api(kube).patch_namespaced_deployment_scale(RELAY, NAMESPACE, {"spec": {"replicas": replicas}})


def _relay_endpoints(kube):
    from kubernetes import client

    slices = client.DiscoveryV1Api(kube).list_namespaced_endpoint_slice(
        NAMESPACE, label_selector="kubernetes.io/service-name=%s" % RELAY).items
    return [ep for s in slices for ep in (s.endpoints or [])]


@pytest.fixture(scope="module")
def peer(kube, tmp_path_factory):
    """The peer deployed by tasks/peer.yml through the relay: its URL, the playbook, its pod spec, image and
    nginx.conf. Deletes the namespace afterwards."""
    from kubernetes import client, utils

    _delete_namespace(kube)  # a namespace left by an interrupted run
    client.CoreV1Api(kube).create_namespace({"metadata": {"name": NAMESPACE}})
    try:
        # The relay's Service first: nginx resolves the endpoint's name when it starts.
        utils.create_from_dict(kube, _relay_service(), namespace=NAMESPACE)
        work = tmp_path_factory.mktemp("peer")
        out = work / "peer.json"
        playbook = work / "peer.yml"
        playbook.write_text(PLAYBOOK.format(namespace=NAMESPACE, relay=RELAY, port=RELAY_PORT, valid=CACHE_VALID,
                                            out=out))
        run_playbook(str(playbook), timeout=1200)
        fact = json.loads(out.read_text())
        assert fact["service"] == "gcs-proxy-peer" and fact["address"].startswith("10.254.254."), fact

        deployment = client.AppsV1Api(kube).read_namespaced_deployment("gcs-proxy-peer", NAMESPACE)
        pod = deployment.spec.template.spec
        image = pod.containers[0].image
        conf = client.CoreV1Api(kube).read_namespaced_config_map("gcs-proxy-peer-config", NAMESPACE).data["nginx.conf"]
        for doc in _relay_workload(image):
            utils.create_from_dict(kube, doc, namespace=NAMESPACE)
        wait_for(lambda: ready_pods(kube, NAMESPACE, "app=%s" % RELAY), 120, what="the relay to be ready")
        yield {"url": "http://%s/" % fact["address"], "playbook": playbook, "pod": pod, "image": image, "conf": conf}
    finally:
        _delete_namespace(kube)


def _bucket_object(gcs_session, name):
    """The object's bytes and metadata, read from the emulator with the substrate's key."""
    quoted = urllib.parse.quote(name, safe="")
    meta = gcs_session.get("%s/storage/v1/b/%s/o/%s" % (GCS_ENDPOINT, BUCKET, quoted), timeout=10)
    assert meta.status_code == 200, (name, meta.status_code, meta.text[:200])
    media = gcs_session.get("%s/storage/v1/b/%s/o/%s" % (GCS_ENDPOINT, BUCKET, quoted), params={"alt": "media"},
                            timeout=30)
    assert media.status_code == 200, (name, media.status_code)
    return media.content, meta.json()


def test_the_peer_runs_non_root_without_capabilities_and_a_rerun_changes_nothing(peer):
    pod = peer["pod"]
    assert pod.security_context.run_as_non_root and pod.security_context.run_as_user == 33
    container = pod.containers[0].security_context
    assert container.capabilities.drop == ["ALL"] and not container.allow_privilege_escalation
    assert container.read_only_root_filesystem
    proc = run_playbook(str(peer["playbook"]))
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-4000:]


@pytest.mark.parametrize("name", SEED_OBJECTS)
def test_the_peer_serves_the_bucket_byte_for_byte(peer, gcs_session, name):
    body, meta = _bucket_object(gcs_session, name)
    r = _session().get(peer["url"] + name, timeout=15)
    assert r.status_code == 200, (name, r.status_code, r.text[:200])
    assert r.content == body, "%s: %d bytes served, %d in the bucket" % (name, len(r.content), len(body))
    assert r.headers["Content-Type"] == meta["contentType"], (name, r.headers)
    assert r.headers.get("ETag"), r.headers
    assert r.headers["X-Cache-Status"] in ("MISS", "HIT", "EXPIRED", "STALE", "UPDATING", "REVALIDATED"), r.headers
    # GCS's own headers stay inside.
    assert not [h for h in r.headers if h.lower().startswith(("x-goog-", "x-guploader"))], r.headers


def test_a_second_request_is_a_cache_hit_and_names_may_hold_slashes(peer, gcs_session):
    name = "peer-test/a dir/object+%s.txt" % uuid.uuid4().hex[:8]
    data = ("peer %s\n" % name).encode()
    upload(gcs_session, BUCKET, name, data, content_type="text/plain")
    try:
        path = peer["url"] + urllib.parse.quote(name)
        s = _session()
        first, second = s.get(path, timeout=15), s.get(path, timeout=15)
        assert (first.status_code, first.content, first.headers["X-Cache-Status"]) == (200, data, "MISS"), first.headers
        assert (second.status_code, second.content, second.headers["X-Cache-Status"]) == (200, data, "HIT"), \
            second.headers
        assert second.headers["Content-Type"] == "text/plain"
    finally:
        gcs_session.delete("%s/storage/v1/b/%s/o/%s" % (GCS_ENDPOINT, BUCKET, urllib.parse.quote(name, safe="")),
                           timeout=10)


def test_a_missing_name_is_404_without_gcs_details(peer):
    r = _session().get(peer["url"] + "peer-test/no-such-object-%s" % uuid.uuid4().hex, timeout=15)
    assert r.status_code == 404, (r.status_code, r.text[:200])
    assert BUCKET not in r.text, r.text


def test_ranges_and_conditional_requests(peer, gcs_session):
    body, _meta = _bucket_object(gcs_session, "file2.png")
    s = _session()
    r = s.get(peer["url"] + "file2.png", headers={"Range": "bytes=100-199"}, timeout=15)
    assert r.status_code == 206 and r.content == body[100:200], (r.status_code, len(r.content))
    assert r.headers["Content-Range"] == "bytes 100-199/%d" % len(body)
    etag = s.get(peer["url"] + "file2.png", timeout=15).headers["ETag"]
    assert s.get(peer["url"] + "file2.png", headers={"If-None-Match": etag}, timeout=15).status_code == 304


def test_cached_objects_are_served_stale_while_gcs_is_unreachable(peer, gcs_session, kube):
    s = _session()
    expected = {}
    for name in SEED_OBJECTS:
        expected[name], _meta = _bucket_object(gcs_session, name)
        r = s.get(peer["url"] + name, timeout=15)
        assert r.status_code == 200 and r.content == expected[name], name

    _scale_relay(kube, 0)
    wait_for(lambda: not _relay_endpoints(kube) and not ready_pods(kube, NAMESPACE, "app=%s" % RELAY), 60,
             what="the relay to be gone (GCS unreachable for the peer)")
    time.sleep(CACHE_VALID + 1)  # every entry is past its validity: the peer must ask GCS, and cannot

    for name in SEED_OBJECTS:
        t0 = time.monotonic()
        r = s.get(peer["url"] + name, timeout=30)
        took = time.monotonic() - t0
        assert r.status_code == 200, (name, r.status_code, r.text[:200])
        assert r.content == expected[name], name
        assert r.headers["X-Cache-Status"] == "STALE", (name, r.headers)
        assert took < 12, "%s: stale took %.1fs" % (name, took)
    # Proof that GCS is out of reach: a name never cached fails (bounded), instead of being fetched.
    t0 = time.monotonic()
    r = s.get(peer["url"] + "peer-test/never-cached-%s" % uuid.uuid4().hex, timeout=30)
    assert r.status_code in (502, 504), (r.status_code, r.text[:200])
    assert time.monotonic() - t0 < 25


def test_the_token_comes_from_the_keys_token_uri(peer, kube):
    from kubernetes import client

    core = client.CoreV1Api(kube)
    pods = ready_pods(kube, NAMESPACE, "app.kubernetes.io/name=gcs-proxy-peer")
    assert len(pods) == 1, pods
    log = core.read_namespaced_pod_log(pods[0].metadata.name, NAMESPACE)
    token_uri = json.loads(SA_KEY_FILE.read_text())["token_uri"]
    assert "got an access token for " in log and "from %s, valid" % token_uri in log, log
    assert "Bearer" not in log and "gcsemu1." not in log, "the token is in the log"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _FakeGCS(BaseHTTPRequestHandler):
    """A token endpoint (checks the RS256 assertion) and a JSON API media download, on loopback."""

    protocol_version = "HTTP/1.1"
    ttl, public_key, issued, calls, lock = 12, None, {}, [], threading.Lock()

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass

    def _send(self, code, body, content_type="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 - the http.server API
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        header, claims, sig = form["assertion"][0].split(".")
        self.public_key.verify(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)), ("%s.%s" % (header, claims)).encode(),
                               padding.PKCS1v15(), hashes.SHA256())
        with self.lock:
            token = "fake.%d" % len(self.issued)
            self.issued[token] = time.monotonic() + self.ttl
        self._send(200, json.dumps({"access_token": token, "expires_in": self.ttl, "token_type": "Bearer"}).encode())

    def do_GET(self):  # noqa: N802 - the http.server API
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            valid = self.issued.get(token, 0) > time.monotonic()
            self.calls.append((token, valid))
        if not valid:
            self._send(401, b'{"error": {"code": 401}}')
        else:
            self._send(200, self.path.encode(), "text/plain")


def test_the_token_is_refreshed_before_it_expires_without_a_restart(peer, docker_client, tmp_path):
    """The image alone, on loopback, against a token endpoint whose tokens live 12 s: every request of 30 s
    reaches GCS with a valid token, from several tokens, and nginx was started once (reloads, no restarts)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _FakeGCS.public_key, _FakeGCS.issued, _FakeGCS.calls = key.public_key(), {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGCS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gcs = "127.0.0.1:%d" % server.server_address[1]
    port = _free_port()
    (tmp_path / "key").mkdir()
    (tmp_path / "conf").mkdir()
    (tmp_path / "key/key.json").write_text(json.dumps({
        "type": "service_account", "private_key_id": "test", "client_email": "peer-test@example.iam.gserviceaccount.com",
        "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "token_uri": "http://%s/token" % gcs}))
    (tmp_path / "key/key.json").chmod(0o644)  # a throwaway key; the container runs as uid 33
    conf = peer["conf"].replace("listen 8080", "listen 127.0.0.1:%d" % port)
    conf = conf.replace("server %s.%s.svc.cluster.local:%d" % (RELAY, NAMESPACE, RELAY_PORT), "server " + gcs)
    assert gcs in conf
    (tmp_path / "conf/nginx.conf").write_text(conf)
    container = docker_client.containers.run(
        peer["image"], detach=True, network_mode="host", read_only=True, user="33:33", cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        tmpfs={"/run/gcs-proxy-peer": "uid=33,gid=33,mode=0755", "/var/cache/gcs-proxy-peer": "uid=33,gid=33"},
        volumes={str(tmp_path / "key"): {"bind": "/var/run/secrets/gcs", "mode": "ro"},
                 str(tmp_path / "conf"): {"bind": "/etc/gcs-proxy-peer", "mode": "ro"}})
    try:
        s = _session()
        wait_for(lambda: s.get("http://127.0.0.1:%d/healthz" % port, timeout=2).ok, 30, interval=0.5,
                 what="the peer container to answer")
        statuses = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a new name each time: every request goes to GCS
            statuses.append(s.get("http://127.0.0.1:%d/refresh-%s" % (port, uuid.uuid4().hex), timeout=15).status_code)
            time.sleep(0.5)
        container.reload()
        logs = container.logs().decode()
        assert container.status == "running", logs[-2000:]
    finally:
        container.remove(force=True)
        server.shutdown()
    used = {token for token, _valid in _FakeGCS.calls}
    assert set(statuses) == {200}, (statuses, logs[-2000:])
    assert all(valid for _token, valid in _FakeGCS.calls), _FakeGCS.calls
    assert len(used) >= 3 and len(_FakeGCS.issued) >= 3, (used, logs[-2000:])
    assert logs.count("nginx started") == 1 and logs.count("got an access token") >= 3, logs[-2000:]
