"""gcsfront-name-index (the image's name index for nginx) run on a bind mount standing in for the gcsfuse mount.

The script trusts only a listing of a live mount of the expected filesystem type (FUSE in the image); here the
stand-in is a bind mount of a local directory and GCSFRONT_MOUNT_FS_TYPE names its filesystem type. Bind
mounts need root, as the integration tests do.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles/image/files/gcsfront-name-index"


def tree(root):
    """{relative path: 'd' or 'f'} of everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames:
            out[os.path.normpath(os.path.join(rel, name))] = "d"
        for name in filenames:
            out[os.path.normpath(os.path.join(rel, name))] = "f"
    return out


def make(root, spec):
    for path, kind in spec.items():
        full = root / path
        if kind == "d":
            full.mkdir(parents=True, exist_ok=True)
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(b"x" * 10)


def wait_until(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("not within %ss: %s" % (seconds, what))


def fs_type(path):
    return subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.fail("these tests bind-mount a directory as the bucket's mount: run them as root")
    mnt = tmp_path / "mnt"
    make(mnt, {"index.html": "f", "a/b/deep.txt": "f", "-dash": "f", "with space.png": "f", "empty": "d",
               "will-be-dir": "f", "gone.txt": "f"})
    subprocess.run(["mount", "--bind", str(mnt), str(mnt)], check=True)
    monkeypatch.setenv("GCSFRONT_MOUNT_FS_TYPE", fs_type(mnt))
    yield mnt, tmp_path / "index"
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def run_once(mnt, index, max_names=100, env=None):
    return subprocess.run([str(SCRIPT), str(mnt), str(index), "5", str(max_names), "--once"],
                          capture_output=True, text=True, timeout=60, check=False, env=env)


def test_one_listing_mirrors_every_name_with_its_type_and_marks_the_index_ready(bucket):
    mnt, index = bucket
    proc = run_once(mnt, index)
    assert proc.returncode == 0, proc.stderr
    assert tree(index / "names") == tree(mnt)
    assert all((index / "names" / p).stat().st_size == 0 for p, k in tree(mnt).items() if k == "f")
    assert (index / "ready").is_file()
    assert "%d names indexed" % len(tree(mnt)) in proc.stderr  # files and directories: 9


def test_later_listings_add_remove_and_retype_names_then_stop_trusting_on_exit(bucket):
    mnt, index = bucket
    proc = subprocess.Popen([str(SCRIPT), str(mnt), str(index), "1", "100"], stderr=subprocess.PIPE, text=True)
    try:
        wait_until((index / "ready").exists, 20, "the first listing")
        assert tree(index / "names") == tree(mnt)
        (mnt / "gone.txt").unlink()
        (mnt / "will-be-dir").unlink()
        make(mnt, {"will-be-dir/inner.txt": "f", "new/object.bin": "f", "a/b/c.txt": "f"})
        wait_until(lambda: tree(index / "names") == tree(mnt), 20, "the tree to follow the bucket")
        assert (index / "names/will-be-dir").is_dir() and not (index / "names/gone.txt").exists()
        assert (index / "ready").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    # Stopped, it can no longer follow the bucket: nginx must go back to the mount.
    assert not (index / "ready").exists(), err
    assert err.count("names indexed") == 1, err  # logged when trust begins, not on every listing


def test_a_bucket_above_the_limit_is_not_trusted(bucket):
    mnt, index = bucket
    proc = run_once(mnt, index, max_names=8)
    assert proc.returncode == 0, proc.stderr
    assert not (index / "ready").exists()
    assert "the bucket has 9 names, more than 8" in proc.stderr


def test_a_directory_that_is_not_the_mount_is_never_trusted(bucket, tmp_path):
    """As when the gcsfuse mount did not reach nginx's container: an empty directory must not mean 'no names'."""
    _mnt, index = bucket
    plain = tmp_path / "plain"
    make(plain, {"index.html": "f"})
    proc = run_once(plain, index)
    assert not (index / "ready").exists()
    lines = [line for line in proc.stderr.splitlines() if line]
    assert len(lines) == 1 and "is not a live FUSE mount" in lines[0] and "plain" in lines[0], proc.stderr


def test_a_mount_of_another_filesystem_type_is_not_trusted(bucket):
    mnt, index = bucket
    proc = run_once(mnt, index, env={**os.environ, "GCSFRONT_MOUNT_FS_TYPE": "65735546"})
    assert not (index / "ready").exists()
    assert "is not a live FUSE mount" in proc.stderr


def test_a_name_the_tree_cannot_hold_is_left_out_and_the_rest_trusted(bucket, tmp_path):
    """FUSE passes path components of up to 1024 bytes; no Linux filesystem holds one over 255."""
    mnt, index = bucket
    shim = tmp_path / "shim"
    shim.mkdir()
    long_name = "x" * 300
    # find as the mount would answer it, with one more object whose name no local filesystem can hold.
    (shim / "find").write_text("#!/bin/sh\nprintf 'f/%s\\0'\nexec /usr/bin/find \"$@\"\n" % long_name)
    (shim / "find").chmod(0o755)
    proc = run_once(mnt, index, env={**os.environ, "PATH": "%s:%s" % (shim, os.environ["PATH"])})
    assert proc.returncode == 0, proc.stderr
    assert (index / "ready").is_file()
    assert tree(index / "names") == tree(mnt)
    assert "left out 1 names with a path component over 255 bytes" in proc.stderr


def test_a_restart_starts_from_an_empty_tree(bucket):
    mnt, index = bucket
    run_once(mnt, index)
    (mnt / "gone.txt").unlink()
    stray = index / "names/stray-from-an-old-run"
    stray.write_text("")
    assert run_once(mnt, index).returncode == 0
    assert tree(index / "names") == tree(mnt)


@pytest.mark.parametrize("args, needle", [
    (["0", "10"], "INTERVAL=0 is not a whole number of seconds"),
    (["5", "many"], "MAX_NAMES=many is not a positive whole number"),
    (["5"], "usage:"),
])
def test_bad_arguments_fail_with_one_line(bucket, args, needle):
    mnt, index = bucket
    proc = subprocess.run([str(SCRIPT), str(mnt), str(index)] + args, capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 64 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (index / "ready").exists()
