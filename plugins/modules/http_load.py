#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_load
short_description: Run one bounded HTTP load measurement with ab, wrk or vegeta and return its figures
version_added: 0.1.0
description:
  - Runs one load measurement against one plain HTTP URL with a real load tool and returns the parsed
    figures (requests per second, latency percentiles, errors).
  - V(ab) (ApacheBench) and V(wrk) are closed loops, each client waiting for its answer before it sends
    again, so their latencies hide the time requests would have waited under a fixed rate. V(vegeta) sends at
    a fixed rate (an open loop) and so does not suffer from coordinated omission.
  - Every run is bounded. The options are checked against hard limits before anything runs, and the tool
    runs under C(timeout --kill-after=5) with a wall-clock limit of O(duration) + O(timeout) + 30 seconds
    (V(wrk), V(vegeta)) or O(requests) * O(timeout) / O(concurrency) + 30 seconds, at most 600 (V(ab)).
  - The tool never goes through a proxy. C(http_proxy), C(https_proxy), C(all_proxy), C(no_proxy) and
    their upper-case forms are removed from its environment with C(env -u).
  - It changes nothing on the server, so it always reports C(changed=false). The raw output of the tool is not
    returned on success.
  - It returns RV(record), the finished result of the run as a report keeps it, also when the run fails (then
    with C(failed=true) and the error), so that a caller with C(failed_when=false) keeps every run.
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - The load tool on the target, C(ab) (Debian package apache2-utils), C(wrk) or C(vegeta).
  - C(timeout) and C(env) (coreutils), and C(taskset) (util-linux) with O(cpus).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the module checks the options and finds the tool, but sends no load; it returns
      RV(ran=false) and the command it would run.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: The URL to load. Only C(http://) URLs. An empty path is sent as C(/).
    type: str
    required: true
  tool:
    description:
      - V(ab) runs C(ab -n REQUESTS -c CONCURRENCY [-k] -s TIMEOUT URL), a closed loop.
      - V(wrk) runs C(wrk -t THREADS -c CONCURRENCY -d DURATION --latency --timeout TIMEOUT URL), a closed
        loop for throughput.
      - V(vegeta) runs C(vegeta attack -rate RATE/1s -duration DURATION -timeout TIMEOUT -max-workers
        MAX_WORKERS -keepalive=true) with the target on its standard input, then C(vegeta report -type=json)
        on its results. With O(rate=0) it runs C(-rate 0 -workers MAX_WORKERS -max-workers MAX_WORKERS), a
        closed loop of that many workers.
    type: str
    choices: [ab, wrk, vegeta]
    required: true
  requests:
    description: Number of requests to send, for V(ab) only. From 1 to 100000.
    type: int
    default: 500
  concurrency:
    description: Number of concurrent clients (V(ab)) or open connections (V(wrk)). From 1 to 1000, and not
      more than O(requests) for V(ab).
    type: int
    default: 10
  keepalive:
    description: Reuse connections (C(ab -k)), for V(ab) only. V(wrk) and V(vegeta) always keep connections
      alive.
    type: bool
    default: false
  duration:
    description: Seconds the load lasts, for V(wrk) and V(vegeta). Greater than 0 and at most 300. V(wrk)
      takes whole seconds only.
    type: float
    default: 5.0
  threads:
    description: Number of threads of V(wrk), from 1 to O(concurrency).
    type: int
    default: 1
  rate:
    description:
      - Requests per second V(vegeta) sends, from 1 to 100000.
      - V(0) sends as fast as the answers come back, with exactly O(max_workers) workers (then at most 1000).
        That is a closed loop, like V(ab) and V(wrk), for a flood of a given concurrency.
    type: int
    default: 100
  max_workers:
    description: Most workers (and so connections) V(vegeta) may use to keep up the rate, from 1 to 100000.
    type: int
    default: 64
  distinct_paths:
    description:
      - For V(vegeta) only. V(0) sends every request to O(url). A number N sends N requests, each to a path of
        its own, O(url) with an 8-digit number appended (V(00000000) to N - 1), and the run ends after the N
        requests or O(duration), whichever comes first. From 0 to 1000000.
      - Meant for floods of names a server does not have (no cache can absorb them), so RV(errors) counts
        the expected 404 answers too; read RV(status_codes).
    type: int
    default: 0
  timeout:
    description: Seconds one request may take, for every tool. Greater than 0 and at most 120. V(ab) and
      V(wrk) take whole seconds, so it is rounded up for them.
    type: float
    default: 10.0
  executable:
    description: Path of the tool. By default the tool's name (V(ab), V(wrk) or V(vegeta)) is looked up
      in the E(PATH) and a missing tool fails the task with a message naming it.
    type: path
  labels:
    description:
      - Fields copied into RV(record) before the figures, naming the run (for example V({target, object, tool})).
    type: dict
    default: {}
  counters_url:
    description:
      - The control URL (C(http://host:port)) of a GCS latency proxy in front of the server's bucket. Its counters
        are zeroed (C(POST /__proxy/reset)) before the load and read (C(GET /__proxy/stats)) after it, so
        RV(record) holds the GCS calls the run caused, by kind and per request served.
      - Without it RV(record) has no GCS calls (V(null)).
    type: str
  cpus:
    description:
      - CPUs to pin the load generator to, with C(taskset -c).
      - On a small machine (2 cores) the generator competes with the server for CPU when both run on it, and
        the figures then measure the machine more than the server; pin the generator away from the server,
        and read the figures as a lower bound all the same.
    type: list
    elements: int
notes:
  - Latencies are in milliseconds and all floats are rounded to 3 decimals.
  - Send load only to servers you are responsible for.
seealso:
  - module: gcsfront.gke.lb_smoke
  - name: ab - Apache HTTP server benchmarking tool
    description: The manual of ab.
    link: https://httpd.apache.org/docs/2.4/programs/ab.html
  - name: wrk
    description: wrk, a modern HTTP benchmarking tool.
    link: https://github.com/wg/wrk
  - name: vegeta
    description: Vegeta, an HTTP load testing tool at a constant request rate.
    link: https://github.com/tsenart/vegeta
"""

EXAMPLES = r"""
---
- name: Measure the frontend's throughput for 10 seconds with 32 connections.
  gcsfront.gke.http_load:
    url: http://10.254.254.18/index.html
    tool: wrk
    concurrency: 32
    threads: 1
    duration: 10
    cpus: [1]
  register: load

- name: Measure its latency at a fixed 200 requests per second.
  gcsfront.gke.http_load:
    url: http://10.254.254.18/index.html
    tool: vegeta
    rate: 200
    duration: 10
    executable: /root/.cache/gcsfront/bin/vegeta-v12.13.0/vegeta
  register: latency

- name: A flood of 100000 distinct missing names by 10 clients, for at most 10 seconds.
  gcsfront.gke.http_load:
    url: http://10.254.254.18/flood/missing-
    tool: vegeta
    rate: 0
    max_workers: 10
    distinct_paths: 100000
    duration: 10
    executable: /root/.cache/gcsfront/bin/vegeta-v12.13.0/vegeta
  register: flood

- name: Throughput of a server behind a GCS latency proxy, with the GCS calls the run caused, as a record.
  gcsfront.gke.http_load:
    url: http://10.254.254.18/file1.txt
    tool: wrk
    duration: 10
    labels: {target: preset, object: File1, tool: wrk}
    counters_url: http://10.254.254.19:4444
  register: run
  # A run that fails is kept too: run.record says why.
  failed_when: false

- name: The 2016 measurement, 500 requests by 10 clients.
  gcsfront.gke.http_load:
    url: http://10.254.254.18/index.html
    tool: ab
    requests: 500
    concurrency: 10

- name: The 99th percentile stays under 50 ms without errors.
  ansible.builtin.assert:
    that:
      - latency.errors == 0
      - latency.latency_ms.p99 < 50
"""

RETURN = r"""
ran:
  description: Whether the tool ran; V(false) in check mode.
  returned: always
  type: bool
  sample: true
tool:
  description: The tool.
  returned: always
  type: str
  sample: vegeta
url:
  description: The URL that was loaded.
  returned: always
  type: str
  sample: http://10.254.254.18/index.html
cmd:
  description: The command that ran (or would run in check mode), guard, environment and pinning included.
    For V(vegeta) it is the attack.
  returned: when the options are valid
  type: list
  elements: str
  sample: [/usr/bin/timeout, --kill-after=5, "45", /usr/bin/env, -u, http_proxy, "...", /usr/bin/wrk, -t, "1",
           -c, "10", -d, 5s, --latency, --timeout, 10s, "http://10.254.254.18/index.html"]
report_cmd:
  description: The C(vegeta report) command that read the attack's results.
  returned: when O(tool=vegeta) and the options are valid
  type: list
  elements: str
  sample: [/usr/bin/timeout, --kill-after=5, "60", /usr/bin/env, -u, http_proxy, "...", vegeta, report,
           -type=json, /root/.ansible/tmp/ansible-moduletmp-1/vegeta-results.bin]
rc:
  description: Exit status of the tool (of the attack for V(vegeta)).
  returned: when the tool ran
  type: int
  sample: 0
requests:
  description: Completed requests.
  returned: success, not in check mode
  type: int
  sample: 500
errors:
  description:
    - Requests that failed or did not answer 2xx.
    - V(ab) C(Failed requests) + C(Non-2xx responses), at most RV(requests) (ab counts a non-2xx answer of
      another length than the first answer in both).
    - V(wrk) the sum of C(Socket errors) + C(Non-2xx or 3xx responses).
    - V(vegeta) RV(requests) minus the 2xx answers of RV(status_codes).
  returned: success, not in check mode
  type: int
  sample: 0
requests_per_second:
  description: Completed requests per second; for V(vegeta) RV(requests) / RV(duration_s).
  returned: success, not in check mode
  type: float
  sample: 1511.98
time_per_request_ms:
  description: Mean time per request in milliseconds. For V(ab) its C(Time per request ... (mean)) line
    (concurrency times the test's time over the requests, the figure of the 2016 measurements); for V(wrk)
    and V(vegeta) the mean latency.
  returned: success, not in check mode
  type: float
  sample: 3.307
latency_ms:
  description:
    - Latencies in milliseconds, with the keys the tool reports among C(mean), C(p50), C(p90), C(p99),
      C(p999) and C(max). None of the three tools reports C(p999) in the modes used, so it is left out.
    - V(ab) C(mean) is the mean of its C(Connection Times) C(Total) row, C(p50), C(p90), C(p99) and C(max)
      come from its percentage table (whole milliseconds).
    - V(wrk) C(mean) and C(max) come from its C(Latency) line, C(p50), C(p90), C(p99) from its latency
      distribution.
  returned: success, not in check mode
  type: dict
  sample: {mean: 2.5, p50: 2.0, p90: 6.0, p99: 11.0, max: 12.0}
status_codes:
  description: Answers per HTTP status code (C(0) counts requests without an answer). Only V(vegeta) reports
    them; empty for V(ab) and V(wrk).
  returned: success, not in check mode
  type: dict
  sample: {"200": 50}
bytes:
  description:
    - Body bytes received (V(ab) C(HTML transferred)).
    - V(vegeta) keeps no bodies (C(-max-body 0), so a long run at a high rate needs no disk) and returns none.
  returned: success with O(tool=ab), not in check mode
  type: int
  sample: 2000
read_bytes:
  description: Bytes V(wrk) read, headers included, from its C(read) figure (1024-based units, so approximate).
  returned: success with O(tool=wrk), not in check mode
  type: int
  sample: 12646
duration_s:
  description: Seconds the measurement took (V(ab) C(Time taken for tests), V(wrk) the time of its C(requests in)
    line, V(vegeta) its duration plus the wait for the last answers).
  returned: success, not in check mode
  type: float
  sample: 1.025
record:
  description:
    - The finished result of the run, O(labels) first, then C(failed) and C(error) (empty on success), the figures
      (C(requests), C(errors), C(requests_per_second), C(time_per_request_ms), C(latency_ms), C(status_codes),
      C(duration_s); C(0), V(null) or empty when the run failed), and C(gcs_calls) (in all),
      C(gcs_calls_by_kind) and C(gcs_calls_per_request) (V(null) when the run failed) with O(counters_url), else
      V(null).
  returned: always, failures included, except in check mode and for invalid options
  type: dict
  sample: {target: preset, object: File1, tool: wrk, failed: false, error: "", requests: 80214, errors: 0,
           requests_per_second: 40107.0, time_per_request_ms: 0.25, latency_ms: {mean: 0.25, p50: 0.2, p99: 1.1},
           status_codes: {}, duration_s: 2.0, gcs_calls: 0, gcs_calls_by_kind: {metadata: 0, read: 0},
           gcs_calls_per_request: 0.0}
stdout_tail:
  description: The last 2000 characters of the tool's output.
  returned: when the tool failed or its output could not be parsed
  type: str
  sample: "Benchmarking 10.254.254.18 (be patient)..."
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._load import (
    LoadOutputError, ab_argv, bounds_problem, cpus_problem, failure_line, finished_record, gcs_calls_by_kind,
    guard_seconds, guarded, normalize_url, parse_ab, parse_vegeta_report, parse_wrk, url_problem, vegeta_attack_argv,
    vegeta_report_argv, vegeta_distinct_targets, vegeta_target, wrk_argv)

REPORT_LIMIT = 60  # seconds for `vegeta report` to read the results file
GUARD_RCS = (124, 128 + 9)  # timeout(1): the limit was reached; the tool then needed SIGKILL


def argument_spec():
    return dict(
        url=dict(type="str", required=True),
        tool=dict(type="str", choices=["ab", "wrk", "vegeta"], required=True),
        requests=dict(type="int", default=500),
        concurrency=dict(type="int", default=10),
        keepalive=dict(type="bool", default=False),
        duration=dict(type="float", default=5.0),
        threads=dict(type="int", default=1),
        rate=dict(type="int", default=100),
        max_workers=dict(type="int", default=64),
        distinct_paths=dict(type="int", default=0),
        timeout=dict(type="float", default=10.0),
        executable=dict(type="path"),
        labels=dict(type="dict", default={}),
        counters_url=dict(type="str"),
        cpus=dict(type="list", elements="int"),
    )


COUNTERS_TIMEOUT = 10  # seconds for the proxy's control port to answer


def proxy_counters(module, counters_url, action):
    """Zero (action "reset") or read (action "stats") the GCS latency proxy's counters; (GCS calls by kind or None,
    error or "")."""
    method, status = ("POST", 204) if action == "reset" else ("GET", 200)
    url = counters_url.rstrip("/") + "/__proxy/" + action
    resp, info = fetch_url(module, url, method=method, use_proxy=False, timeout=COUNTERS_TIMEOUT)
    if info.get("status") != status:
        return None, "%s %s answered %s, not %d: %s" % (method, url, info.get("status"), status, info.get("msg", ""))
    if action == "reset":
        return None, ""
    try:
        return gcs_calls_by_kind(json.loads(resp.read())), ""
    except (ValueError, LoadOutputError) as e:
        return None, "%s %s: %s" % (method, url, first_line(e, 300))


def find_executable(module, tool, executable, fail):
    """The tool's path: looked up in the PATH (get_bin_path fails naming it when missing) or checked."""
    if not executable:
        return module.get_bin_path(tool, required=True)
    if "/" not in executable:
        return module.get_bin_path(executable, required=True)
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        fail("%s executable %s is not an executable file" % (tool, executable))
    return executable


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    tool = p["tool"]
    result = dict(changed=False, ran=False, tool=tool, url=p["url"])

    def fail(msg, **extra):
        module.fail_json(msg=msg, **dict(result, **extra))

    problem = url_problem(p["url"]) or (p["counters_url"] and url_problem(p["counters_url"])) or bounds_problem(
        tool, requests=p["requests"], concurrency=p["concurrency"], duration=p["duration"], threads=p["threads"],
        rate=p["rate"], max_workers=p["max_workers"], timeout=p["timeout"], distinct_paths=p["distinct_paths"])
    cpus = p["cpus"] or []
    if not problem and cpus:
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        problem = cpus_problem(cpus, allowed)
    if problem:
        fail(problem)
    url = normalize_url(p["url"])
    result["url"] = url

    executable = find_executable(module, tool, p["executable"], fail)
    # Load loops must stop by themselves: a hung connection or a tool bug must not leave load running past the
    # task, so every run is under timeout(1), which sends SIGTERM at the limit and SIGKILL 5 seconds later.
    bins = dict(timeout_bin=module.get_bin_path("timeout", required=True),
                env_bin=module.get_bin_path("env", required=True))
    taskset_bin = module.get_bin_path("taskset", required=True) if cpus else None
    limit = guard_seconds(tool, requests=p["requests"], concurrency=p["concurrency"], duration=p["duration"],
                          timeout=p["timeout"])

    def guard(argv):
        # `env -u` drops the proxy variables from the tool's environment; blanking them with environ_update
        # would leave them set, empty, which not every client reads as "no proxy".
        return guarded(argv, limit, taskset_bin=taskset_bin, cpus=cpus, **bins)

    results_file = None
    if tool == "ab":
        cmd = guard(ab_argv(executable, url, p["requests"], p["concurrency"], p["timeout"], p["keepalive"]))
    elif tool == "wrk":
        cmd = guard(wrk_argv(executable, url, p["threads"], p["concurrency"], p["duration"], p["timeout"]))
    else:
        # The module's private temporary directory: the name is ours alone, and Ansible removes the directory.
        results_file = os.path.join(module.tmpdir, "vegeta-results.bin")
        targets_file = os.path.join(module.tmpdir, "vegeta-targets.txt") if p["distinct_paths"] else None
        cmd = guard(vegeta_attack_argv(executable, p["rate"], p["duration"], p["timeout"], p["max_workers"],
                                       results_file, targets=targets_file))
        result["report_cmd"] = guarded(vegeta_report_argv(executable, results_file), REPORT_LIMIT, **bins)
    result["cmd"] = cmd

    if module.check_mode:
        module.exit_json(skipped=True, msg="Check mode: %s would send load to %s; nothing was sent" % (tool, url),
                         **result)

    def read_counters():
        if not p["counters_url"]:
            return None, ""
        return proxy_counters(module, p["counters_url"], "stats")

    def fail_run(msg, **extra):
        # The record too: a caller that keeps failed runs (failed_when: false) reports this one.
        calls, _counters_error = read_counters()
        fail(msg, record=finished_record(p["labels"], error=msg, gcs_calls=calls), **extra)

    if p["counters_url"]:
        _calls, problem = proxy_counters(module, p["counters_url"], "reset")
        if problem:
            fail("cannot zero the GCS proxy's counters: %s" % problem)

    def run(argv, what, data=None):
        rc, out, err = module.run_command(argv, data=data, binary_data=True, expand_user_and_vars=False)
        if what == tool:
            result.update(ran=True, rc=rc)
        if rc in GUARD_RCS:
            fail_run("%s against %s failed (rc %d): stopped by the %ds wall-clock guard" % (what, url, rc, limit),
                     stdout_tail=out[-2000:])
        if rc != 0:
            fail_run("%s against %s failed (rc %d): %s" % (what, url, rc, failure_line(out, err)),
                     stdout_tail=out[-2000:])
        return rc, out

    def parse(parser, rc, out, what):
        try:
            return parser(out)
        except LoadOutputError as e:
            fail_run("%s against %s failed (rc %d): cannot parse its output: %s"
                     % (what, url, rc, first_line(e, 300)), stdout_tail=out[-2000:])
        return None

    if tool == "ab":
        rc, out = run(cmd, tool)
        figures = parse(parse_ab, rc, out, tool)
    elif tool == "wrk":
        rc, out = run(cmd, tool)
        figures = parse(parse_wrk, rc, out, tool)
    else:
        try:
            distinct = p["distinct_paths"]
            if distinct:
                with open(targets_file, "w") as f:
                    f.writelines(vegeta_distinct_targets(url, distinct))
            run(cmd, tool, data=None if distinct else vegeta_target(url))
            rc, out = run(result["report_cmd"], "vegeta report")
            figures = parse(lambda text: parse_vegeta_report(text, sent_at_most=distinct or None), rc, out,
                            "vegeta report")
        finally:
            for path in (results_file, targets_file):
                if path and os.path.exists(path):
                    os.unlink(path)
    result.update(figures)
    calls, problem = read_counters()
    if problem:
        fail("cannot read the GCS proxy's counters: %s" % problem)
    result["record"] = finished_record(p["labels"], figures, gcs_calls=calls)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
