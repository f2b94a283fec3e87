"""Workload Identity on the live local substrate (issue 11, the substrate half).

The GKE-compatible metadata server (gcs-auth-gateway's second listener, at local_cluster_metadata_ip:port)
knows a pod by its address, answers tokens for its Kubernetes ServiceAccount, and the gateway enforces the
bucket's IAM policy on them: 403 before a binding, 200 after a setIamPolicy made with the substrate's key.
Real clients are used: a probe pod's HTTP requests, google-auth run in a pod's network namespace, and the
frontend image's gcsfuse (mount mode, no key file) audited for every connect it makes.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import pathlib
import shutil
import signal
import subprocess
import textwrap
import uuid

import pytest
import requests
from conftest import (DEFAULTS, GCS_CLUSTER_HOST, GCS_ENDPOINT, REPO, apply, build_and_push, ensure_bucket, pod_exec,
                      ready_pods, upload, wait_for)
from connect_audit import connects, is_loopback

METADATA = "%s:%s" % (DEFAULTS["local_cluster_metadata_ip"], DEFAULTS["local_cluster_metadata_port"])
PROJECT_ID = DEFAULTS["local_cluster_project_id"]
PROJECT_NUMBER = str(DEFAULTS["local_cluster_project_number"])
POOL = "%s.svc.id.goog" % PROJECT_ID
SUBSTRATE_SA = "gcsfront@%s.iam.gserviceaccount.com" % PROJECT_ID
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
GOOGLE = "Metadata-Flavor: Google"
# Every address of the substrate: loopback, the node and LoadBalancer range, pods, Services.
SUBSTRATE_NETS = [ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.254.254.0/24", DEFAULTS["local_cluster_pod_cidr"], DEFAULTS["local_cluster_service_cidr"])]

# The probe: a static HTTP client the test runs in pods (the substrate has no image with curl or python).
PROBE_SRC = pathlib.Path(__file__).resolve().parent / "fixtures/wi-probe"

# One GET with the metadata header and no proxy, printing the status (run in the node's namespace).
NODE_GET = ("import sys, urllib.request as u\n"
            "o = u.build_opener(u.ProxyHandler({}))\n"
            "r = u.Request(sys.argv[1], headers={'Metadata-Flavor': 'Google'})\n"
            "try:\n    print(o.open(r, timeout=5).status)\nexcept u.HTTPError as e:\n    print(e.code)\n")


@pytest.fixture(scope="module")
def probe_image(docker_client, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("wi-probe")
    for name in ("main.go", "go.mod", "Dockerfile"):
        shutil.copy(PROBE_SRC / name, ctx / name)
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "build", "-trimpath", "-o", str(ctx / "probe"), "."], cwd=ctx, check=True, env=env)
    tag = hashlib.sha256((PROBE_SRC / "main.go").read_bytes()).hexdigest()[:12]
    return build_and_push(docker_client, ctx, "gcsfront-test/wi-probe", tag)


@pytest.fixture
def wi_ns(kube):
    """A fresh wi- namespace, deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    name = "wi-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def admin():
    """A session with the substrate key's token (the project owner), from the host via the LB address."""
    from google.oauth2 import service_account
    import google.auth.transport.requests

    key = DEFAULTS["local_cluster_state_dir"] + "/gcs-emulator/service-account/service-account.json"
    creds = service_account.Credentials.from_service_account_file(
        key, scopes=["https://www.googleapis.com/auth/devstorage.full_control"])
    session = google.auth.transport.requests.AuthorizedSession(creds)
    session.trust_env = False
    return session


def ksa_principal(ns, ksa):
    return ("principal://iam.googleapis.com/projects/%s/locations/global/workloadIdentityPools/%s/subject/ns/%s/sa/%s"
            % (PROJECT_NUMBER, POOL, ns, ksa))


def service_account(name, gsa=None):
    meta = {"name": name}
    if gsa:
        meta["annotations"] = {"iam.gke.io/gcp-service-account": gsa}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def probe_pod(name, ksa, image, nonce):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": {
        "serviceAccountName": ksa, "automountServiceAccountToken": False, "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "probe", "image": image, "imagePullPolicy": "Always", "args": ["sleep", nonce]}]}}


def start_probes(kube, ns, image, ksas):
    """One probe pod per (pod name, KSA name, GSA or None); returns {pod name: nonce} once all run."""
    nonces = {}
    docs = []
    for pod, ksa, gsa in ksas:
        nonces[pod] = uuid.uuid4().hex
        docs += [service_account(ksa, gsa), probe_pod(pod, ksa, image, nonces[pod])]
    apply(kube, ns, docs)
    from kubernetes import client

    core = client.CoreV1Api(kube)
    wait_for(lambda: all(core.read_namespaced_pod(p, ns).status.phase == "Running" for p in nonces), 90,
             what="the probe pods to run")
    return nonces


def probe(kube, ns, pod, url, *headers):
    out = pod_exec(kube, ns, pod, ["/probe", "get", url, *headers])
    line = [x for x in out.splitlines() if x.startswith("PROBE ")]
    assert line, out
    result = json.loads(base64.b64decode(line[-1][6:]))
    assert "error" not in result, result
    return result


def metadata_token(kube, ns, pod):
    r = probe(kube, ns, pod, "http://%s%s" % (METADATA, TOKEN_PATH), GOOGLE)
    assert r["status"] == 200, r
    assert r["headers"]["Content-Type"] == ["application/json"] and r["headers"]["Metadata-Flavor"] == ["Google"], r
    body = json.loads(r["body"])
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0, body
    return body["access_token"]


def read_from_pod(kube, ns, pod, token, bucket, name):
    url = "http://%s/storage/v1/b/%s/o/%s?alt=media" % (GCS_CLUSTER_HOST, bucket, name.replace("/", "%2F"))
    return probe(kube, ns, pod, url, "Authorization: Bearer " + token)


def grant(admin, bucket, role, member):
    """Read-modify-write the bucket's policy with its etag, as gcloud does; return the new policy."""
    url = GCS_ENDPOINT + "/storage/v1/b/%s/iam" % bucket
    policy = admin.get(url, timeout=10)
    assert policy.status_code == 200, policy.text
    policy = policy.json()
    stale = dict(policy)
    policy["bindings"] = policy["bindings"] + [{"role": role, "members": [member]}]
    r = admin.put(url, json=policy, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["etag"] != stale["etag"] and {"role": role, "members": [member]} in r.json()["bindings"]
    # The same change again on the old etag: 412, and nothing changes.
    again = admin.put(url, json=stale, timeout=10)
    assert again.status_code == 412, again.text
    assert admin.get(url, timeout=10).json() == r.json()
    return r.json()


def make_bucket(admin, ns):
    bucket = "wi-bucket-" + ns
    ensure_bucket(admin, bucket)
    data = os.urandom(50_000)
    upload(admin, bucket, "dir/object.bin", data)
    return bucket, data


def delete_bucket(admin, bucket):
    listing = admin.get(GCS_ENDPOINT + "/storage/v1/b/%s/o" % bucket, timeout=10).json()
    for item in listing.get("items", []):
        admin.delete(GCS_ENDPOINT + "/storage/v1/b/%s/o/%s" % (bucket, item["name"].replace("/", "%2F")), timeout=10)
    admin.delete(GCS_ENDPOINT + "/storage/v1/b/%s" % bucket, timeout=10)


def test_metadata_server_answers_pods_like_gke(kube, wi_ns, probe_image):
    start_probes(kube, wi_ns, probe_image, [("plain", "reader", None)])
    base = "http://" + METADATA

    # Without the header, or relayed by a proxy: 403, no token.
    for headers in ([], ["Metadata-Flavor: google"], [GOOGLE, "X-Forwarded-For: 10.244.9.9"]):
        r = probe(kube, wi_ns, "plain", base + TOKEN_PATH, *headers)
        assert r["status"] == 403 and "access_token" not in r["body"], (headers, r)

    ping = probe(kube, wi_ns, "plain", base + "/", GOOGLE)
    assert ping["status"] == 200 and ping["headers"]["Metadata-Flavor"] == ["Google"], ping
    assert ping["headers"]["Content-Type"], ping
    project = probe(kube, wi_ns, "plain", base + "/computeMetadata/v1/project/project-id", GOOGLE)
    assert (project["status"], project["body"]) == (200, PROJECT_ID), project
    number = probe(kube, wi_ns, "plain", base + "/computeMetadata/v1/project/numeric-project-id", GOOGLE)
    assert number["body"] == PROJECT_NUMBER, number
    email = probe(kube, wi_ns, "plain", base + "/computeMetadata/v1/instance/service-accounts/default/email", GOOGLE)
    assert (email["status"], email["body"]) == (200, POOL), email
    info = probe(kube, wi_ns, "plain", base + "/computeMetadata/v1/instance/service-accounts/default/?recursive=true",
                 GOOGLE)
    assert info["headers"]["Content-Type"] == ["application/json"], info
    assert json.loads(info["body"])["email"] == POOL and json.loads(info["body"])["scopes"], info
    universe = probe(kube, wi_ns, "plain", base + "/computeMetadata/v1/universe/universe-domain", GOOGLE)
    assert universe["status"] == 404, universe
    scoped = probe(kube, wi_ns, "plain", base + TOKEN_PATH + "?scopes=https://www.googleapis.com/auth/"
                   "devstorage.read_only", GOOGLE)
    assert scoped["status"] == 200 and json.loads(scoped["body"])["access_token"], scoped

    # The node itself is no pod: refused. (Asked from the node's namespace: the host has no route to
    # Service addresses, and a request from it would leave by the host's default route.)
    node = subprocess.run(["ip", "netns", "exec", DEFAULTS["local_cluster_netns"], str(REPO / ".venv/bin/python"),
                           "-c", NODE_GET, base + TOKEN_PATH], capture_output=True, text=True, timeout=30, check=False)
    assert node.stdout.strip() == "403", (node.stdout, node.stderr[-2000:])


def test_ksa_token_reads_only_after_the_binding(kube, wi_ns, probe_image, admin):
    start_probes(kube, wi_ns, probe_image, [("plain", "reader", None), ("other", "stranger", None)])
    bucket, data = make_bucket(admin, wi_ns)
    try:
        token = metadata_token(kube, wi_ns, "plain")
        principal = ksa_principal(wi_ns, "reader")

        before = read_from_pod(kube, wi_ns, "plain", token, bucket, "dir/object.bin")
        assert before["status"] == 403, before
        error = json.loads(before["body"])["error"]
        assert error["code"] == 403 and error["message"].startswith(
            "%s does not have storage.objects.get access to the Google Cloud Storage object." % principal), error
        tp = requests.get(GCS_ENDPOINT + "/storage/v1/b/%s/iam/testPermissions" % bucket,
                          params={"permissions": ["storage.objects.get", "storage.objects.list"]},
                          headers={"Authorization": "Bearer " + token}, timeout=10, proxies={"http": None})
        assert tp.status_code == 200 and tp.json()["permissions"] == [], tp.text
        # The pod may not grant itself anything.
        own = requests.put(GCS_ENDPOINT + "/storage/v1/b/%s/iam" % bucket, json={"bindings": [
            {"role": "roles/storage.objectViewer", "members": [principal]}]},
            headers={"Authorization": "Bearer " + token}, timeout=10, proxies={"http": None})
        assert own.status_code == 403 and "storage.buckets.setIamPolicy" in own.text, own.text

        grant(admin, bucket, "roles/storage.objectViewer", principal)

        after = read_from_pod(kube, wi_ns, "plain", token, bucket, "dir/object.bin")
        assert after["status"] == 200, after
        assert base64.b64decode(after["body_b64"]) == data
        # Byte for byte, from the host with the pod's token (the token is the principal's wherever it goes).
        r = requests.get(GCS_ENDPOINT + "/storage/v1/b/%s/o/dir%%2Fobject.bin" % bucket, params={"alt": "media"},
                         headers={"Authorization": "Bearer " + token}, timeout=10, proxies={"http": None})
        assert r.status_code == 200 and r.content == data
        tp = requests.get(GCS_ENDPOINT + "/storage/v1/b/%s/iam/testPermissions" % bucket,
                          params={"permissions": ["storage.objects.get", "storage.objects.create"]},
                          headers={"Authorization": "Bearer " + token}, timeout=10, proxies={"http": None})
        assert tp.json()["permissions"] == ["storage.objects.get"], tp.text
        # objectViewer reads; it does not write.
        write = requests.post(GCS_ENDPOINT + "/upload/storage/v1/b/%s/o" % bucket,
                              params={"uploadType": "media", "name": "x"}, data=b"x",
                              headers={"Authorization": "Bearer " + token}, timeout=10, proxies={"http": None})
        assert write.status_code == 403 and "storage.objects.create" in write.text, write.text
        # Another KSA of the same namespace is another principal: still refused.
        other = read_from_pod(kube, wi_ns, "other", metadata_token(kube, wi_ns, "other"), bucket, "dir/object.bin")
        assert other["status"] == 403, other
    finally:
        delete_bucket(admin, bucket)


def test_annotated_ksa_gets_its_google_service_account(kube, wi_ns, probe_image, admin):
    gsa = "wi-reader@%s.iam.gserviceaccount.com" % PROJECT_ID
    start_probes(kube, wi_ns, probe_image, [("bound", "bound", gsa), ("sneaky", "sneaky", SUBSTRATE_SA)])
    bucket, data = make_bucket(admin, wi_ns)
    try:
        base = "http://%s/computeMetadata/v1/instance/service-accounts/" % METADATA
        email = probe(kube, wi_ns, "bound", base + "default/email", GOOGLE)
        assert (email["status"], email["body"]) == (200, gsa), email
        listing = probe(kube, wi_ns, "bound", base, GOOGLE)
        assert listing["body"] == "default/\n%s/\n" % gsa, listing

        # Until the GSA's policy lets the KSA act as it, GKE's 403 on the token path.
        refused = probe(kube, wi_ns, "bound", base + "default/token", GOOGLE)
        assert refused["status"] == 403 and "iam.serviceAccounts.getAccessToken" in refused["body"], refused
        sa_iam = GCS_ENDPOINT + "/v1/projects/-/serviceAccounts/%s:" % gsa
        policy = admin.post(sa_iam + "getIamPolicy", timeout=10)
        assert policy.status_code == 200, policy.text
        member = "serviceAccount:%s[%s/bound]" % (POOL, wi_ns)
        policy = policy.json()
        policy["bindings"] = policy["bindings"] + [{"role": "roles/iam.workloadIdentityUser", "members": [member]}]
        r = admin.post(sa_iam + "setIamPolicy", json={"policy": policy}, timeout=10)
        assert r.status_code == 200, r.text
        stale = admin.post(sa_iam + "setIamPolicy", json={"policy": policy}, timeout=10)
        assert stale.status_code == 409, stale.text
        token = metadata_token(kube, wi_ns, "bound")
        assert read_from_pod(kube, wi_ns, "bound", token, bucket, "dir/object.bin")["status"] == 403
        # Bound to the KSA's own principal, the annotated pod is still refused: it acts as the GSA.
        grant(admin, bucket, "roles/storage.objectViewer", ksa_principal(wi_ns, "bound"))
        assert read_from_pod(kube, wi_ns, "bound", token, bucket, "dir/object.bin")["status"] == 403
        grant(admin, bucket, "roles/storage.objectViewer", "serviceAccount:" + gsa)
        assert read_from_pod(kube, wi_ns, "bound", token, bucket, "dir/object.bin")["status"] == 200

        # A KSA naming the substrate's own account (the project owner) gets no token, even when granted.
        owner_iam = GCS_ENDPOINT + "/v1/projects/-/serviceAccounts/%s:" % SUBSTRATE_SA
        owner_policy = admin.post(owner_iam + "getIamPolicy", timeout=10).json()
        sneaky_member = "serviceAccount:%s[%s/sneaky]" % (POOL, wi_ns)
        granted = {**owner_policy, "bindings": owner_policy["bindings"] + [
            {"role": "roles/iam.workloadIdentityUser", "members": [sneaky_member]}]}
        r = admin.post(owner_iam + "setIamPolicy", json={"policy": granted}, timeout=10)
        assert r.status_code == 200, r.text
        try:
            sneaky = probe(kube, wi_ns, "sneaky", "http://%s%s" % (METADATA, TOKEN_PATH), GOOGLE)
            assert sneaky["status"] == 403 and "iam.serviceAccounts.getAccessToken" in sneaky["body"], sneaky
        finally:
            admin.post(owner_iam + "setIamPolicy", json={"policy": {"bindings": owner_policy["bindings"]}}, timeout=10)
    finally:
        delete_bucket(admin, bucket)
        # The GSA's policy outlives the namespace: take the binding away again.
        admin.post(GCS_ENDPOINT + "/v1/projects/-/serviceAccounts/%s:setIamPolicy" % gsa,
                   json={"policy": {"bindings": []}}, timeout=10)


def _host_pid(predicate, what):
    def find():
        for proc in pathlib.Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if predicate(proc):
                        return int(proc.name)
                except OSError:
                    continue
        return None

    return wait_for(find, 30, what=what)


def test_google_auth_in_a_pods_network_namespace(kube, wi_ns, probe_image, admin, tmp_path):
    """google-auth (installed here) run inside a probe pod's network namespace: application default
    credentials find the metadata server (ping at GCE_METADATA_IP), and read the object after the binding."""
    nonces = start_probes(kube, wi_ns, probe_image, [("plain", "reader", None)])
    bucket, data = make_bucket(admin, wi_ns)
    try:
        grant(admin, bucket, "roles/storage.objectViewer", ksa_principal(wi_ns, "reader"))
        pid = _host_pid(lambda p: (p / "cmdline").read_bytes().split(b"\0")[:3] == [b"/probe", b"sleep",
                                                                                    nonces["plain"].encode()],
                        "the probe's process on the host")
        script = textwrap.dedent("""
            import hashlib, json, sys
            import google.auth, google.auth.transport.requests as tr
            creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_only"])
            session = tr.AuthorizedSession(creds)
            session.trust_env = False
            r = session.get(sys.argv[1], timeout=10)
            print(json.dumps({"type": type(creds).__module__ + "." + type(creds).__name__, "project": project,
                              "email": creds.service_account_email, "status": r.status_code,
                              "sha256": hashlib.sha256(r.content).hexdigest()}))
        """)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GCE_METADATA_HOST": METADATA,
               "GCE_METADATA_IP": METADATA, "NO_PROXY": "*"}
        url = "%s/storage/v1/b/%s/o/dir%%2Fobject.bin?alt=media" % (GCS_ENDPOINT, bucket)
        out = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % pid, str(REPO / ".venv/bin/python"), "-c", script,
                              url], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got == {"type": "google.auth.compute_engine.credentials.Credentials", "project": PROJECT_ID,
                       "email": POOL, "status": 200, "sha256": hashlib.sha256(data).hexdigest()}, got
    finally:
        delete_bucket(admin, bucket)


def test_gcsfuse_mounts_with_workload_identity_only_inside_the_substrate(kube, wi_ns, frontend_image, admin):
    """The frontend image in mount mode, no key file, GCE_METADATA_HOST at the metadata server: it mounts,
    reads are refused (403 for the KSA's principal) while the KSA has no binding and read byte for byte once it
    has, and every connect its gcsfuse makes (traced from the host) goes to an address of the substrate."""
    from kubernetes import client

    bucket, data = make_bucket(admin, wi_ns)
    gcsfuse_yaml = "\n".join([
        "implicit-dirs: true",
        "file-system: {uid: 33, gid: 33, file-mode: '0444', dir-mode: '0555'}",
        "gcs-connection: {custom-endpoint: 'http://%s/storage/v1/'}" % GCS_CLUSTER_HOST,
        "enable-hns: false",
        "gcs-retries: {max-retry-attempts: 3}",
    ])
    apply(kube, wi_ns, [
        service_account("frontend"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fuse"}, "data": {"gcsfuse.yaml": gcsfuse_yaml}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fuse", "labels": {"app": "fuse"}}, "spec": {
            "serviceAccountName": "frontend", "automountServiceAccountToken": False, "enableServiceLinks": False,
            "containers": [{
                "name": "fuse", "image": frontend_image, "imagePullPolicy": "Always",
                "securityContext": {"privileged": True},
                # The image's entrypoint, started once the host traces the container (below).
                "command": ["sh", "-c", "while [ ! -e /tmp/wi-go ]; do sleep 0.2; done; "
                            "exec /usr/local/bin/gcsfront-entrypoint"],
                "env": [{"name": "GCSFRONT_MODE", "value": "mount"},
                        {"name": "GCSFRONT_BUCKET", "value": bucket},
                        {"name": "GCSFRONT_GCSFUSE_CONFIG", "value": "/etc/fuse/gcsfuse.yaml"},
                        {"name": "GCE_METADATA_HOST", "value": METADATA}],
                "readinessProbe": {"exec": {"command": ["mountpoint", "-q", "/mnt/gcs"]}, "periodSeconds": 1},
                "volumeMounts": [{"name": "fuse", "mountPath": "/etc/fuse", "readOnly": True}]}],
            "volumes": [{"name": "fuse", "configMap": {"name": "fuse"}}]}},
    ])
    core = client.CoreV1Api(kube)
    strace = None
    try:
        wait_for(lambda: core.read_namespaced_pod("fuse", wi_ns).status.phase == "Running", 120,
                 what="the gcsfuse pod to start")
        entry = _host_pid(lambda p: b"wi-go" in (p / "cmdline").read_bytes()
                          and ("GCSFRONT_BUCKET=" + bucket).encode() in (p / "environ").read_bytes().split(b"\0"),
                          "the pod's main process on the host")
        # Every process the container's main process becomes or starts is traced from here on, gcsfuse included.
        trace = pathlib.Path("/tmp/wi-strace-%s.log" % wi_ns)
        strace = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), "-p", str(entry)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: "TracerPid:\t0\n" not in pathlib.Path("/proc/%d/status" % entry).read_text(), 10,
                 interval=0.1, what="strace to attach")
        pod_exec(kube, wi_ns, "fuse", ["touch", "/tmp/wi-go"])

        # gcsfuse mounts without asking GCS anything; without a binding every read is refused (403).
        wait_for(lambda: ready_pods(kube, wi_ns, "app=fuse"), 90, what="the gcsfuse pod to mount")
        mounts = pod_exec(kube, wi_ns, "fuse", ["cat", "/proc/mounts"])
        assert any(line.split()[:3] == [bucket, "/mnt/gcs", "fuse.gcsfuse"] for line in mounts.splitlines()), mounts
        denied = pod_exec(kube, wi_ns, "fuse", ["sh", "-c", "ls /mnt/gcs/dir; echo status=$?"])
        assert "status=0" not in denied and "object.bin" not in denied, denied
        logs = core.read_namespaced_pod_log("fuse", wi_ns)
        assert "403" in logs and ksa_principal(wi_ns, "frontend") in logs, logs[-3000:]

        # The binding: the same mount reads the object, byte for byte (once the negative cache expires).
        grant(admin, bucket, "roles/storage.objectViewer", ksa_principal(wi_ns, "frontend"))

        def read_back():
            out = pod_exec(kube, wi_ns, "fuse", ["sh", "-c", "base64 -w0 /mnt/gcs/dir/object.bin && echo && echo ok"])
            return base64.b64decode(out.split()[0]) if out.rstrip().endswith("ok") else None

        assert wait_for(read_back, 60, what="the object to read through the mount after the binding") == data

        # The invocation: no key file, --disable-autoconfig, the metadata server in its environment.
        gcsfuse = _host_pid(lambda p: (p / "cmdline").read_bytes().startswith(b"gcsfuse\0")
                            and bucket.encode() in (p / "cmdline").read_bytes().split(b"\0"), "gcsfuse on the host")
        argv = pathlib.Path("/proc/%d/cmdline" % gcsfuse).read_bytes().split(b"\0")
        environ = pathlib.Path("/proc/%d/environ" % gcsfuse).read_bytes().split(b"\0")
        assert b"--disable-autoconfig" in argv and b"--key-file" not in argv, argv
        assert ("GCE_METADATA_HOST=" + METADATA).encode() in environ
        assert not any(e.startswith(b"GOOGLE_APPLICATION_CREDENTIALS=") for e in environ)
    finally:
        if strace is not None:
            strace.send_signal(signal.SIGINT)
            strace.wait(timeout=10)
        delete_bucket(admin, bucket)

    output = trace.read_text()
    trace.unlink()
    addresses = [(addr, port) for _family, addr, port in connects(output) if addr is not None]
    print("gcsfuse's connects:", sorted(set(addresses)))
    host, port = METADATA.rsplit(":", 1)
    assert (host, int(port)) in addresses, "gcsfuse never asked the metadata server:\n" + output[-3000:]
    outside = ["%s:%s" % a for a in addresses
               if not is_loopback(a[0]) and not any(ipaddress.ip_address(a[0]) in net for net in SUBSTRATE_NETS)]
    assert outside == [], "gcsfuse dialed outside the substrate:\n" + output
    assert not [a for a in addresses if a[0] == "169.254.169.254"]
