#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: local_daemon
short_description: Keep a local daemon running with its own pid file, log file and readiness check
version_added: 0.1.0
description:
  - Starts a long-running program in the background with C(start-stop-daemon), optionally inside a network
    namespace, and waits until it answers a readiness check.
  - Idempotent. A daemon whose pid file names a live process running the same program is left alone, unless its
    fingerprint (command line, environment, namespace and the content of O(config_files)) changed, in which case
    it is restarted.
  - A stale pid file (the process was killed) is replaced by a new start. This is what the local substrate meets
    after every process of an earlier session was killed.
  - Built for the local substrate of this collection (machines without systemd); not for production hosts.
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - C(start-stop-daemon) (Debian package dpkg) and C(nsenter) (util-linux) on the target.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes
attributes:
  diff_mode:
    support: none
options:
  name:
    description: Name of the daemon, used in messages and for the pid and fingerprint files in O(run_dir).
    type: str
    required: true
  command:
    description: Program and arguments. The program should be an absolute path.
    type: list
    elements: str
  state:
    description: V(started) keeps it running, V(stopped) stops it (SIGTERM, then SIGKILL after O(stop_timeout)).
    type: str
    choices: [started, stopped]
    default: started
  netns:
    description: Name of a network namespace (under C(/run/netns)) to start the daemon and run the readiness check
      in. The daemon keeps the host's mount namespace.
    type: str
  environment:
    description: Extra environment variables for the daemon.
    type: dict
    default: {}
  run_dir:
    description: Directory for C(NAME.pid) and C(NAME.fingerprint).
    type: path
    required: true
  log_file:
    description: File that receives the daemon's standard output and error (appended).
    type: path
  config_files:
    description: Files whose content is part of the fingerprint, so a changed configuration restarts the daemon.
    type: list
    elements: path
    default: []
  ready:
    description:
      - How to tell the daemon is ready. Without it the daemon is ready once it is alive for one second.
      - Checks run in O(netns) when set.
    type: dict
    suboptions:
      http:
        description: URL that must answer with a 2xx status. HTTPS certificates are not verified (local daemons).
        type: str
      tcp:
        description: C(HOST:PORT) that must accept a connection.
        type: str
      unix_http:
        description: Unix socket path; C(GET /_ping) or O(ready.http_path) over it must answer 2xx.
        type: str
      http_path:
        description: Path requested over O(ready.unix_http).
        type: str
        default: /_ping
      path:
        description: A file or socket that must exist.
        type: path
  ready_timeout:
    description: Seconds to wait for readiness before failing (the daemon is then stopped again).
    type: int
    default: 60
  stop_timeout:
    description: Seconds between SIGTERM and SIGKILL when stopping.
    type: int
    default: 20
  adopt:
    description:
      - When no daemon of ours runs but the readiness check already passes, leave it be and report it as
        adopted (for example a dockerd that the machine already runs).
    type: bool
    default: false
"""

EXAMPLES = r"""
---
- name: Keep etcd running in the node namespace.
  gcsfront.gke.local_daemon:
    name: etcd
    netns: gcsfront-node
    command:
      - /opt/bin/etcd
      - --data-dir=/var/lib/gcsfront/etcd
      - --listen-client-urls=http://127.0.0.1:2379
      - --advertise-client-urls=http://127.0.0.1:2379
    run_dir: /run/gcsfront
    log_file: /var/log/gcsfront/etcd.log
    ready:
      http: http://127.0.0.1:2379/health

- name: Stop etcd.
  gcsfront.gke.local_daemon:
    name: etcd
    state: stopped
    run_dir: /run/gcsfront
"""

RETURN = r"""
pid:
  description: Process id of the running daemon; null once stopped.
  returned: always
  type: int
  sample: 4242
action:
  description: What the module did.
  returned: always
  type: str
  sample: started
  choices: [none, started, restarted, stopped, adopted]
reason:
  description: Why it started or restarted the daemon.
  returned: when changed
  type: str
  sample: pid file names a process that is gone
log_file:
  description: The daemon's log file.
  returned: always
  type: str
  sample: /var/log/gcsfront/etcd.log
elapsed:
  description: Seconds spent, readiness wait included.
  returned: always
  type: float
  sample: 1.8
"""

import hashlib
import json
import os
import signal
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import daemon_ready, gone, wait

# Runs inside the target namespace (through nsenter) so that loopback-only daemons can be probed.
_PROBE = r"""
import http.client, json, socket, ssl, sys, urllib.request  # noqa
spec = json.loads(sys.argv[1])
try:
    if spec.get("http"):
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        with opener.open(spec["http"], timeout=2) as r:
            raise SystemExit(0 if 200 <= r.status < 300 else 1)
    if spec.get("tcp"):
        host, port = spec["tcp"].rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=2).close(); raise SystemExit(0)
    if spec.get("unix_http"):
        s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(spec["unix_http"])
        c = http.client.HTTPConnection("localhost"); c.sock = s
        c.request("GET", spec.get("http_path") or "/_ping"); r = c.getresponse()
        raise SystemExit(0 if 200 <= r.status < 300 else 1)
except Exception as e:
    print(e); raise SystemExit(1)
raise SystemExit(0)
"""


# Seconds a process may take to go after SIGKILL (the kernel's work, not the program's).
KILL_TIMEOUT = 10


class DaemonExited(Exception):
    """The daemon's process went away while it was starting."""


class Daemon:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.name = p["name"]
        self.pid_file = os.path.join(p["run_dir"], self.name + ".pid")
        self.fp_file = os.path.join(p["run_dir"], self.name + ".fingerprint")
        self.log_file = p["log_file"] or os.path.join(p["run_dir"], self.name + ".log")

    # --- state -------------------------------------------------------------------------------------------
    def pid(self):
        """The pid from the pid file if that process is alive and runs our program, else None."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return None
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        except (OSError, IndexError):
            return None
        command = self.module.params["command"]
        # Right after a start the process may not have exec'd the program yet.
        expected = {"nsenter", "start-stop-daemon", os.path.basename(command[0])} if command else None
        if expected and os.path.basename(argv0) not in expected:
            return None  # pid reused by another program
        return pid

    def fingerprint(self):
        p = self.module.params
        h = hashlib.sha256()
        h.update(json.dumps([p["command"], p["environment"], p["netns"]], sort_keys=True).encode())
        for path in p["config_files"]:
            try:
                with open(path, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
            except OSError as e:
                self.module.fail_json(msg="%s: cannot read config file %s: %s" % (self.name, path, e.strerror))
        return h.hexdigest()

    def stored_fingerprint(self):
        try:
            with open(self.fp_file) as f:
                return f.read().strip()
        except OSError:
            return None

    # --- actions -----------------------------------------------------------------------------------------
    def probe(self):
        ready = self.module.params["ready"] or {}
        spec = {k: v for k, v in ready.items() if v and k != "path"}
        if ready.get("path") and not os.path.exists(ready["path"]):
            return False
        if not spec.get("http") and not spec.get("tcp") and not spec.get("unix_http"):
            return True
        argv = [sys.executable, "-c", _PROBE, json.dumps(spec)]
        if self.module.params["netns"]:
            argv = ["nsenter", "--net=/run/netns/" + self.module.params["netns"]] + argv
        rc, _out, _err = self.module.run_command(argv)
        return rc == 0

    def last_log_line(self):
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
            return lines[-1].strip()[:300] if lines else "(log is empty)"
        except OSError:
            return "(no log)"

    def start(self):
        p = self.module.params
        os.makedirs(p["run_dir"], exist_ok=True)
        os.makedirs(os.path.dirname(self.log_file) or ".", exist_ok=True)
        command = list(p["command"])
        if p["netns"]:
            if not os.path.exists("/run/netns/" + p["netns"]):
                self.module.fail_json(msg="%s: network namespace %s does not exist" % (self.name, p["netns"]))
            command = ["/usr/bin/nsenter", "--net=/run/netns/" + p["netns"]] + command
        if not os.access(p["command"][0], os.X_OK):
            self.module.fail_json(msg="%s: %s is not an executable file" % (self.name, p["command"][0]))
        try:
            os.unlink(self.pid_file)  # stale: start-stop-daemon would refuse a pid that was reused
        except FileNotFoundError:
            pass
        with open(self.log_file, "ab") as f:
            f.write(("--- %s starting %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), self.name)).encode())
        argv = ["start-stop-daemon", "--start", "--background", "--make-pidfile", "--pidfile", self.pid_file,
                "--output", self.log_file, "--startas", command[0], "--", *command[1:]]
        env = {k: str(v) for k, v in p["environment"].items()}
        rc, out, err = self.module.run_command(argv, environ_update=env)
        if rc != 0:
            self.module.fail_json(msg="%s: start-stop-daemon failed: %s" % (self.name, (err or out).strip()))
        with open(self.fp_file, "w") as f:
            f.write(self.fingerprint())
        self.started_at = time.monotonic()

    def wait_ready(self):
        """The daemon's pid once it is ready; fails when it exits while starting or is not ready in time."""
        timeout = self.module.params["ready_timeout"]
        checked = bool(self.module.params["ready"])
        began = time.monotonic()

        def state():
            pid = self.pid()
            # start-stop-daemon's parent returns before its child has written the pid file and exec'd.
            if pid is None and time.monotonic() - self.started_at > 3:
                raise DaemonExited()
            return dict(pid=pid, checked=checked, answered=pid is not None and checked and self.probe(),
                        alive_for=time.monotonic() - began)

        try:
            pid, _elapsed, _error, _attempts = wait(state, daemon_ready, timeout, 0.25, transient=())
        except DaemonExited:
            self.module.fail_json(
                msg="%s exited while starting; see %s: %s" % (self.name, self.log_file, self.last_log_line()),
                log_file=self.log_file)
        if pid is None:
            self.stop()
            self.module.fail_json(
                msg="%s not ready within %ds; see %s: %s" % (self.name, timeout, self.log_file, self.last_log_line()),
                log_file=self.log_file)
        return pid

    def stop(self):
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not wait(self.pid, gone, self.module.params["stop_timeout"], 0.1, transient=())[0]:
                os.kill(pid, signal.SIGKILL)
                if not wait(self.pid, gone, KILL_TIMEOUT, 0.05, transient=())[0]:
                    self.module.fail_json(msg="%s (pid %d) outlived SIGKILL by %ds" % (self.name, pid, KILL_TIMEOUT))
        for path in (self.pid_file, self.fp_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return pid


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            command=dict(type="list", elements="str"),
            state=dict(type="str", choices=["started", "stopped"], default="started"),
            netns=dict(type="str"),
            environment=dict(type="dict", default={}),
            run_dir=dict(type="path", required=True),
            log_file=dict(type="path"),
            config_files=dict(type="list", elements="path", default=[]),
            ready=dict(type="dict", options=dict(
                http=dict(type="str"),
                tcp=dict(type="str"),
                unix_http=dict(type="str"),
                http_path=dict(type="str", default="/_ping"),
                path=dict(type="path"),
            )),
            ready_timeout=dict(type="int", default=60),
            stop_timeout=dict(type="int", default=20),
            adopt=dict(type="bool", default=False),
        ),
        required_if=[("state", "started", ("command",))],
        supports_check_mode=True,
    )
    began = time.monotonic()
    d = Daemon(module)

    def done(changed, action, pid, reason=None):
        result = dict(changed=changed, action=action, pid=pid, log_file=d.log_file,
                      elapsed=round(time.monotonic() - began, 3))
        if reason:
            result["reason"] = reason
        module.exit_json(**result)

    pid = d.pid()
    if module.params["state"] == "stopped":
        if pid is None:
            done(False, "none", None)
        if not module.check_mode:
            d.stop()
        done(True, "stopped", None)

    if pid is not None:
        if d.stored_fingerprint() == d.fingerprint():
            done(False, "none", pid)
        reason, action = "command line, environment or configuration changed", "restarted"
    elif module.params["adopt"] and module.params["ready"] and d.probe():
        done(False, "adopted", None)
    elif os.path.exists(d.pid_file):
        reason, action = "pid file names a process that is gone", "started"
    else:
        reason, action = "not running", "started"

    if module.check_mode:
        done(True, action, pid, reason)
    if pid is not None:
        d.stop()
    d.start()
    done(True, action, d.wait_ready(), reason)


if __name__ == "__main__":
    main()
