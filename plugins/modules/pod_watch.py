#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_watch
short_description: Watch the pods of a label selector for a while and report restarts and readiness transitions
version_added: 0.2.0
description:
  - Lists the pods matching O(label_selectors) every O(interval) seconds for O(duration) seconds and returns what
    changed meanwhile. Restarts are the growth of each pod's container restart counts, native sidecars included
    (a pod created during the watch counts from 0). Flips are changes of a pod's C(Ready) condition, except a new pod becoming ready for the
    first time and a terminating pod becoming unready.
  - Meant to run in the background (C(async) with C(poll=0)) while something else disturbs the pods, then be
    collected with M(ansible.builtin.async_status).
  - A failed listing (the API server busy) is skipped and counted in RV(failed_samples); the watch goes on.
  - Read-only.
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - kubernetes
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes.read_only
options:
  namespace:
    description: Namespace of the pods.
    type: str
    required: true
  label_selectors:
    description: Label selectors the pods match, for example V(app.kubernetes.io/instance=gcsfront).
    type: list
    elements: str
    required: true
  duration:
    description: Seconds to watch, greater than 0 and at most 3600.
    type: float
    required: true
  interval:
    description: Seconds between two listings, from 0.1 to 60.
    type: float
    default: 0.5
  until_ready_timeout:
    description:
      - After O(duration), keep watching up to this many more seconds until the pods are whole again
        (RV(expected_ready) ready and none terminating), so that a disturbed pod's recovery and restarts are seen.
        V(0) stops at O(duration).
    type: float
    default: 0
  expected_ready:
    description:
      - The number of ready pods that counts as whole, for RV(all_ready_since_s). By default the number ready at
        the first listing.
    type: int
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
---
- name: Watch the frontend's pods for 70 seconds in the background.
  gcsfront.gke.pod_watch:
    context: gcsfront-local
    namespace: gcsfront-faults
    label_selectors: [app.kubernetes.io/instance=gcsfront-faults]
    duration: 70
  async: 130
  poll: 0
  register: watch_job

- name: Collect the watch.
  ansible.builtin.async_status:
    jid: "{{ watch_job.ansible_job_id }}"
  register: watch
  until: watch.finished
  retries: 130
  delay: 1
"""

RETURN = r"""
started_at:
  description: When the watch began, seconds since the epoch (the times in RV(ready_series) and RV(pods) count from it).
  returned: always
  type: float
  sample: 1764453600.125
watched_s:
  description: Seconds the watch lasted (O(duration), and with O(until_ready_timeout) the wait for the pods).
  returned: always
  type: float
  sample: 31.5
samples:
  description: Listings that succeeded.
  returned: always
  type: int
  sample: 140
failed_samples:
  description: Listings that failed (and were skipped).
  returned: always
  type: int
  sample: 0
restarts:
  description: Container restarts during the watch, all pods.
  returned: always
  type: int
  sample: 0
flips:
  description: Changes of the Ready condition, all pods, other than a new pod's first ready and a terminating pod's
    unready.
  returned: always
  type: int
  sample: 0
new_pods:
  description: Pods that appeared during the watch.
  returned: always
  type: int
  sample: 1
gone_pods:
  description: Pods that disappeared during the watch.
  returned: always
  type: int
  sample: 1
min_ready:
  description: The fewest ready (and not terminating) pods at any listing.
  returned: always
  type: int
  sample: 2
ready_at_end:
  description: Ready pods at the last listing.
  returned: always
  type: int
  sample: 3
expected_ready:
  description: The ready pods that count as whole (O(expected_ready), or the number at the first listing).
  returned: always
  type: int
  sample: 3
all_ready_since_s:
  description: Seconds into the watch since which RV(expected_ready) pods have been ready without a dip; null when
    fewer are ready at the end.
  returned: always
  type: float
  sample: 0.0
ready_series:
  description: "[seconds, ready pods, pods] at the first listing and at each change."
  returned: always
  type: list
  elements: list
  sample: [[0.0, 3, 3], [12.5, 2, 3], [31.0, 3, 3]]
pods:
  description: Per pod its name, whether it is new, when it was first and last seen, its restart counts at the start
    and end, its Ready transitions (C(t), C(ready), C(counted)), when it first became ready, whether it is gone.
  returned: always
  type: list
  elements: dict
  sample: [{name: gcsfront-faults-5d9c-abcde, new: false, restarts_start: 0, restarts_end: 1, transitions: []}]
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._faults import fold_samples, is_whole, pod_state
from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import clock

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client

    K8S_IMPORT_ERROR = None
except ImportError:
    AUTH_ARG_SPEC = {}
    K8S_IMPORT_ERROR = traceback.format_exc()


def argument_spec():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", required=True),
        label_selectors=dict(type="list", elements="str", required=True),
        duration=dict(type="float", required=True),
        interval=dict(type="float", default=0.5),
        until_ready_timeout=dict(type="float", default=0),
        expected_ready=dict(type="int"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if K8S_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=K8S_IMPORT_ERROR)
    p = module.params
    if not 0 < p["duration"] <= 3600:
        module.fail_json(msg="duration must be in (0, 3600] seconds, not %g" % p["duration"])
    if not 0 <= p["until_ready_timeout"] <= 3600:
        module.fail_json(msg="until_ready_timeout must be in [0, 3600] seconds, not %g" % p["until_ready_timeout"])
    if not 0.1 <= p["interval"] <= 60:
        module.fail_json(msg="interval must be in [0.1, 60] seconds, not %g" % p["interval"])
    auth = {k: p[k] for k in AUTH_ARG_SPEC if k in p and p[k] is not None}
    try:
        k8s = get_api_client(**auth)
        pods = k8s.resource("Pod", "v1")
    except Exception as e:  # pylint: disable=broad-exception-caught
        module.fail_json(msg="Cannot reach the Kubernetes API to watch pods in %s: %s"
                         % (p["namespace"], first_line(e, 300)))
    selector = ",".join(p["label_selectors"])
    samples = []
    failed = 0
    last_error = None
    started_at = time.time()
    began = time.monotonic()
    for elapsed in clock(p["duration"] + p["until_ready_timeout"], p["interval"]):
        try:
            listing = k8s.get(pods, namespace=p["namespace"], label_selector=selector).to_dict()
        except Exception as e:  # pylint: disable=broad-exception-caught
            failed += 1
            last_error = first_line(e, 200)
            continue
        states = [pod_state(item) for item in listing.get("items") or []]
        samples.append((time.monotonic() - began, states))
        expected = p["expected_ready"]
        if expected is None:
            expected = sum(1 for s in samples[0][1] if s["ready"])
        if elapsed >= p["duration"] and is_whole(states, expected):
            break
    result = fold_samples(samples, p["expected_ready"])
    module.exit_json(changed=False, started_at=round(started_at, 3), watched_s=round(time.monotonic() - began, 3),
                     failed_samples=failed, last_error=last_error, **result)


if __name__ == "__main__":
    main()
