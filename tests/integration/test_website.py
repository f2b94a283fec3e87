"""The deployed frontend (deploy.yml's default: 3 replicas, the catalog listed every 30 s; scripts/test runs this after
Molecule's default scenario, which leaves it deployed) serves the bucket the
way GCS's website endpoint would: stored headers, gzip objects both ways, main pages and the 301 of a
directory, and one ETag (with its 304) on every replica. Objects are written into the emulator with metadata, as
a user would with `gcloud storage cp --content-type ... --cache-control ...`.

Each replica is asked directly, at its pod address inside the substrate's node namespace.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import time

import pytest
import yaml
from conftest import GCS_ENDPOINT, NETNS, REPO, lb_address, pod_exec, run_playbook, wait_for

sys.path.insert(0, str(REPO / "tests"))
import curl_check  # noqa: E402  (tests/curl_check.py)

FRONTEND = yaml.safe_load((REPO / "roles/frontend/defaults/main.yml").read_text())
# Where the gcsfuse container's entrypoint notes its catalog lister's pid (its state directory, the role's vars).
LISTER_PIDFILE = yaml.safe_load((REPO / "roles/frontend/vars/main.yml").read_text())["_frontend_state_dir"] \
    + "/catalog-lister.pid"
# A change is served once a listing has seen it: the interval, the listing, and nginx's one-second poll.
WINDOW = FRONTEND["frontend_catalog_interval"] + 15
BUCKET = "gcsfront-local"
PREFIX = "website-%d/" % time.time_ns()
PAGE = b"<!doctype html><title>t</title><p>no extension"
TEXT = b"compressible text " * 500


def put(gcs_session, name, data, content_type, **metadata):
    """A multipart upload: the object and its metadata in one request."""
    boundary = "gcsfront-test-boundary"
    body = b"".join([
        b"--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" % boundary.encode(),
        json.dumps(dict(metadata, name=name, contentType=content_type)).encode(),
        b"\r\n--%s\r\nContent-Type: %s\r\n\r\n" % (boundary.encode(), content_type.encode()),
        data, b"\r\n--%s--\r\n" % boundary.encode()])
    r = gcs_session.post(GCS_ENDPOINT + "/upload/storage/v1/b/%s/o" % BUCKET, params={"uploadType": "multipart"},
                         data=body, headers={"Content-Type": "multipart/related; boundary=" + boundary}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def curl(ip, path, *headers):
    """GET path from one replica (its pod address, inside the node namespace): (status, headers, raw body)."""
    rc, status, fields, body, err = curl_check.curl(*[arg for h in headers for arg in ("-H", h)],
                                                    "http://%s:8080%s" % (ip, path), netns=NETNS)
    assert rc == 0, err
    return status, fields, body


@pytest.fixture(scope="module")
def replicas(kube, gcs_session):
    """The replicas' pod addresses, once every replica's catalog has the objects written here."""
    from kubernetes import client

    put(gcs_session, PREFIX + "page", PAGE, "text/html; charset=utf-8", cacheControl="no-cache",
        contentLanguage="fr", contentDisposition='inline; filename="page.html"')
    put(gcs_session, PREFIX + "text.txt", gzip.compress(TEXT), "text/plain", contentEncoding="gzip")
    put(gcs_session, PREFIX + "docs/index.html", b"<p>docs</p>", "text/html")
    pods = client.CoreV1Api(kube).list_namespaced_pod("gcsfront", label_selector="app.kubernetes.io/instance=gcsfront")
    ips = [p.status.pod_ip for p in pods.items if p.status.pod_ip]
    assert len(ips) == 3, ips
    wait_for(lambda: all(curl(ip, "/" + PREFIX + "page")[1].get("content-type") == "text/html; charset=utf-8"
                         for ip in ips), WINDOW, what="every replica's catalog to list the new objects")
    yield ips
    for name in ("page", "text.txt", "docs/index.html"):
        gcs_session.delete(GCS_ENDPOINT + "/storage/v1/b/%s/o/%s" % (BUCKET, (PREFIX + name).replace("/", "%2F")))


def test_every_replica_sends_the_stored_headers_and_the_same_validators(replicas):
    answers = [curl(ip, "/" + PREFIX + "page") for ip in replicas]
    for status, headers, body in answers:
        assert status == 200 and body == PAGE
        assert headers["cache-control"] == "no-cache" and headers["content-language"] == "fr"
        assert headers["content-disposition"] == 'inline; filename="page.html"'
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["etag"] == '"%s"' % hashlib.md5(PAGE).hexdigest(), headers
    assert len({(h["etag"], h["last-modified"]) for _s, h, _b in answers}) == 1
    etag, last_modified = answers[0][1]["etag"], answers[0][1]["last-modified"]
    for ip in replicas:
        assert curl(ip, "/" + PREFIX + "page", "If-None-Match: " + etag)[0] == 304
        assert curl(ip, "/" + PREFIX + "page", "If-Modified-Since: " + last_modified)[0] == 304
        # Nothing stored: the default Cache-Control.
        assert curl(ip, "/" + PREFIX + "docs/index.html")[1]["cache-control"] == FRONTEND["frontend_website_cache_control"]


def test_a_gzip_object_is_sent_as_stored_or_decompressed(replicas):
    ip = replicas[0]
    status, headers, body = curl(ip, "/" + PREFIX + "text.txt", "Accept-Encoding: gzip")
    assert status == 200 and headers["content-encoding"] == "gzip" and gzip.decompress(body) == TEXT
    status, headers, body = curl(ip, "/" + PREFIX + "text.txt", "Accept-Encoding: identity")
    assert status == 200 and "content-encoding" not in headers and body == TEXT


def test_a_directory_serves_its_main_page_and_redirects_without_its_slash(replicas):
    ip = replicas[1]
    status, headers, body = curl(ip, "/" + PREFIX + "docs/")
    assert (status, body, headers["content-type"]) == (200, b"<p>docs</p>", "text/html")
    status, headers, _body = curl(ip, "/" + PREFIX + "docs")
    assert status == 301 and headers["location"] == "/" + PREFIX + "docs/"
    assert curl(ip, "/" + PREFIX + "nothing-here")[0] == 404


def pod_at(kube, ip):
    from kubernetes import client

    (pod,) = [p for p in client.CoreV1Api(kube).list_namespaced_pod(
        "gcsfront", label_selector="app.kubernetes.io/instance=gcsfront").items if p.status.pod_ip == ip]
    return pod


def restarts(kube, ip):
    return {c.name: c.restart_count for c in pod_at(kube, ip).status.container_statuses}


def kill_loop(kube, pod, container, child):
    """SIGKILL to the entrypoint's helper loop whose child's command line starts with `child`; its pid.
    (The image has no ps: /proc. Orphans of earlier kills belong to the entrypoint, pid 1, and are passed over.)"""
    script = ("for p in /proc/[0-9]*; do "
              "case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in '%s'*) ;; *) continue ;; esac; "
              "read -r _ _ _ ppid _ < $p/stat; [ \"$ppid\" != 1 ] || continue; kill -9 $ppid && echo $ppid; break; done"
              % child)
    pid = pod_exec(kube, "gcsfront", pod, ["sh", "-c", script], container=container).strip()
    assert pid.isdigit(), "no helper loop runs %r in %s: %r" % (child, container, pid)
    return pid


def test_a_replica_serves_its_hot_copy_and_keeps_only_the_copies_the_catalog_names(kube, replicas):
    ip = replicas[2]
    pod = pod_at(kube, ip).metadata.name
    before = restarts(kube, ip)
    mirror = "/var/cache/gcsfront/mirror"
    first = curl(ip, "/" + PREFIX + "docs/index.html")
    second = curl(ip, "/" + PREFIX + "docs/index.html")
    assert (second[0], second[2], second[1]["x-cache-status"]) == (200, b"<p>docs</p>", "HIT")
    assert {k: v for k, v in second[1].items() if k not in ("date", "x-cache-status")} == {
        k: v for k, v in first[1].items() if k not in ("date", "x-cache-status")}
    # The copy on the pod's disk; a file the catalog does not name, which the entrypoint's keeper deletes: the
    # keeper started again after its loop was killed (the container is not restarted for it).
    copies = pod_exec(kube, "gcsfront", pod, ["sh", "-c", "grep -rlx '<p>docs</p>' %s" % mirror], container="nginx")
    assert copies.strip().startswith(mirror + "/"), copies
    kill_loop(kube, pod, "nginx", "sleep 30 ")
    pod_exec(kube, "gcsfront", pod, ["sh", "-c", "mkdir -p %s/00 && echo stray > %s/00/stray" % (mirror, mirror)],
             container="nginx")
    wait_for(lambda: pod_exec(kube, "gcsfront", pod, ["ls", mirror + "/00"], container="nginx").strip() == "", 45,
             what="the keeper, started again, to delete the file the catalog does not name")
    assert pod_exec(kube, "gcsfront", pod, ["cat", copies.split()[0]], container="nginx") == "<p>docs</p>"
    assert restarts(kube, ip) == before


def test_the_helper_loops_are_started_again_when_killed(kube, replicas):
    from kubernetes import client

    ip = replicas[1]
    pod = pod_at(kube, ip).metadata.name
    before = restarts(kube, ip)
    kill_loop(kube, pod, "nginx", "sleep 2 ")  # the mount watcher (readiness)
    lister_before = pod_exec(kube, "gcsfront", pod, ["cat", LISTER_PIDFILE], container="gcsfuse")
    kill_loop(kube, pod, "gcsfuse", "gcsfront-catalog -bucket ")  # the catalog's supervisor
    core = client.CoreV1Api(kube)

    def log(container):
        return core.read_namespaced_pod_log(pod, "gcsfront", container=container, since_seconds=120)

    wait_for(lambda: "the mount watcher stopped; starting it again" in log("nginx")
             and "the catalog's supervisor stopped; starting it again" in log("gcsfuse"), 20,
             what="the entrypoints to start the killed loops again")
    # One lister again: the one the killed supervisor left is stopped, a new one lists.
    wait_for(lambda: pod_exec(kube, "gcsfront", pod, ["cat", LISTER_PIDFILE], container="gcsfuse")
             not in ("", lister_before), 20, what="a new lister")
    listers = pod_exec(kube, "gcsfront", pod, ["sh", "-c", "grep -l '^gcsfront-catalo$' /proc/[0-9]*/comm | wc -l"],
                       container="gcsfuse")
    assert listers.strip() == "1", listers
    # The new watcher keeps readiness: the pod stays ready, its catalog trusted, and no container restarted.
    wait_for(lambda: all(c.ready for c in pod_at(kube, ip).status.container_statuses)
             and json.loads(curl(ip, "/healthz/catalog")[2])["trusted"], 30, what="the pod to stay ready")
    assert restarts(kube, ip) == before


def test_a_metadata_change_is_served_within_the_window(replicas, gcs_session):
    name = PREFIX + "page"
    r = gcs_session.patch(GCS_ENDPOINT + "/storage/v1/b/%s/o/%s" % (BUCKET, name.replace("/", "%2F")),
                          json={"contentType": "text/plain", "cacheControl": "max-age=7"}, timeout=10)
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    wait_for(lambda: all(curl(ip, "/" + name)[1].get("cache-control") == "max-age=7" for ip in replicas), WINDOW,
             what="every replica to serve the new metadata")
    print("metadata change served by every replica after %.1fs" % (time.monotonic() - t0))
    assert all(curl(ip, "/" + name)[1]["content-type"] == "text/plain" for ip in replicas)


@pytest.fixture(scope="module")
def site_with_not_found_page(kube, gcs_session):
    """A second frontend, in a namespace of its own (1 replica), with a not-found page; removed afterwards."""
    page = PREFIX + "errors/404.html"
    put(gcs_session, page, b"<p>no such page</p>", "text/html; charset=utf-8", cacheControl="max-age=60")
    namespace = "gcsfront-website"
    args = ["-e", "gcsfront_namespace=%s" % namespace, "-e", "gcsfront_replicas=1",
            "-e", "frontend_website_not_found_page=%s" % page, "-e", "gcsfront_teardown_namespace=true"]
    try:
        run_playbook("deploy.yml", "--skip-tags", "local_cluster", *args, timeout=900)
        yield "http://%s" % lb_address(kube, namespace, "gcsfront")
    finally:
        run_playbook("playbooks/teardown.yml", *args, timeout=600)
        gcs_session.delete(GCS_ENDPOINT + "/storage/v1/b/%s/o/%s" % (BUCKET, page.replace("/", "%2F")))


def test_a_name_the_bucket_lacks_gets_the_not_found_page_with_404(site_with_not_found_page):
    import requests

    session = requests.Session()
    session.trust_env = False

    def not_found_page():
        r = session.get(site_with_not_found_page + "/" + PREFIX + "no/such/name", timeout=10)
        if r.content != b"<p>no such page</p>":
            raise AssertionError("%s %r" % (r.status_code, r.content[:200]))
        return [r]  # a list: a 404 Response is itself falsy

    (r,) = wait_for(not_found_page, WINDOW, what="the not-found page to be served")
    assert r.status_code == 404 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == "max-age=60" and "ETag" not in r.headers
    # An object that exists is served as usual.
    assert session.get(site_with_not_found_page + "/index.html", timeout=10).status_code == 200
