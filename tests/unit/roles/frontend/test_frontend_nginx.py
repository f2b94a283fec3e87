"""The frontend role's two nginx configurations, rendered by playbooks/render.yml and run for real on loopback.

The front (nginx.conf) serves from its cache and reaches the mount-serving nginx (nginx-mount.conf) over a unix
socket; a local directory stands in for the gcsfuse mount. Each test changes what is behind the front (files,
the mount-serving nginx stopped, a socket that accepts and never answers) and checks what a client sees.
Needs root (nginx's workers switch to www-data, as in the image) and Debian's nginx (scripts/setup).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests
from conftest import render_frontend

REPO = pathlib.Path(__file__).resolve().parents[4]
# The absolute paths the configurations use in the pod (roles/frontend/vars/main.yml), moved under a test root.
POD_PATHS = ["/tmp/gcsfront", "/var/cache/gcsfront-catalog", "/var/cache/gcsfront", "/mnt/gcs", "/usr/share/gcsfront"]
# The image's njs handler and Lua module, from this checkout, where the Dockerfile puts them.
IMAGE_FILES = {"gcsfront-mount.js": "usr/share/gcsfront/mount.js",
               "gcsfront-refresh.lua": "usr/share/gcsfront/lua/gcsfront/refresh.lua",
               "gcsfront-catalog.lua": "usr/share/gcsfront/lua/gcsfront/catalog.lua"}
CACHE_VALID = 1  # seconds: short, so the tests see entries expire
# nginx keeps an entry's validity in whole seconds from its cached clock: an entry is surely expired after this.
EXPIRED = CACHE_VALID + 1.5


def render(tmp, extra_vars):
    return render_frontend(tmp, extra_vars)["ConfigMap"]["data"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pod:
    """The two nginx of one pod, their paths under root, the front on a loopback port."""

    def __init__(self, root, confs):
        self.root = root
        self.port = free_port()
        self.mnt = root / "mnt/gcs"
        self.catalog = root / "var/cache/gcsfront-catalog"
        self.state = root / "tmp/gcsfront"
        for d in (self.mnt, self.catalog, self.state, root / "var/cache/gcsfront"):
            d.mkdir(parents=True, exist_ok=True)
        # The hot copies' directory, which the entrypoint makes for nginx's workers.
        (root / "var/cache/gcsfront/mirror").mkdir()
        shutil.chown(root / "var/cache/gcsfront/mirror", "www-data", "www-data")
        for source, target in IMAGE_FILES.items():
            (root / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "roles/image/files" / source, root / target)
        self.confs = {}
        pod_path = re.compile(r"(?<![\w/.-])(%s)" % "|".join(re.escape(p) for p in POD_PATHS))
        for name, text in confs.items():
            text = pod_path.sub(lambda m: str(root) + m.group(1), text)
            text = text.replace("listen 8080 ", "listen 127.0.0.1:%d " % self.port)
            text = text.replace("access_log /dev/stdout", "access_log %s/access.log" % root)
            self.confs[name] = root / name
            self.confs[name].write_text(text)
        self.procs = {}

    def start(self, name):
        self.procs[name] = subprocess.Popen(["nginx", "-c", str(self.confs[name]), "-g", "daemon off;"],
                                            stderr=open(self.root / ("%s.log" % name), "w"))

    def stop(self, name):
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=20)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, **kwargs):
        return requests.get(self.url(path), timeout=15, allow_redirects=False, **kwargs)

    def put(self, name, data):
        target = self.mnt / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def catalog_status(self):
        return self.get("/healthz/catalog").json()


@pytest.fixture(scope="module")
def confs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("these tests run nginx as in the image (root master, www-data workers): run them as root")
    if shutil.which("nginx") is None or not all(
            pathlib.Path("/usr/lib/nginx/modules", module).exists()
            for module in ("ngx_http_js_module.so", "ngx_http_lua_module.so")):
        pytest.fail("nginx or its njs or Lua module is missing: scripts/setup installs nginx-light, "
                    "libnginx-mod-http-js and libnginx-mod-http-lua")
    valid = "%ds" % CACHE_VALID
    return render(tmp_path_factory.mktemp("frontend"),
                  {"frontend_cache_valid": valid, "frontend_cache_not_found_valid": valid})


@pytest.fixture
def pod(confs):
    # Not under pytest's tmp_path: its parents are private to root and nginx's workers run as www-data.
    root = pathlib.Path(tempfile.mkdtemp(prefix="gcsfront-nginx-"))
    root.chmod(0o755)
    p = Pod(root, confs)
    p.put("file1.txt", b"0123456789")
    p.put("docs/index.html", b"<p>docs</p>")
    (p.state / "mount-alive").touch()
    p.start("nginx-mount.conf")
    p.start("nginx.conf")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if p.get("/healthz").status_code == 200 and (p.state / "mount.sock").exists():
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    yield p
    for name in list(p.procs):
        p.stop(name)
    front_log = (root / "nginx.conf.log").read_text()
    shutil.rmtree(root, ignore_errors=True)
    assert "runtime error" not in front_log and "thread aborted" not in front_log, front_log


@pytest.mark.parametrize("name", ["nginx.conf", "nginx-mount.conf"])
def test_the_configuration_passes_nginx_and_gixy(confs, tmp_path, name):
    root = pathlib.Path(tempfile.mkdtemp(prefix="gcsfront-nginx-"))
    try:
        p = Pod(root, confs)
        check = subprocess.run(["nginx", "-t", "-c", str(p.confs[name])], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
    (tmp_path / name).write_text(confs[name])
    gixy = subprocess.run([str(REPO / ".venv/bin/gixy"), "--format", "json", str(tmp_path / name)],
                          capture_output=True, text=True, check=False)
    assert json.loads(gixy.stdout or "[]") == [], gixy.stdout + gixy.stderr


def test_an_object_is_fetched_once_then_served_from_the_cache(pod):
    first = pod.get("/file1.txt")
    second = pod.get("/file1.txt")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content == b"0123456789"
    assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == ("MISS", "HIT")
    assert second.headers["X-Content-Type-Options"] == "nosniff"
    assert second.headers["Content-Type"] == "text/plain"
    # A query string does not make a new cache entry (nor a new request to the mount).
    assert pod.get("/file1.txt?x=1").headers["X-Cache-Status"] == "HIT"
    # Conditional requests are answered from the cache.
    assert pod.get("/file1.txt", headers={"If-None-Match": second.headers["ETag"]}).status_code == 304


def test_what_the_cache_holds_is_served_while_the_mount_is_gone(pod):
    assert pod.get("/file1.txt").status_code == 200
    pod.put("never-seen.txt", b"new")
    pod.stop("nginx-mount.conf")
    time.sleep(EXPIRED)
    stale = [pod.get("/file1.txt") for _attempt in range(3)]
    assert [r.status_code for r in stale] == [200, 200, 200]
    assert all(r.content == b"0123456789" for r in stale)
    # Past its refresh period, the entry is served as the cache holds it; the failed refresh changes nothing.
    assert {r.headers["X-Cache-Status"] for r in stale} == {"HIT"}
    t0 = time.monotonic()
    missing = pod.get("/never-seen.txt")
    assert missing.status_code == 502 and time.monotonic() - t0 < 2


def test_a_hung_mount_gives_stale_or_a_504_in_bounded_time_never_a_hung_client(pod):
    # One connection, as a browser or a load balancer reuses it: no request on it waits for the refresh that
    # an earlier answer started (nginx's own background update would hold the connection until it ends).
    session = requests.Session()
    assert session.get(pod.url("/file1.txt"), timeout=15).status_code == 200
    pod.put("never-seen.txt", b"new")
    pod.stop("nginx-mount.conf")
    # A mount-serving nginx stuck in FUSE: connections are accepted and never answered.
    sock_path = pod.state / "mount.sock"
    sock_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    sock_path.chmod(0o666)
    server.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _conn in range(64)], daemon=True).start()
    try:
        time.sleep(EXPIRED)
        t0 = time.monotonic()
        warm = [session.get(pod.url("/file1.txt"), timeout=15) for _attempt in range(5)]
        assert time.monotonic() - t0 < 1, "answers from the cache must not wait on the mount"
        assert all(r.status_code == 200 and r.content == b"0123456789" for r in warm)
        t0 = time.monotonic()
        cold = pod.get("/never-seen.txt")
        elapsed = time.monotonic() - t0
        assert cold.status_code == 504 and elapsed < 5, (cold.status_code, elapsed)
        assert len(held) >= 2, "the refresh and the miss never reached the hung socket"
    finally:
        server.close()


def test_the_access_log_is_written_in_whole_lines_within_its_flush_interval(pod):
    """Batched (buffer=4k flush=1s), as the pod writes it to stdout: every request's line, whole, within about a
    second of the request, and a batch bigger than the buffer is written as the buffer fills."""
    log = pod.root / "access.log"
    before = log.read_text().count("\n") if log.exists() else 0
    tag = "gcsfront-log-%d" % time.monotonic_ns()
    for n in range(200):  # about 100 bytes a line: more than one 4 KiB buffer
        assert pod.get("/file1.txt", headers={"User-Agent": "%s-%d" % (tag, n)}).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [x for x in log.read_text().splitlines()[before:] if tag in x]
        if len(lines) == 200:
            break
        time.sleep(0.1)
    assert len(lines) == 200, "%d of 200 lines after 5 s" % len(lines)
    assert all(re.search(r'"GET /file1.txt HTTP/1.1" 200 10 "-" "%s-\d+"$' % tag, x) for x in lines), lines[:3]


def test_a_directory_redirect_keeps_the_clients_host_and_port(pod):
    r = pod.get("/docs")
    assert r.status_code == 301 and r.headers["Location"] == "/docs/"
    assert pod.get("/docs/").content == b"<p>docs</p>"


def test_only_get_and_head_and_no_dotfiles(pod):
    assert requests.post(pod.url("/file1.txt"), data=b"x", timeout=5).status_code == 405
    assert requests.head(pod.url("/file1.txt"), timeout=5).status_code == 200
    pod.put(".git/config", b"secret")
    assert pod.get("/.git/config").status_code == 404


def test_readiness_follows_the_mount_flag_and_liveness_only_nginx(pod):
    assert pod.get("/healthz/ready").status_code == 200
    (pod.state / "mount-alive").unlink()
    assert pod.get("/healthz/ready").status_code == 503
    assert pod.get("/healthz").status_code == 200


def test_without_a_cache_every_request_goes_to_the_mount(tmp_path):
    """frontend_cache_max_size_mb 0 (the benchmark's 2016 configuration): a pass-through front."""
    confs = render(tmp_path, {"frontend_cache_max_size_mb": 0, "frontend_nginx_mount_worker_processes": 1})
    assert "proxy_cache" not in confs["nginx.conf"] and "proxy_pass http://gcsfront_mount;" in confs["nginx.conf"]
    assert "worker_processes 1;" in confs["nginx-mount.conf"]
    root = pathlib.Path(tempfile.mkdtemp(prefix="gcsfront-nginx-"))
    try:
        check = subprocess.run(["nginx", "-t", "-c", str(Pod(root, confs).confs["nginx.conf"])],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_symlink_object_is_refused_without_reading_its_target(pod):
    """gcsfuse turns symlink objects into symlinks that may point anywhere, a device included."""
    (pod.mnt / "zero").symlink_to("/dev/zero")
    (pod.mnt / "passwd").symlink_to("/etc/passwd")
    t0 = time.monotonic()
    assert pod.get("/zero").status_code == 403
    assert pod.get("/passwd").status_code == 403
    assert time.monotonic() - t0 < 5


def test_no_404_for_an_object_while_the_mount_is_away(pod):
    """gcsfuse killed and remounting: the entrypoint leaves the directory under the mount unreadable, so an
    existing object the cache lacks gets 503 with Retry-After, never a 404 (which the front would cache)."""
    assert pod.get("/file1.txt").status_code == 200
    pod.put("not-cached.txt", b"exists")
    pod.mnt.chmod(0o000)
    try:
        r = pod.get("/not-cached.txt")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", (r.status_code, r.headers)
        assert pod.get("/file1.txt").status_code == 200  # what the cache holds
    finally:
        pod.mnt.chmod(0o755)
    assert pod.get("/not-cached.txt").content == b"exists"


def cache_file_inode(pod, key):
    """The inode of the front's cache file for a key (nginx names it by the key's MD5)."""
    name = hashlib.md5(key.encode()).hexdigest()
    return os.stat(pod.root / "var/cache/gcsfront/objects" / name[-1] / name[-3:-1] / name).st_ino


def after_the_refresh(pod, path, seen, failure):
    """Let the entry's period pass, start its refresh with one request, then wait (5 s at most) until seen(answer).
    Returns the answer that started the refresh."""
    time.sleep(EXPIRED)
    first = pod.get(path)
    deadline = time.monotonic() + 5
    while not seen(pod.get(path)):
        assert time.monotonic() < deadline, failure
        time.sleep(0.1)
    return first


def test_an_entry_is_refreshed_once_its_period_is_over_and_fetched_again_only_when_changed(pod):
    assert pod.get("/file1.txt").headers["X-Cache-Status"] == "MISS"
    inode = cache_file_inode(pod, "/file1.txt")
    time.sleep(EXPIRED)
    assert pod.get("/file1.txt").headers["X-Cache-Status"] == "HIT"  # starts the check: unchanged
    time.sleep(0.5)
    assert cache_file_inode(pod, "/file1.txt") == inode, "an unchanged object was fetched again"

    pod.put("file1.txt", b"a new version")
    old = after_the_refresh(pod, "/file1.txt", lambda r: r.content == b"a new version",
                            "the changed object was never fetched again")
    # The request that started the check was served as the cache held it.
    assert (old.status_code, old.content) == (200, b"0123456789")
    assert cache_file_inode(pod, "/file1.txt") != inode

    (pod.mnt / "file1.txt").unlink()
    after_the_refresh(pod, "/file1.txt", lambda r: r.status_code == 404, "a deleted object kept being served")


def test_a_404_entry_gives_way_to_a_new_object(pod):
    assert pod.get("/later.txt").status_code == 404
    pod.put("later.txt", b"here now")
    after_the_refresh(pod, "/later.txt", lambda r: r.status_code == 200,
                      "the new object stayed hidden behind its cached 404")
