"""deploy.yml end to end on the local default inventory (issue: the collection end to end)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import uuid

import pytest
import requests
from conftest import GCS_ENDPOINT, REPO, SA_KEY_FILE, pod_exec, recap, redeploy, run_playbook, wait_for

SEED = REPO / "playbooks/files/seed"
FINAL_LINE = re.compile(r"gcsfront: gs://(\S+) is served at (http://\S+/) \(([^:,]+)(?:, picked from the bucket)?: "
                        r"(\d+) bytes, sha256 (\w+)\.\.\. (matches the bucket|DOES NOT match the bucket)")


def final_line(output):
    text = " ".join(output.split())  # the message is folded over lines by the callback
    m = FINAL_LINE.search(text)
    assert m, "no final report line in:\n" + output[-3000:]
    return m


def error_lines(output):
    lines = output.splitlines()
    # A role's argument_specs validation names the bad option on the line after its [ERROR] line.
    return [ln for i, ln in enumerate(lines) if ln.startswith(("fatal:", "[ERROR]")) or '"msg":' in ln
            or ln.strip().startswith("msg:") or (i > 0 and lines[i - 1].endswith("Validation of arguments failed:"))]


@pytest.fixture(scope="module")
def deployed():
    """The first deploy on the local default (after the substrate is up), as a user runs it."""
    proc = run_playbook("deploy.yml", timeout=1800)
    return proc


def test_deploy_serves_the_bucket_and_reports_the_url(deployed):
    m = final_line(deployed.stdout)
    assert m.group(6) == "matches the bucket"
    # The inventory names no smoke object: the deploy picked one from the bucket and says so.
    assert "index.html, picked from the bucket:" in " ".join(deployed.stdout.split())
    url = m.group(2)
    for name in ("index.html", "file1.txt", "file2.png"):
        body = requests.get(url + name, timeout=10).content
        assert hashlib.sha256(body).digest() == hashlib.sha256((SEED / name).read_bytes()).digest(), name
    assert requests.get(url + "nothing-here", timeout=10).status_code == 404


def test_second_deploy_changes_nothing(deployed):
    proc = run_playbook("deploy.yml")
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-4000:]


def test_check_diff_on_a_deployed_stack_changes_nothing(deployed, kube):
    from kubernetes import client

    apps = client.AppsV1Api(kube)
    before = apps.read_namespaced_deployment("gcsfront", "gcsfront").metadata.resource_version
    proc = redeploy("--check", "--diff")
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-4000:]
    assert apps.read_namespaced_deployment("gcsfront", "gcsfront").metadata.resource_version == before


def test_an_nginx_killed_outright_restarts_once_and_serves_again(deployed, kube):
    """SIGKILL (the OOM killer) leaves nginx's unix sockets in the state directory, which outlives the container:
    the restarted container serves again instead of crash-looping on bind()."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    pod = sorted(p.metadata.name for p in core.list_namespaced_pod(
        "gcsfront", label_selector="app.kubernetes.io/name=gcsfront").items)[0]

    def nginx_status():
        status = core.read_namespaced_pod(pod, "gcsfront").status
        return next(c for c in status.container_statuses if c.name == "nginx")

    before = nginx_status().restart_count
    pod_exec(kube, "gcsfront", pod, ["sh", "-c", "kill -9 $(cat /tmp/gcsfront/nginx.pid /tmp/gcsfront/nginx-mount.pid)"],
             container="nginx")
    wait_for(lambda: nginx_status().restart_count == before + 1 and nginx_status().ready, 90,
             what="the nginx container to restart and be ready")
    time.sleep(15)  # a crash loop would have restarted it again by now
    assert nginx_status().restart_count == before + 1 and nginx_status().ready
    answer = pod_exec(kube, "gcsfront", pod, ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080; "
                                              "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' >&3; head -1 <&3"],
                      container="nginx")
    assert answer.split()[1] == "200", answer


def private_fragments(pem):
    """40-character probes of the key's private numbers, in every encoding they could be printed in.

    The public modulus is in the private key's PEM too and is printed legitimately (certificate, CSR), so the
    probes come from the private exponent and the primes only: base64 at each of the three byte alignments a
    PEM can put them in, hex and decimal.
    """
    import base64

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    numbers = load_pem_private_key(pem.encode(), password=None).private_numbers()
    probes = []
    for value in (numbers.d, numbers.p, numbers.q):
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        probes += [base64.b64encode(raw[k:]).decode()[8:48] for k in range(3)]
        probes += [raw.hex()[8:48], str(value)[8:48]]
    return probes


def test_verbose_deploy_never_prints_the_private_key(deployed):
    key = json.loads(SA_KEY_FILE.read_text())
    proc = redeploy("-vvv")
    # PEM and JSON output fold the key over lines ("\n" escaped or real): search with every break removed.
    out = re.sub(r"\s+|\\n", "", proc.stdout)
    probes = private_fragments(key["private_key"])
    assert len(probes) == 15 and all(len(p) == 40 for p in probes)
    # The probes do catch the key when printed: the key file itself holds d, p and q in base64.
    assert sum(p in re.sub(r"\s+|\\n", "", SA_KEY_FILE.read_text()) for p in probes) >= 3
    leaked = [p for p in probes if p in out]
    assert not leaked, "private key material in -vvv output"
    assert "PRIVATEKEY-----" not in out
    assert len(out) > 100000, "the -vvv run printed too little to prove anything"


def key_probes(key_text):
    """Probes of the key as the cluster could hold it: its private numbers (private_fragments) and the key file
    base64-encoded as Secret data is, at each of the three byte alignments, so a copy of the Secret's data
    (a last-applied annotation, say) is caught too."""
    import base64

    probes = private_fragments(json.loads(key_text)["private_key"])
    raw = key_text.encode()
    start = len(raw) // 2  # the middle of the file: inside the PEM
    probes += [base64.b64encode(raw[start + k:start + k + 60]).decode()[4:44] for k in range(3)]
    return probes


def namespace_objects(kube, skip_secret=None):
    """Every object a deploy makes in the gcsfront namespace, serialized (the named Secret's data left out)."""
    from kubernetes import client

    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    api = client.ApiClient()
    return {
        "secrets": [api.sanitize_for_serialization(s.metadata if s.metadata.name == skip_secret else s)
                    for s in core.list_namespaced_secret("gcsfront").items],
        "configmaps": api.sanitize_for_serialization(core.list_namespaced_config_map("gcsfront")),
        "pods": api.sanitize_for_serialization(core.list_namespaced_pod("gcsfront")),
        "events": api.sanitize_for_serialization(core.list_namespaced_event("gcsfront")),
        "services": api.sanitize_for_serialization(core.list_namespaced_service("gcsfront")),
        "service accounts": api.sanitize_for_serialization(core.list_namespaced_service_account("gcsfront")),
        "deployments": api.sanitize_for_serialization(apps.list_namespaced_deployment("gcsfront")),
        "replicasets": api.sanitize_for_serialization(apps.list_namespaced_replica_set("gcsfront")),
    }


def assert_no_key_material(objects, probes):
    for what, found in objects.items():
        text = re.sub(r"\s+|\\n", "", json.dumps(found))
        assert not [p for p in probes if p in text], "key material in %s" % what
        assert "PRIVATEKEY" not in text, what


def vaulted_key(tmp_path, key_text):
    """The key as a user keeps it in Ansible Vault: (a vars file setting gcsfront_key_content, its password file)."""
    import yaml

    password = tmp_path / "vault-password"
    password.write_text(uuid.uuid4().hex)
    vars_file = tmp_path / "key.vault.yml"
    vars_file.write_text(yaml.safe_dump({"gcsfront_key_content": key_text}))
    subprocess.run([str(REPO / ".venv/bin/ansible-vault"), "encrypt", "--vault-password-file", str(password),
                    str(vars_file)], check=True, capture_output=True)
    assert key_text.split("PRIVATE KEY")[1][:40] not in vars_file.read_text()
    return vars_file, password


def test_with_key_auth_no_key_material_is_outside_the_secrets_data(deployed, kube, tmp_path):
    """Key auth (the 2016 way): every object the deploy made (annotations, ConfigMaps, pod specs and env, events)
    is free of the key, also after a deploy over a Secret that an older, client-side apply left with the key in
    its annotation. That second deploy takes the key from Ansible Vault (gcsfront_key_content), the inventory's
    key file made unreadable: the Vault route works end to end and prints no key material."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    key_text = SA_KEY_FILE.read_text()
    last_applied = "kubectl.kubernetes.io/last-applied-configuration"
    redeploy("-e", "gcsfront_auth=key")
    # What a client-side apply left behind: the whole manifest, Secret data included, in an annotation.
    secret = core.read_namespaced_secret("gcsfront-gcs-key", "gcsfront")
    old = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gcsfront-gcs-key", "namespace": "gcsfront"},
           "data": secret.data}
    core.patch_namespaced_secret("gcsfront-gcs-key", "gcsfront",
                                 {"metadata": {"annotations": {last_applied: json.dumps(old)}}})
    vars_file, password = vaulted_key(tmp_path, key_text)
    proc = redeploy("-e", "gcsfront_auth=key", "-e", "gcsfront_key_file=/nonexistent/key.json",
                    "-e", "@%s" % vars_file, "--vault-password-file", str(password))
    assert final_line(proc.stdout).group(6) == "matches the bucket"
    assert not [p for p in key_probes(key_text) if p in re.sub(r"\s+|\\n", "", proc.stdout)], "key material in the output"

    secret = core.read_namespaced_secret("gcsfront-gcs-key", "gcsfront")
    assert last_applied not in (secret.metadata.annotations or {})
    assert secret.data["key.json"] and set(secret.data) == {"key.json"}
    probes = key_probes(key_text)
    # The probes find the key where it is: in the Secret's data.
    assert sum(p in re.sub(r"\s+|\\n", "", json.dumps(secret.data)) for p in probes) >= 1
    assert_no_key_material(namespace_objects(kube, skip_secret="gcsfront-gcs-key"), probes)


def test_back_to_workload_identity_no_key_is_left_in_the_cluster(deployed, kube):
    """The default again (after the key test above): the keyless pods serve, then the Secret is deleted."""
    from kubernetes import client

    proc = redeploy()
    assert final_line(proc.stdout).group(6) == "matches the bucket"
    core = client.CoreV1Api(kube)
    assert "gcsfront-gcs-key" not in [s.metadata.name for s in core.list_namespaced_secret("gcsfront").items]

    def pods():
        return core.list_namespaced_pod("gcsfront", label_selector="app.kubernetes.io/instance=gcsfront").items

    # The rollout is over when the last key-auth pod is told to stop: it may still be terminating (preStop,
    # graceful quit). No live pod mounts a Secret, and the terminating ones go.
    for pod in pods():
        assert pod.metadata.deletion_timestamp or not [v for v in pod.spec.volumes if v.secret], pod.metadata.name
    wait_for(lambda: not [p for p in pods() if p.metadata.deletion_timestamp], 90, interval=1,
             what="the key-auth pods to finish terminating")
    # The loops pass on zero pods: first, one pod per replica the Deployment asks for.
    replicas = client.AppsV1Api(kube).read_namespaced_deployment("gcsfront", "gcsfront").spec.replicas
    live = pods()
    assert replicas >= 1 and len(live) == replicas, [p.metadata.name for p in live]
    for pod in live:
        assert pod.spec.service_account_name == "gcsfront"
        assert not [v for v in pod.spec.volumes if v.secret], pod.metadata.name
    assert_no_key_material(namespace_objects(kube), key_probes(SA_KEY_FILE.read_text()))


def _status_from_node(url):
    """HTTP status of url for a client inside the substrate's node namespace (source 10.254.254.2); 000: none."""
    return subprocess.run(["ip", "netns", "exec", "gcsfront-node", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "--max-time", "3", url], capture_output=True, text=True, check=False).stdout


def test_only_the_allowed_source_ranges_reach_the_load_balancer(deployed, kube):
    """frontend_service_source_ranges, enforced for real by kube-proxy: the host (10.254.254.1) is let in, a client
    in the node namespace is dropped; the default lets both in again. Only the Service changes: no rollout."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    address = core.read_namespaced_service("gcsfront", "gcsfront").status.load_balancer.ingress[0].ip
    url = "http://%s/file1.txt" % address
    assert _status_from_node(url) == "200"  # the control: this client is served without ranges
    try:
        redeploy("-e", json.dumps({"frontend_service_source_ranges": ["10.254.254.1/32"]}))
        assert core.read_namespaced_service("gcsfront", "gcsfront").spec.load_balancer_source_ranges == ["10.254.254.1/32"]
        wait_for(lambda: _status_from_node(url) == "000", 30, interval=1, what="kube-proxy to drop other clients")
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        redeploy()
    wait_for(lambda: _status_from_node(url) == "200", 30, interval=1, what="kube-proxy to let every client in again")


def test_every_scheduling_knob_passes_server_side_dry_run(kube, tmp_path):
    """Node selector, tolerations, affinity, spread, priority, pod labels and annotations, pull secrets, split
    resources with limits, the disruption budget, the autoscaler and the Service's access settings, as the API
    server validates them (the autoscaler runs for real in test_autoscaling.py)."""
    import yaml
    from kubernetes import dynamic

    knobs = {
        "frontend_resources": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "frontend_gcsfuse_resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "frontend_node_selector": {"cloud.google.com/gke-nodepool": "web"},
        "frontend_tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
        "frontend_affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
                "matchLabels": {"app.kubernetes.io/name": "gcsfront"}}}}]}},
        "frontend_priority_class_name": "system-cluster-critical",
        "frontend_pod_labels": {"team": "web"}, "frontend_pod_annotations": {"example.com/owner": "web"},
        "frontend_image_pull_secrets": ["regcred"], "frontend_pdb_max_unavailable": 2,
        "frontend_hpa": True, "frontend_hpa_max_replicas": 6,
        "frontend_service_source_ranges": ["203.0.113.0/24"], "frontend_service_internal": True,
    }
    out = tmp_path / "knobs"
    run_playbook("playbooks/render.yml", "-e", "render_dir=%s" % out, "-e", json.dumps(knobs))
    docs = [d for d in yaml.safe_load_all((out / "frontend-workload.yaml").read_text()) if d]
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= {d["kind"] for d in docs}
    dyn = dynamic.DynamicClient(kube)
    for doc in docs:
        doc["metadata"]["namespace"] = "default"
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        applied = resource.server_side_apply(body=doc, name=doc["metadata"]["name"], namespace="default",
                                             field_manager="gcsfront-test", dry_run="All").to_dict()
        if doc["kind"] == "HorizontalPodAutoscaler":
            assert applied["spec"]["maxReplicas"] == 6 and applied["spec"]["minReplicas"] == 3
        if doc["kind"] == "Deployment":
            pod = applied["spec"]["template"]["spec"]
            assert pod["priorityClassName"] == "system-cluster-critical" and pod["imagePullSecrets"] == [{"name": "regcred"}]


def _fails_with(args, needle, changed_expected=0):
    proc = redeploy(*args, check=False)
    assert proc.returncode != 0, proc.stdout[-3000:]
    errors = error_lines(proc.stdout)
    assert any(needle in ln for ln in errors), "%r not in the error lines:\n%s" % (needle, "\n".join(errors))
    assert recap(proc.stdout)["changed"] == changed_expected, proc.stdout[-3000:]
    return proc


@pytest.mark.parametrize("extra,needle", [
    (["-e", "gcsfront_bucket="], "no bucket name"),
    (["-e", "gcsfront_bucket=Not_A..Bucket!"], "invalid bucket name"),
    (["-e", "gcsfront_kube_context=no-such-context"], "kube context 'no-such-context' is missing"),
    (["-e", "frontend_catalog_interval=1"], "frontend_catalog_interval 5-3600 seconds"),
    (["-e", "frontend_mirror_max_size_mb=-1"], "frontend_mirror_max_size_mb not negative"),
    (["-e", "frontend_nginx_miss_rate=fast"], "'frontend_nginx_miss_rate' is of type str and we were unable to convert to int"),
    (["-e", "frontend_catalog=maybe"], "'frontend_catalog' is of type str and we were unable to convert to bool"),
    (["-e", "frontend_website_not_found_page=/404.html"], "frontend_website_not_found_page an object name without a"),
    (["-e", "gcsfront_auth=token"], "value of frontend_auth must be one of: key, workload_identity, got: token"),
    (["-e", "gcsfront_metadata_host="], "workload_identity on the local substrate needs frontend_metadata_host"),
    (["-e", "gcsfront_project_number=", "-e", "gcsfront_project_id="], "workload_identity needs frontend_project_id"),
    # Not granted here, and not granted before: stop, naming the binding, before the workload changes.
    (["-e", "frontend_bucket_iam_manage=false", "-e", "frontend_service_account=gcsfront-unbound"],
     "does not grant roles/storage.objectViewer to principal://iam.googleapis.com/projects/424242424242/locations/"
     "global/workloadIdentityPools/gcsfront-local.svc.id.goog/subject/ns/gcsfront/sa/gcsfront-unbound"),
])
def test_bad_input_fails_before_any_change(deployed, extra, needle):
    _fails_with(extra, needle)


@pytest.mark.parametrize("content,needle", [
    ("this is { not json", "is not JSON"),
    (json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"}),
     "not a service-account key"),
    (json.dumps({"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com", "private_key_id": "k",
                 "token_uri": "http://127.0.0.1:9/token"}), "private_key"),
])
def test_bad_key_fails_before_any_change(deployed, tmp_path, content, needle):
    key = tmp_path / "key.json"
    key.write_text(content)
    _fails_with(["-e", "gcsfront_key_file=%s" % key], needle)


def test_missing_object_fails_the_smoke_fetch(deployed):
    _fails_with(["-e", "gcsfront_smoke_object=no/such/object.txt"], "not found in the bucket")


def test_mismatching_content_fails_the_smoke_fetch(deployed):
    proc = subprocess.run(
        [str(REPO / ".venv/bin/ansible"), "localhost", "-m", "gcsfront.gke.lb_smoke", "-a", json.dumps({
            "context": "gcsfront-local", "name": "gcsfront", "namespace": "gcsfront", "path": "/index.html",
            "object": "file1.txt", "bucket": "gcsfront-local", "gcs_endpoint": "http://10.254.254.17:4443",
            "gcs_credentials_file": str(SA_KEY_FILE), "wait_timeout": 30})],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode != 0
    assert "does not match gs://gcsfront-local/file1.txt" in proc.stdout, proc.stdout[-2000:]


def test_a_frontend_for_an_empty_bucket_gets_ready_and_its_404_checked(deployed, gcs_session, kube):
    """No hidden requirement on the bucket: a frontend for an empty bucket (no index.html, nothing at all) rolls
    out Ready, and the deploy's smoke fetch, with nothing to compare, checks a missing name's 404 and says so."""
    from conftest import ensure_bucket
    from kubernetes import client

    ensure_bucket(gcs_session, "gcsfront-empty")
    args = ["-e", "gcsfront_namespace=gcsfront-empty", "-e", "gcsfront_bucket=gcsfront-empty",
            "-e", "gcsfront_replicas=1", "-e", "gcsfront_teardown_namespace=true"]
    try:
        proc = redeploy(*args)
        text = " ".join(proc.stdout.split())
        assert "gs://gcsfront-empty has no object of at most 1 MiB" in text, text[-3000:]
        assert "(the bucket has no small object to compare: only the 404 of a missing name was checked" in text
        status = client.AppsV1Api(kube).read_namespaced_deployment("gcsfront", "gcsfront-empty").status
        assert status.ready_replicas == 1
    finally:
        run_playbook("playbooks/teardown.yml", *args)


def test_service_without_an_address_times_out(deployed, kube, namespace):
    from kubernetes import client

    # MetalLB ignores a Service of another load-balancer class: it never gets an address.
    client.CoreV1Api(kube).create_namespaced_service(namespace, {
        "metadata": {"name": "orphan"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.invalid/none", "selector": {"a": "b"},
                 "ports": [{"port": 80}]}})
    proc = subprocess.run(
        [str(REPO / ".venv/bin/ansible"), "localhost", "-m", "gcsfront.gke.lb_smoke", "-a", json.dumps({
            "context": "gcsfront-local", "name": "orphan", "namespace": namespace, "path": "/index.html",
            "bucket": "gcsfront-local", "gcs_endpoint": "http://10.254.254.17:4443",
            "gcs_credentials_file": str(SA_KEY_FILE), "wait_timeout": 8, "wait_sleep": 1})],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode != 0
    assert "Timed out after 8s waiting for Service %s/orphan to get a LoadBalancer address" % namespace in proc.stdout


@pytest.mark.parametrize("inventory", ["cluster1", "cluster2", "cluster3", "cluster4"])
def test_gke_inventory_manifests_pass_server_side_dry_run(kube, tmp_path, inventory):
    """Render every manifest of a GKE inventory and apply it with server-side dry-run to the local API server."""
    import yaml
    from kubernetes import dynamic

    out = tmp_path / inventory
    # The project's number comes from the environment (GCSFRONT_PROJECT_NUMBER), as for a user of the inventory.
    run_playbook("playbooks/render.yml", "-i", "inventories/%s" % inventory, "-e", "render_dir=%s" % out,
                 "-e", "gcsfront_project_number=123456789012")
    docs = [d for f in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = sorted({d["kind"] for d in docs})
    # Keyless: a ServiceAccount for the pods, and no Secret.
    assert {"ConfigMap", "ServiceAccount", "Service", "Namespace", "Deployment"} <= set(kinds), kinds
    assert "Secret" not in kinds, kinds
    dyn = dynamic.DynamicClient(kube)
    for doc in docs:
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        if doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = "default"  # the inventory's namespace need not exist here
        resource.server_side_apply(body=doc, name=doc["metadata"]["name"],
                                   namespace=doc["metadata"].get("namespace"), field_manager="gcsfront-test",
                                   dry_run="All")


def test_teardown_removes_the_frontend_and_is_safe_twice(deployed, kube, gcs_session):
    """playbooks/teardown.yml deletes what the deploy made (and its grant on the bucket) and keeps the namespace;
    a second run changes nothing; -e gcsfront_teardown_namespace=true deletes the namespace too."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube)
    address = core.read_namespaced_service("gcsfront", "gcsfront").status.load_balancer.ingress[0].ip
    assert requests.get("http://%s/index.html" % address, timeout=10).status_code == 200
    member = ("principal://iam.googleapis.com/projects/424242424242/locations/global/workloadIdentityPools/"
              "gcsfront-local.svc.id.goog/subject/ns/gcsfront/sa/gcsfront")

    def members():
        policy = gcs_session.get(GCS_ENDPOINT + "/storage/v1/b/gcsfront-local/iam", timeout=10).json()
        return {m for b in policy.get("bindings", []) for m in b["members"]}

    assert member in members()
    first = run_playbook("playbooks/teardown.yml")
    assert recap(first.stdout)["changed"] >= 1
    with pytest.raises(requests.ConnectionError):
        requests.get("http://%s/index.html" % address, timeout=5)
    core.read_namespace("gcsfront")  # kept
    apps = client.AppsV1Api(kube)
    left = {"pods": core.list_namespaced_pod("gcsfront").items, "services": core.list_namespaced_service("gcsfront").items,
            "configmaps": [c for c in core.list_namespaced_config_map("gcsfront").items
                           if c.metadata.name != "kube-root-ca.crt"],
            "secrets": core.list_namespaced_secret("gcsfront").items,
            "serviceaccounts": [a for a in core.list_namespaced_service_account("gcsfront").items
                                if a.metadata.name != "default"],
            "deployments": apps.list_namespaced_deployment("gcsfront").items,
            "replicasets": apps.list_namespaced_replica_set("gcsfront").items,
            "pdbs": client.PolicyV1Api(kube).list_namespaced_pod_disruption_budget("gcsfront").items}
    assert not {k: [o.metadata.name for o in v] for k, v in left.items() if v}
    assert member not in members()
    assert recap(run_playbook("playbooks/teardown.yml").stdout)["changed"] == 0

    run_playbook("playbooks/teardown.yml", "-e", "gcsfront_teardown_namespace=true")
    with pytest.raises(ApiException) as gone:
        core.read_namespace("gcsfront")
    assert gone.value.status == 404


# csi mode and the checks of the cluster before any change: none of these tests deploys (they render, dry-run and
# stop in the preflight), so none needs the `deployed` stack.

def rendered(tmp_path, mode):
    """The local inventory's manifests in mount mode `mode`: {kind: document}."""
    import yaml

    out = tmp_path / mode
    run_playbook("playbooks/render.yml", "-e", "render_dir=%s" % out, "-e", "gcsfront_mount_mode=%s" % mode)
    return {d["kind"]: d for d in yaml.safe_load_all((out / "frontend-workload.yaml").read_text()) if d}


def bare_pod(deployment, name):
    """A Pod of the Deployment's pod template: Pod Security enforces on Pods (on workloads it only warns).

    Without serviceAccountName: the ServiceAccount exists only as a dry-run here, and the ServiceAccount admission
    would refuse the Pod for that; Pod Security does not look at it."""
    template = deployment["spec"]["template"]
    spec = {k: v for k, v in template["spec"].items() if k != "serviceAccountName"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": dict(template["metadata"], name=name), "spec": spec}


@pytest.fixture
def restricted_namespace(kube):
    """A fresh namespace that enforces Pod Security restricted, deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    name = "t-restricted-" + uuid.uuid4().hex[:6]
    core.create_namespace({"metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def test_csi_manifests_pass_pod_security_restricted_and_the_sidecar_pod_does_not(kube, tmp_path, restricted_namespace,
                                                                                 namespace):
    """csi mode's manifests apply (server-side dry-run) in a namespace enforcing Pod Security restricted, and its pod
    is admitted there; the sidecar mode's pod is rejected there, though admitted in a namespace without the label."""
    from kubernetes import client, dynamic
    from kubernetes.client.rest import ApiException

    csi = rendered(tmp_path, "csi")
    (volume,) = [v for v in csi["Deployment"]["spec"]["template"]["spec"]["volumes"] if "csi" in v]
    assert volume["csi"]["driver"] == "gcsfuse.csi.storage.gke.io"
    dyn = dynamic.DynamicClient(kube)
    for doc in csi.values():
        doc["metadata"]["namespace"] = restricted_namespace
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        resource.server_side_apply(body=doc, name=doc["metadata"]["name"], namespace=restricted_namespace,
                                   field_manager="gcsfront-test", dry_run="All")
    core = client.CoreV1Api(kube)
    # The API server keeps an inline volume of a CSI driver it does not have: only the node would need the driver.
    pod = core.create_namespaced_pod(restricted_namespace, bare_pod(csi["Deployment"], "csi-probe"), dry_run="All")
    assert pod.spec.volumes and [v.csi.driver for v in pod.spec.volumes if v.csi] == ["gcsfuse.csi.storage.gke.io"]

    sidecar = bare_pod(rendered(tmp_path, "sidecar")["Deployment"], "sidecar-probe")
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(restricted_namespace, sidecar, dry_run="All")
    message = json.loads(refused.value.body)["message"]
    assert refused.value.status == 403 and 'violates PodSecurity "restricted:' in message, message
    assert "privileged" in message
    # The same pod passes where Pod Security does not enforce: the refusal above is Pod Security's.
    core.create_namespaced_pod(namespace, sidecar, dry_run="All")


@pytest.fixture
def baseline_namespace(kube, namespace):
    """The test's fresh namespace, labelled to enforce Pod Security baseline."""
    from kubernetes import client

    client.CoreV1Api(kube).patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "baseline"}}})
    return namespace


@pytest.mark.parametrize("mode", ["sidecar", "privileged"])
def test_a_privileged_mode_stops_in_a_namespace_enforcing_baseline(baseline_namespace, mode):
    _fails_with(["-e", "gcsfront_namespace=%s" % baseline_namespace, "-e", "gcsfront_mount_mode=%s" % mode],
                "namespace %s enforces Pod Security baseline (pod-security.kubernetes.io/enforce), which refuses the "
                "privileged gcsfuse container of frontend_mount_mode %s: use frontend_mount_mode csi"
                % (baseline_namespace, mode))


@pytest.mark.parametrize("extra,needle", [
    (["-e", "gcsfront_mount_mode=csi"],
     "needs the Cloud Storage FUSE CSI driver (CSIDriver gcsfuse.csi.storage.gke.io), which the cluster of context "
     "gcsfront-local lacks"),
    (["-e", "gcsfront_mount_mode=csi", "-e", "gcsfront_auth=key"],
     "the CSI driver refuses key files: use workload_identity"),
])
def test_csi_mode_stops_where_it_cannot_run(kube, extra, needle):
    _fails_with(extra, needle)


@pytest.mark.parametrize("user,needle", [
    ({"auth-provider": {"name": "gcp", "config": {"cmd-path": "/usr/lib/google-cloud-sdk/bin/gcloud"}}},
     "authenticates with the gcp auth-provider, which Kubernetes clients no longer have: install "
     "gke-gcloud-auth-plugin, then run gcloud container clusters get-credentials again"),
    # Its own name: this machine may have gke-gcloud-auth-plugin (the unit tests pin that message).
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gcsfront-missing-auth-plugin"}},
     "gets its credentials from gcsfront-missing-auth-plugin, which is not on PATH: install it"),
])
def test_a_kubeconfig_user_that_cannot_authenticate_fails_before_any_change(tmp_path, user, needle):
    import yaml

    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gcsfront-local",
        "clusters": [{"name": "gcsfront-local", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "gcsfront-local", "user": user}],
        "contexts": [{"name": "gcsfront-local", "context": {"cluster": "gcsfront-local", "user": "gcsfront-local"}}]}))
    _fails_with(["-e", "gcsfront_kubeconfig=%s" % config], needle)
