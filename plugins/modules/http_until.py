#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_until
short_description: GET a URL again and again until it answers an expected status, and say when it did
version_added: 0.2.0
description:
  - Sends C(GET) to one plain HTTP URL every O(interval) seconds, each request bounded by O(request_timeout),
    until the answer has one of the O(status_code) statuses (and, with O(min_bytes), a body that long), or
    O(timeout) seconds pass.
  - Returns when it started and when it succeeded (seconds since the epoch), so that a task started in the
    background (C(async), C(poll=0)) right when a fault ends measures the time to recover.
  - Never goes through a proxy. Read-only; the body is never returned.
author:
  - gcsfront maintainers (@gcsfront)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes.read_only
options:
  url:
    description: The URL, C(http://) only.
    type: str
    required: true
  status_code:
    description: Statuses that end the wait.
    type: list
    elements: int
    default: [200]
  min_bytes:
    description: The body must be at least this long (a body cut short does not count).
    type: int
    default: 0
  timeout:
    description: Seconds to keep trying, greater than 0 and at most 3600.
    type: float
    default: 60
  interval:
    description: Seconds between the starts of two requests, from 0.05.
    type: float
    default: 0.25
  request_timeout:
    description: Seconds one request may take, greater than 0.
    type: float
    default: 5
  fail_on_timeout:
    description: Fail when the time runs out; V(false) returns RV(succeeded=false) instead.
    type: bool
    default: true
seealso:
  - module: gcsfront.gke.lb_smoke
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
---
- name: Fetch a never-seen object until it is served, for at most 2 minutes.
  gcsfront.gke.http_until:
    url: http://10.254.254.18/faults/recover-00000000
    timeout: 120
    fail_on_timeout: false
  register: recovered
"""

RETURN = r"""
succeeded:
  description: Whether an expected answer came in time.
  returned: always
  type: bool
  sample: true
started_at:
  description: When the first request was sent, seconds since the epoch.
  returned: always
  type: float
  sample: 1764453600.125
succeeded_at:
  description: When the expected answer came, seconds since the epoch; null without one.
  returned: always
  type: float
  sample: 1764453603.5
elapsed:
  description: Seconds from the first request to the expected answer (or to giving up).
  returned: always
  type: float
  sample: 3.375
attempts:
  description: Requests sent.
  returned: always
  type: int
  sample: 14
statuses:
  description: Answers per status; C(0) counts requests without a complete answer (refused, timed out, or a body
    cut short).
  returned: always
  type: dict
  sample: {"0": 3, "502": 10, "200": 1}
last_error:
  description: The last error without an answer, if any.
  returned: always
  type: str
  sample: timed out
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gcsfront.gke.plugins.module_utils._http_check import request
from ansible_collections.gcsfront.gke.plugins.module_utils._load import url_problem
from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import clock


def probe(fetch, accept, timeout, interval, monotonic=time.monotonic, sleep=time.sleep, wall=time.time):
    """fetch() -> (status or 0, body length or None, error) until accept(status, length) or timeout seconds pass.
    Returns the result dict (without `changed`)."""
    statuses = {}
    attempts = 0
    last_error = ""
    started_at = wall()
    began = monotonic()
    for _elapsed in clock(timeout, interval, monotonic, sleep):
        attempts += 1
        status, length, error = fetch()
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if error:
            last_error = error
        if status and length is not None and accept(status, length):
            return dict(succeeded=True, started_at=round(started_at, 3), succeeded_at=round(wall(), 3),
                        elapsed=round(monotonic() - began, 3), attempts=attempts, statuses=statuses,
                        last_error=last_error)
    return dict(succeeded=False, started_at=round(started_at, 3), succeeded_at=None,
                elapsed=round(monotonic() - began, 3), attempts=attempts, statuses=statuses, last_error=last_error)


def main():
    module = AnsibleModule(argument_spec=dict(
        url=dict(type="str", required=True),
        status_code=dict(type="list", elements="int", default=[200]),
        min_bytes=dict(type="int", default=0),
        timeout=dict(type="float", default=60),
        interval=dict(type="float", default=0.25),
        request_timeout=dict(type="float", default=5),
        fail_on_timeout=dict(type="bool", default=True),
    ), supports_check_mode=True)
    p = module.params
    problem = url_problem(p["url"])
    if not problem and not 0 < p["timeout"] <= 3600:
        problem = "timeout must be in (0, 3600] seconds, not %g" % p["timeout"]
    if not problem and p["interval"] < 0.05:
        problem = "interval must be at least 0.05 seconds, not %g" % p["interval"]
    if not problem and p["request_timeout"] <= 0:
        problem = "request_timeout must be greater than 0, not %g" % p["request_timeout"]
    if problem:
        module.fail_json(msg=problem)

    def fetch():
        try:
            status, _headers, body = request(p["url"], timeout=p["request_timeout"])
            return status, len(body), ""
        except Exception as e:  # pylint: disable=broad-exception-caught
            # Refused, reset, timed out, or a body cut short after the headers: no (complete) answer.
            return 0, None, str(getattr(e, "reason", e))[:200]

    result = probe(fetch, lambda status, length: status in p["status_code"] and length >= p["min_bytes"],
                   p["timeout"], p["interval"])
    if not result["succeeded"] and p["fail_on_timeout"]:
        module.fail_json(msg="GET %s gave none of %s within %gs" % (p["url"], p["status_code"], p["timeout"]),
                         **result)
    module.exit_json(changed=False, url=p["url"], **result)


if __name__ == "__main__":
    main()
