"""What the local substrate leaves on the machine: processes, mounts, namespaces, links, routes, rules.

Used by the crash-recovery and teardown tests to list the substrate's footprint before and after.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import subprocess

from conftest import DEFAULTS, STATE_DIR

RUN_DIR = pathlib.Path(DEFAULTS["local_cluster_run_dir"])
SOCKET = RUN_DIR / "containerd/containerd.sock"


def _sh(*argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False).stdout


def daemon_pids():
    """Live processes named by the substrate's pid files: {name: pid}."""
    found = {}
    for pid_file in glob.glob(str(RUN_DIR / "*.pid")):
        try:
            pid = int(pathlib.Path(pid_file).read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        found[pathlib.Path(pid_file).stem] = pid
    return found


def container_pids():
    """The node containerd's shims and every process in a pod cgroup."""
    pids = set()
    for line in _sh("pgrep", "-f", "containerd-shim.*-address %s" % SOCKET).split():
        pids.add(int(line))
    for procs in glob.glob("/sys/fs/cgroup/*/kubepods/**/cgroup.procs", recursive=True):
        try:
            pids.update(int(p) for p in pathlib.Path(procs).read_text().split())
        except OSError:
            pass
    return pids


def processes():
    return set(daemon_pids().values()) | container_pids()


def _mountinfo():
    """(root, mount point) of every mount this process sees; an nsfs mount's root names its namespace."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            yield fields[3], fields[4].replace("\\040", " ")


def mounts():
    prefixes = (str(STATE_DIR), str(RUN_DIR), "/run/netns/" + DEFAULTS["local_cluster_netns"])
    return [point for _root, point in _mountinfo() if point.startswith(prefixes)]


def pod_network_namespaces():
    """{inode: [mount points]} of the network namespaces pod processes run in, other than the host's and the node's
    (host-network pods)."""
    def inode(path):
        try:
            return os.stat(path).st_ino
        except OSError:
            return None

    shared = {inode("/proc/1/ns/net"), inode("/run/netns/" + DEFAULTS["local_cluster_netns"])}
    namespaces = {}
    for pid in container_pids():
        found = inode("/proc/%d/ns/net" % pid)
        if found is not None and found not in shared:
            namespaces[found] = []
    for root, point in _mountinfo():
        if root.startswith("net:[") and (found := int(root[len("net:["):-1])) in namespaces:
            namespaces[found].append(point)
    return namespaces


def netns():
    return [n for n in _sh("ip", "netns", "list").split() if n == DEFAULTS["local_cluster_netns"]]


def links():
    return [link["ifname"] for link in json.loads(_sh("ip", "-j", "link", "show") or "[]")
            if link["ifname"] in (DEFAULTS["local_cluster_host_if"], DEFAULTS["local_cluster_node_if"])]


def routes():
    return [r for r in json.loads(_sh("ip", "-j", "route", "show") or "[]")
            if r.get("dst") == DEFAULTS["local_cluster_lb_pool"] or r.get("dev") == DEFAULTS["local_cluster_host_if"]]


def iptables_rules():
    rules = _sh("iptables-save")
    return [r for r in rules.splitlines() if "gcsfront" in r or DEFAULTS["local_cluster_host_if"] in r]


def footprint():
    return {"processes": sorted(processes()), "mounts": mounts(), "netns": netns(), "links": links(),
            "routes": routes(), "iptables": iptables_rules()}
