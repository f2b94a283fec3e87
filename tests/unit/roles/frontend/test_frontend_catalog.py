"""The bucket catalog end to end on loopback: the real lister (gcsfront-catalog, built from this checkout) reads a
stand-in of the GCS JSON API, and the two nginx of a pod (test_frontend_nginx.Pod) serve with what it wrote.

What is checked is what a client of GCS's website endpoint would see: stored headers, ETag/304, gzip objects both
ways, the main page and the 301 of a directory, the not-found page, unknown names without the mount.
"""

from __future__ import annotations

import base64
import calendar
import gzip
import hashlib
import http.server
import json
import os
import pathlib
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests
# pod needs confs beside it: both are fixtures, found by name in this module.
from test_frontend_nginx import EXPIRED, REPO, after_the_refresh, confs, pod  # noqa: F401  pylint: disable=unused-import

BUCKET = "site"
UPDATED = "2026-11-29T10:00:00.000Z"
UPDATED_HTTP = "Sun, 29 Nov 2026 10:00:00 GMT"
PAGE = b"<!doctype html><p>a page without an extension"
LOGO = gzip.compress(b"compressible text " * 200, mtime=0)


class FakeGCS:
    """objects.list and buckets.get of one bucket, from a dict name -> object resource (with its data)."""

    def __init__(self):
        self.objects = {}
        self.website = {}
        self.list_calls = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                path = urllib.parse.urlsplit(self.path).path
                if path == "/storage/v1/b/%s/o" % BUCKET:
                    fake.list_calls += 1
                    items = [{k: v for k, v in o.items() if k != "data"} for o in fake.objects.values()]
                    body = {"items": items}
                elif path == "/storage/v1/b/%s" % BUCKET:
                    body = {"website": fake.website}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = "http://127.0.0.1:%d/storage/v1" % self.server.server_address[1]

    def put(self, pod, name, data, updated=UPDATED, **metadata):
        pod.put(name, data)
        # gcsfuse gives a file its object's update time.
        mtime = time.mktime(time.strptime(updated[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        os.utime(pod.mnt / name, (mtime, mtime))
        self.objects[name] = dict({
            "name": name, "size": str(len(data)), "generation": "1700000000000001", "updated": updated,
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode()}, **metadata)


@pytest.fixture(scope="module")
def lister(tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog") / "gcsfront-catalog"
    build = subprocess.run(["go", "build", "-o", str(out), "."], cwd=REPO / "roles/image/files/gcsfront-catalog",
                           env=dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0"),
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, "building gcsfront-catalog failed (Go from Debian or the machine): " + build.stderr
    return out


@pytest.fixture
def site(pod, lister):  # noqa: F811 (pod is a fixture)
    """A pod whose bucket has a few objects with metadata, and a function that lists it once (as the lister's
    loop would) and waits until nginx has loaded that listing."""
    gcs = FakeGCS()
    gcs.put(pod, "page", PAGE, contentType="text/html; charset=utf-8", cacheControl="no-cache",
            contentLanguage="fr", contentDisposition='inline; filename="page.html"')
    gcs.put(pod, "file1.txt", b"0123456789")
    gcs.put(pod, "docs/index.html", b"<p>docs</p>", contentType="text/html")
    gcs.put(pod, "logo.txt", LOGO, contentType="text/plain", contentEncoding="gzip")
    gcs.put(pod, "errors/404.html", b"<p>not here</p>", contentType="text/html")
    gcs.put(pod, "odd name?.txt", b"spaces and a question mark", contentType="text/plain")

    def list_once(*flags):
        run = subprocess.run([str(lister), "-once", "-anonymous", "-bucket", BUCKET, "-dir", str(pod.catalog),
                              "-endpoint", gcs.endpoint, "-interval", "30s", "-main-page-suffix", "index.html",
                              "-not-found-page", "errors/404.html", *flags],
                             capture_output=True, text=True, timeout=30, check=False)
        assert run.returncode == 0, run.stderr
        # Worker 0 looks every second and loads a catalog whose hash (in the stamp) it has not loaded yet.
        digest = (pod.catalog / "fresh").read_text().split("\t")[1]
        deadline = time.monotonic() + 5
        while not ((status := pod.catalog_status())["trusted"] and status["sha256"] == digest):
            assert time.monotonic() < deadline, "nginx never loaded the catalog: %s\n%s" % (
                status, (pod.root / "nginx.conf.log").read_text()[-2000:])
            time.sleep(0.1)
        assert status["names"] == len(gcs.objects), status
        return run.stderr

    gcs.list_once = list_once
    yield gcs
    gcs.server.shutdown()


def test_an_object_carries_its_stored_headers(site, pod):  # noqa: F811
    log = site.list_once()
    assert "6 names in 1 list calls" in log, log
    r = pod.get("/page")
    assert r.status_code == 200 and r.content == PAGE
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"  # not nginx's guess from the name
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["Content-Language"] == "fr"
    assert r.headers["Content-Disposition"] == 'inline; filename="page.html"'
    assert r.headers["ETag"] == '"%s"' % hashlib.md5(PAGE).hexdigest()
    assert r.headers["Last-Modified"] == UPDATED_HTTP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    # Nothing stored: the name's type and the default Cache-Control.
    plain = pod.get("/file1.txt")
    assert plain.headers["Content-Type"] == "text/plain" and plain.headers["Cache-Control"] == "public, max-age=3600"
    assert "Content-Language" not in plain.headers and "Content-Encoding" not in plain.headers


def test_conditional_requests_get_304_from_the_objects_validators(site, pod):  # noqa: F811
    site.list_once()
    etag = '"%s"' % hashlib.md5(PAGE).hexdigest()
    for _attempt in range(2):  # from the mount, then from the cache
        assert pod.get("/page", headers={"If-None-Match": etag}).status_code == 304
        assert pod.get("/page", headers={"If-Modified-Since": UPDATED_HTTP}).status_code == 304
        assert pod.get("/page", headers={"If-None-Match": '"other"'}).status_code == 200


def test_a_gzip_object_is_sent_as_stored_or_decompressed(site, pod):  # noqa: F811
    site.list_once()
    taken = pod.get("/logo.txt", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert taken.headers["Content-Encoding"] == "gzip" and taken.headers["Vary"] == "Accept-Encoding"
    assert taken.raw.read(decode_content=False) == LOGO
    refused = pod.get("/logo.txt", headers={"Accept-Encoding": "identity"}, stream=True)
    assert "Content-Encoding" not in refused.headers
    assert refused.raw.read(decode_content=False) == gzip.decompress(LOGO)
    # A range of a decompressed object: the whole object (GCS ignores Range when it transcodes).
    ranged = pod.get("/logo.txt", headers={"Accept-Encoding": "identity", "Range": "bytes=0-9"}, stream=True)
    assert ranged.status_code == 200 and ranged.raw.read(decode_content=False) == gzip.decompress(LOGO)
    # As stored, a range is of the stored bytes.
    part = pod.get("/logo.txt", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"}, stream=True)
    assert part.status_code == 206 and part.raw.read(decode_content=False) == LOGO[:10]


def test_a_directory_serves_its_main_page_and_is_redirected_to_its_slash(site, pod):  # noqa: F811
    site.list_once()
    r = pod.get("/docs/")
    assert r.status_code == 200 and r.content == b"<p>docs</p>" and r.headers["Content-Type"] == "text/html"
    redirect = pod.get("/docs?x=1")
    assert redirect.status_code == 301 and redirect.headers["Location"] == "/docs/?x=1"
    assert redirect.headers["X-Content-Type-Options"] == "nosniff"
    # A directory without a main page is no object.
    assert pod.get("/errors/").status_code == 404


def test_an_unknown_name_gets_the_not_found_page_without_the_mount(site, pod):  # noqa: F811
    site.list_once()
    pod.put("in-the-mount-only.txt", b"not listed")
    for path in ("/in-the-mount-only.txt", "/nothing/here"):
        r = pod.get(path)
        assert r.status_code == 404 and r.content == b"<p>not here</p>", (path, r.status_code, r.content)
        assert r.headers["Content-Type"] == "text/html" and "ETag" not in r.headers
    assert pod.get("/odd%20name%3F.txt").content == b"spaces and a question mark"


def test_metadata_changes_are_served_after_the_next_listing_and_the_entrys_refresh(site, pod):  # noqa: F811
    site.list_once()
    assert pod.get("/file1.txt").headers["Content-Type"] == "text/plain"
    # The cached answer keeps the headers it was filled with until its refresh sees the catalog's change; the
    # bytes did not change, so only the catalog can tell.
    site.objects["file1.txt"]["contentType"] = "application/json"
    site.objects["file1.txt"]["cacheControl"] = "max-age=5"
    site.list_once()
    after_the_refresh(pod, "/file1.txt", lambda r: r.headers["Content-Type"] == "application/json",
                      "the changed metadata was never served")
    r = pod.get("/file1.txt")
    assert (r.headers["Content-Type"], r.headers["Cache-Control"], r.headers["X-Cache-Status"]) == (
        "application/json", "max-age=5", "HIT")
    assert "X-Gcsfront-Object" not in r.headers and "X-Gcsfront-Mount-Validators" not in r.headers


def hot_copies(pod):
    """The hot copies' files (gcsfront-catalog.lua's mirror_file) by their content."""
    mirror = pod.root / "var/cache/gcsfront/mirror"
    return {f.read_bytes(): f for f in mirror.glob("*/*")} if mirror.exists() else {}


def without_transient_headers(headers):
    return {k: v for k, v in headers.items() if k not in ("Date", "X-Cache-Status")}


@pytest.mark.parametrize("path, data", [("/page", PAGE), ("/file1.txt", b"0123456789"), ("/docs/", b"<p>docs</p>"),
                                        ("/odd%20name%3F.txt", b"spaces and a question mark")])
def test_an_object_is_served_from_its_hot_copy_with_the_headers_of_the_cache(site, pod, path, data):  # noqa: F811
    site.list_once()
    first = pod.get(path)
    assert (first.status_code, first.content, first.headers["X-Cache-Status"]) == (200, data, "MISS")
    copy = hot_copies(pod)[data]
    assert copy.stat().st_mtime == first_mtime(first)  # the object's update time, which Last-Modified gives
    # The copy is what the next answer is made of (bytes of the same length put in its place are sent).
    copy.write_bytes(b"x" * len(data))
    os.utime(copy, (first_mtime(first), first_mtime(first)))
    second = pod.get(path)
    assert (second.status_code, second.content, second.headers["X-Cache-Status"]) == (200, b"x" * len(data), "HIT")
    assert without_transient_headers(second.headers) == without_transient_headers(first.headers)
    assert pod.get(path, headers={"Range": "bytes=1-3"}).content == b"xxx"
    head = requests.head(pod.url(path), timeout=5)
    assert without_transient_headers(head.headers) == without_transient_headers(first.headers)
    # A conditional request is answered by the cache, with the catalog's validators.
    assert pod.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304


def first_mtime(answer):
    return calendar.timegm(time.strptime(answer.headers["Last-Modified"], "%a, %d %b %Y %H:%M:%S GMT"))


def test_a_gzip_object_has_no_hot_copy(site, pod):  # noqa: F811
    site.list_once()
    for _attempt in range(2):
        assert pod.get("/logo.txt", headers={"Accept-Encoding": "gzip"}).status_code == 200
    assert pod.get("/file1.txt").status_code == 200
    assert list(hot_copies(pod)) == [b"0123456789"]


def test_a_deleted_hot_copy_is_stored_again_from_the_mount(site, pod):  # noqa: F811
    site.list_once()
    pod.get("/file1.txt")
    copy = hot_copies(pod)[b"0123456789"]
    copy.unlink()
    # Served from the cache meanwhile; the entry's refresh fetches the object again, which stores the copy.
    after_the_refresh(pod, "/file1.txt", lambda r: copy.exists() and r.status_code == 200,
                      "the hot copy was never stored again")
    assert copy.read_bytes() == b"0123456789"


def test_the_website_settings_can_come_from_the_bucket(site, pod):  # noqa: F811
    site.website.update(mainPageSuffix="page", notFoundPage="file1.txt")
    pod.put("docs/page", b"docs page")
    site.put(pod, "docs/page", b"docs page")
    site.list_once("-website-from-bucket")
    assert pod.get("/docs/").content == b"docs page"
    missing = pod.get("/missing")
    assert missing.status_code == 404 and missing.content == b"0123456789"


def test_without_a_fresh_catalog_the_mount_decides(site, pod):  # noqa: F811
    site.list_once()
    pod.put("new.txt", b"written after the listing")
    assert pod.get("/new.txt").status_code == 404
    (pod.catalog / "fresh").unlink()
    deadline = time.monotonic() + 3
    while pod.get("/new.txt").status_code != 200:
        assert time.monotonic() < deadline, "nginx kept trusting a catalog without its fresh stamp"
        time.sleep(0.1)
    assert pod.catalog_status()["trusted"] is False
    # A stale stamp (older than two intervals) is not trusted either.
    site.list_once()
    assert pod.get("/new2.txt").status_code == 404
    pod.put("new2.txt", b"also written after the listing")
    listed, digest, interval = (pod.catalog / "fresh").read_text().split("\t")
    (pod.catalog / "fresh").write_text("%d\t%s\t%s" % (int(listed) - 61, digest, interval))
    deadline = time.monotonic() + 3
    while pod.get("/new2.txt").status_code != 200:
        assert time.monotonic() < deadline, "nginx kept trusting a catalog listed over two intervals ago"
        time.sleep(0.1)


def test_while_the_cache_and_the_catalog_disagree_the_etag_names_the_bytes_sent(site, pod):  # noqa: F811
    site.list_once()
    assert pod.get("/file1.txt").headers["ETag"] == '"%s"' % hashlib.md5(b"0123456789").hexdigest()
    # A new version in the catalog that the cache has not fetched yet (the refresh comes later): the answer keeps
    # the validators of what it sends, so no client or downstream cache files the old bytes under the new ETag.
    site.put(pod, "file1.txt", b"the new version", updated="2026-11-30T10:00:00.000Z")
    (pod.mnt / "file1.txt").write_bytes(b"0123456789")
    os.utime(pod.mnt / "file1.txt", (1764410400, 1764410400))  # the old version's time: 2026-11-29 10:00 UTC
    site.list_once()
    r = pod.get("/file1.txt")
    assert r.content == b"0123456789" and r.headers["ETag"] != '"%s"' % hashlib.md5(b"the new version").hexdigest()
    assert r.headers["Last-Modified"] == UPDATED_HTTP
    # Nor is the old version kept as the new one's hot copy: what the mount sent was set aside, never served.
    # The entry's refresh sees the catalog's change and fetches the object again: the mount's version is set aside.
    mirror = pod.root / "var/cache/gcsfront/mirror"
    time.sleep(EXPIRED)
    pod.get("/file1.txt")
    deadline = time.monotonic() + 3
    while not (mirror / "set-aside").exists():
        assert time.monotonic() < deadline, "the refresh stored nothing aside"
        time.sleep(0.1)
    files = {f.relative_to(mirror): f.read_bytes() for f in mirror.rglob("*") if f.is_file()}
    # The old version's copy, and what was set aside.
    assert len(files) == 2 and files.pop(pathlib.Path("set-aside")) == b"0123456789", files
    # The next refresh asks the mount whether it changed (it did not) and fetches nothing.
    set_aside = (mirror / "set-aside").stat().st_ino
    time.sleep(EXPIRED)
    pod.get("/file1.txt")
    time.sleep(0.5)
    assert (mirror / "set-aside").stat().st_ino == set_aside, "the object was fetched again, and set aside again"
