#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_mix_load
short_description: Send a bounded fixed-rate mix of request classes with vegeta and return figures per class
version_added: 0.2.0
description:
  - Sends, with C(vegeta attack), a fixed-rate load made of several classes of requests to one plain HTTP server,
    for example warm objects cycled at 300 requests per second and never-seen objects, each a name of its own, at 5
    per second. Each class gets its rate in every second of the run.
  - Reads every result back (C(vegeta encode -to json)) and returns, per class, the requests, the 2xx, the
    non-2xx answers by status code (C(0) is a request without a complete answer), the answers whose body stopped
    short, latency percentiles and the most frequent errors, and a per-second timeline of requests and 2xx.
  - vegeta measures latency from the intended send time, so the figures are free of coordinated omission.
  - Every run is bounded by O(duration) and O(timeout), under C(timeout --kill-after=5) like
    M(gcsfront.gke.http_load), and never goes through a proxy (the proxy variables are removed with C(env -u)).
  - It changes nothing, so it always reports C(changed=false).
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - C(vegeta) on the target, C(timeout) and C(env) (coreutils).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the module checks the options and finds vegeta, but sends no load; it returns
      RV(ran=false) and the command it would run.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: Base URL, C(http://) only; each class's paths are appended to it.
    type: str
    required: true
  mix:
    description: The classes of requests.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the class, the key of its figures in RV(classes).
        type: str
        required: true
      rate:
        description: Requests per second of this class, from 1.
        type: int
        required: true
      paths:
        description: Paths cycled in order. Mutually exclusive with O(mix[].distinct_prefix).
        type: list
        elements: str
      distinct_prefix:
        description:
          - Each request of the class asks for a name of its own, this prefix and an 8-digit number from
            V(00000000) (the names M(gcsfront.gke.gcs_objects) writes), so no cache has seen it.
          - Mutually exclusive with O(mix[].paths).
        type: str
  duration:
    description: Seconds the load lasts, a whole number from 1 to 300.
    type: int
    default: 10
  timeout:
    description: Seconds one request may take, greater than 0 and at most 120.
    type: float
    default: 10.0
  max_workers:
    description: Most workers (and connections) vegeta may use to keep the rate, from 1 to 100000.
    type: int
    default: 256
  executable:
    description: Path of vegeta. By default C(vegeta) is looked up in the E(PATH).
    type: path
notes:
  - Latencies are in milliseconds, rounded to 3 decimals, over every request of a class, answered or not.
  - Send load only to servers you are responsible for.
seealso:
  - module: gcsfront.gke.http_load
  - module: gcsfront.gke.gcs_objects
"""

EXAMPLES = r"""
---
- name: Warm objects at 300/s and never-seen ones at 5/s for 60 seconds.
  gcsfront.gke.http_mix_load:
    url: http://10.254.254.18/
    duration: 60
    mix:
      - {name: warm, rate: 300, paths: [file1.txt, file2.png, index.html]}
      - {name: never_seen, rate: 5, distinct_prefix: faults/case1-}
    executable: /root/.cache/gcsfront/bin/vegeta-v12.13.0/vegeta
  register: load

- name: Every warm request was answered 2xx.
  ansible.builtin.assert:
    that: load.classes.warm.non_2xx == 0
"""

RETURN = r"""
ran:
  description: Whether vegeta ran; V(false) in check mode.
  returned: always
  type: bool
  sample: true
url:
  description: The base URL.
  returned: always
  type: str
  sample: http://10.254.254.18/
cmd:
  description: The attack's command line, guard and environment included.
  returned: when the options are valid
  type: list
  elements: str
  sample: [/usr/bin/timeout, --kill-after=5, "100", /usr/bin/env, -u, http_proxy, "...", vegeta, attack]
requests:
  description: Requests sent and answered or failed, all classes.
  returned: success, not in check mode
  type: int
  sample: 18300
duration_s:
  description: Seconds from the first request sent to the last result.
  returned: success, not in check mode
  type: float
  sample: 60.41
started_at:
  description: When the first request was sent, seconds since the epoch (RV(timeline) counts from it).
  returned: success, not in check mode
  type: float
  sample: 1764453600.125
classes:
  description:
    - Figures per class name. C(requests); C(ok), the 2xx answers; C(non_2xx) and C(status_codes), the others
      by status code (C(0) means no complete answer); C(all_status_codes); C(short_bodies), answers whose body
      stopped short or stalled; C(ok_ratio); C(latency_ms) (C(p50), C(p99), C(max), C(mean)); C(non_2xx_max_ms),
      the slowest non-2xx answer; C(error_messages), the most frequent errors with their counts.
  returned: success, not in check mode
  type: dict
  sample: {warm: {requests: 18000, ok: 18000, non_2xx: 0, status_codes: {}, short_bodies: 0, ok_ratio: 1.0,
                  latency_ms: {p50: 1.2, p99: 4.8, max: 20.1, mean: 1.5}, non_2xx_max_ms: null, error_messages: []}}
timeline:
  description: Per second since the first request, the requests and 2xx of each class.
  returned: success, not in check mode
  type: list
  elements: dict
  sample: [{t: 0, warm: {requests: 300, ok: 300}, never_seen: {requests: 5, ok: 5}}]
stdout_tail:
  description: The last 2000 characters of vegeta's output.
  returned: when vegeta failed or its output could not be parsed
  type: str
  sample: "..."
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._faults import (
    mix_figures, mix_problem, mix_schedule, parse_vegeta_json_lines, run_span, vegeta_mix_targets)
from ansible_collections.gcsfront.gke.plugins.module_utils._load import (
    LoadOutputError, bounds_problem, failure_line, guard_seconds, guarded, url_problem, vegeta_attack_argv)

ENCODE_LIMIT = 120  # seconds for `vegeta encode` to read the results file
GUARD_RCS = (124, 128 + 9)


def argument_spec():
    return dict(
        url=dict(type="str", required=True),
        mix=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            rate=dict(type="int", required=True),
            paths=dict(type="list", elements="str"),
            distinct_prefix=dict(type="str"),
        ), mutually_exclusive=[("paths", "distinct_prefix")], required_one_of=[("paths", "distinct_prefix")]),
        duration=dict(type="int", default=10),
        timeout=dict(type="float", default=10.0),
        max_workers=dict(type="int", default=256),
        executable=dict(type="path"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    result = dict(changed=False, ran=False, url=p["url"])

    def fail(msg, **extra):
        module.fail_json(msg=msg, **dict(result, **extra))

    mix = [{k: v for k, v in c.items() if v is not None} for c in p["mix"]]
    rate = sum(c["rate"] for c in mix)
    problem = (url_problem(p["url"]) or mix_problem(mix, p["duration"])
               or bounds_problem("vegeta", duration=p["duration"], rate=rate, max_workers=p["max_workers"],
                                 timeout=p["timeout"]))
    if problem:
        fail(problem)
    executable = p["executable"] or module.get_bin_path("vegeta", required=True)
    if "/" in executable and not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        fail("vegeta executable %s is not an executable file" % executable)
    elif "/" not in executable:
        executable = module.get_bin_path(executable, required=True)
    bins = dict(timeout_bin=module.get_bin_path("timeout", required=True),
                env_bin=module.get_bin_path("env", required=True))
    limit = guard_seconds("vegeta", duration=p["duration"], timeout=p["timeout"])
    # The module's private temporary directory: Ansible removes it with everything in it.
    results_file = os.path.join(module.tmpdir, "vegeta-results.bin")
    targets_file = os.path.join(module.tmpdir, "vegeta-targets.txt")
    # -lazy with exactly rate * duration targets: the attack ends when they run out, at the duration.
    cmd = guarded(vegeta_attack_argv(executable, rate, p["duration"], p["timeout"], p["max_workers"], results_file,
                                     targets=targets_file), limit, **bins)
    result["cmd"] = cmd
    if module.check_mode:
        module.exit_json(skipped=True, msg="Check mode: vegeta would send load to %s; nothing was sent" % p["url"],
                         **result)

    def run(argv, what):
        rc, out, err = module.run_command(argv, expand_user_and_vars=False)
        if what == "vegeta attack":
            result.update(ran=True, rc=rc)
        if rc in GUARD_RCS:
            fail("%s against %s failed (rc %d): stopped by the wall-clock guard" % (what, p["url"], rc),
                 stdout_tail=out[-2000:])
        if rc != 0:
            fail("%s against %s failed (rc %d): %s" % (what, p["url"], rc, failure_line(out, err)),
                 stdout_tail=out[-2000:])
        return out

    with open(targets_file, "w") as f:
        f.write(vegeta_mix_targets(p["url"], mix_schedule(mix, p["duration"])))
    run(cmd, "vegeta attack")
    out = run(guarded([executable, "encode", "-to", "json", results_file], ENCODE_LIMIT, **bins), "vegeta encode")
    try:
        rows = parse_vegeta_json_lines(out)
    except LoadOutputError as e:
        fail("vegeta encode's output cannot be parsed: %s" % first_line(e, 300), stdout_tail=out[-2000:])
    figures = mix_figures(rows, mix, p["url"])
    module.exit_json(requests=len(rows), duration_s=run_span(rows), **dict(result, **figures))


if __name__ == "__main__":
    main()
