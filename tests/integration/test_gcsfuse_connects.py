"""The project's gcsfuse invocation dials nothing but loopback (issue: local substrate, network rule).

The image's entrypoint (mount mode) runs under `strace -f -e trace=connect` inside a network namespace that has
only a loopback interface, against fake-gcs-server and the token gateway on that loopback, with the substrate's
service-account key. The mount must work (so every code path that dials ran) and no connect may leave loopback:
the trace exporter's metadata dial (169.254.169.254) shows up here if GCE_METADATA_HOST is lost.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tarfile
import uuid

import pytest
from conftest import DEFAULTS, REPO, SA_KEY_FILE, STATE_DIR, wait_for
from connect_audit import connects, non_loopback

GATEWAY_SRC = REPO / "roles/local_cluster/files/gcs-auth-gateway"
ENTRYPOINT = REPO / "roles/image/files/entrypoint.sh"
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "gcsfront"
FAKE_GCS = CACHE / ("bin/fake-gcs-server-%s/fake-gcs-server" % DEFAULTS["local_cluster_fake_gcs_server_version"])


def _copy_from_image(docker_client, image, path, dest):
    container = docker_client.containers.create(image, entrypoint=["/bin/true"])
    try:
        stream, _stat = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.getmembers()[0]
            dest.write_bytes(tar.extractfile(member).read())
            dest.chmod(0o755)
    finally:
        container.remove(force=True)


@pytest.fixture
def audit_netns():
    """A network namespace with nothing but an up loopback interface."""
    name = "gcsfront-audit-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        links = subprocess.run(["ip", "-n", name, "-o", "link"], check=True, capture_output=True, text=True).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
        yield "/run/netns/" + name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _in_netns(netns, argv, **kwargs):
    # nsenter --net enters only the network namespace: the FUSE mount stays visible to this process.
    return subprocess.Popen(["nsenter", "--net=" + netns, *argv], **kwargs)


def _stop_session(proc):
    """SIGTERM to every process of proc's session (the entrypoint stops gcsfuse and unmounts), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
        wait_for(lambda: subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, check=False).returncode,
                 30, interval=0.2, what="the entrypoint's processes to stop")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _listening(netns, port):
    out = subprocess.run(["nsenter", "--net=" + netns, "ss", "-Hltn", "sport = :%d" % port], capture_output=True,
                         text=True, check=False).stdout
    return bool(out.strip())


def test_gcsfuse_invocation_connects_only_to_loopback(frontend_image, docker_client, audit_netns, tmp_path):
    if not FAKE_GCS.exists():
        pytest.fail("%s is missing: the substrate's bring-up builds it" % FAKE_GCS)
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (the substrate role installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _copy_from_image(docker_client, frontend_image, "/usr/local/bin/gcsfuse", bin_dir / "gcsfuse")
    subprocess.run(["go", "build", "-o", str(bin_dir / "gcs-auth-gateway"), "."], cwd=GATEWAY_SRC, check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"})

    # The bucket and object, preloaded from disk; the gateway knows the substrate's key (its data dir copied).
    data = os.urandom(100_000)
    (tmp_path / "seed/audit").mkdir(parents=True)
    (tmp_path / "seed/audit/object.bin").write_bytes(data)
    shutil.copytree(STATE_DIR / "gcs-emulator/gateway", tmp_path / "gateway")
    key = json.loads(SA_KEY_FILE.read_text())
    key["token_uri"] = "http://127.0.0.1:4443/token"
    (tmp_path / "key.json").write_text(json.dumps(key))
    (tmp_path / "gcsfuse.yaml").write_text(
        "gcs-connection: {custom-endpoint: 'http://127.0.0.1:4443/storage/v1/'}\nenable-hns: false\n"
        "gcs-retries: {max-retry-attempts: 2}\n")
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()

    logs = open(tmp_path / "servers.log", "w")
    servers = [
        _in_netns(audit_netns, [str(FAKE_GCS), "-scheme=http", "-host=127.0.0.1", "-port=4444", "-backend=memory",
                                "-data=" + str(tmp_path / "seed"), "-public-host=127.0.0.1:4443",
                                "-log-level=warn"], stdout=logs, stderr=logs),
        _in_netns(audit_netns, [str(bin_dir / "gcs-auth-gateway"), "-listen=127.0.0.1:4443",
                                "-upstream=http://127.0.0.1:4444", "-data-dir=" + str(tmp_path / "gateway")],
                  stdout=logs, stderr=logs),
    ]
    trace = tmp_path / "strace.log"
    # Only what the image's entrypoint gets from Kubernetes: no GCE_METADATA_HOST, no proxy variables.
    env = {"PATH": "%s:/usr/sbin:/usr/bin:/sbin:/bin" % bin_dir, "HOME": str(tmp_path),
           "GCSFRONT_MODE": "mount", "GCSFRONT_BUCKET": "audit", "GCSFRONT_MOUNT_POINT": str(mount_point),
           "GCSFRONT_GCSFUSE_CONFIG": str(tmp_path / "gcsfuse.yaml"), "GCSFRONT_MOUNT_TIMEOUT": "30",
           "GCSFRONT_STATE_DIR": str(tmp_path / "state"),
           "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "key.json")}
    entry = None
    try:
        wait_for(lambda: _listening(audit_netns, 4443) and _listening(audit_netns, 4444), 30, interval=0.1,
                 what="the emulator and the gateway to listen")
        # GCSFRONT_AUDIT_TRACE=trace=network,sendto widens the audit by hand (DNS lookups, for instance).
        strace = ["strace", "-f", "-qq", "-e", os.environ.get("GCSFRONT_AUDIT_TRACE", "trace=connect"),
                  "-s", os.environ.get("GCSFRONT_AUDIT_STRLEN", "128"), "-o", str(trace)]
        # A session of its own: the cleanup signals strace, the entrypoint and its supervisors together (strace
        # alone would detach and leave the entrypoint remounting in a namespace that is gone).
        entry = _in_netns(audit_netns, [*strace, "bash", str(ENTRYPOINT)], env=env, stdout=logs, stderr=logs,
                          start_new_session=True)
        wait_for(lambda: os.path.ismount(mount_point) or entry.poll() is not None, 60, interval=0.2,
                 what="gcsfuse to mount the bucket")
        assert os.path.ismount(mount_point), (tmp_path / "servers.log").read_text()[-3000:]
        assert (mount_point / "object.bin").read_bytes() == data
        # The invocation itself: the flag and the variable that keep gcsfuse off the metadata server.
        pids = subprocess.run(["pgrep", "-x", "gcsfuse"], capture_output=True, text=True, check=False).stdout.split()
        ours = [p for p in pids if str(mount_point).encode() in pathlib.Path("/proc/%s/cmdline" % p).read_bytes()]
        assert len(ours) == 1, pids
        assert b"--disable-autoconfig" in pathlib.Path("/proc/%s/cmdline" % ours[0]).read_bytes().split(b"\0")
        assert b"GCE_METADATA_HOST=127.0.0.1:9" in pathlib.Path("/proc/%s/environ" % ours[0]).read_bytes().split(b"\0")
    finally:
        if entry is not None:
            _stop_session(entry)
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        logs.close()

    output = trace.read_text()
    ip_connects = [(addr, port) for _family, addr, port in connects(output) if addr is not None]
    assert ("127.0.0.1", 4443) in ip_connects, "the trace saw no connect to the gateway:\n" + output[-3000:]
    assert non_loopback(output) == [], "gcsfuse dialed outside loopback:\n" + output
