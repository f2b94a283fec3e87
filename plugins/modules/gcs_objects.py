#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gcs_objects
short_description: Write or delete a numbered series of small objects in a Cloud Storage bucket
version_added: 0.2.0
description:
  - Writes O(count) objects named O(prefix) followed by an 8-digit number from V(00000000), all with the same
    small content, or deletes them, several requests at a time.
  - Made for benchmarks that need many never-seen objects at once (one M(gcsfront.gke.gcs_object) task per object
    would take a second each). The names are those M(gcsfront.gke.http_mix_load) asks for with
    O(gcsfront.gke.http_mix_load#module:mix[].distinct_prefix).
  - Not idempotent by content; O(state=present) writes every object again, unless O(only_missing).
author:
  - gcsfront maintainers (@gcsfront)
extends_documentation_fragment:
  - gcsfront.gke.gcs
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written or deleted; the names are returned.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  bucket:
    description: The bucket.
    type: str
    required: true
  prefix:
    description: The names' common part, for example V(faults/run1/refuse-).
    type: str
    required: true
  count:
    description: Number of objects, from 1 to 100000.
    type: int
    required: true
  content:
    description: The content of every object.
    type: str
    default: "never seen\n"
  content_type:
    description: Content type of the uploaded objects.
    type: str
    default: text/plain
  state:
    description: V(present) writes the objects; V(absent) deletes them (a missing one is fine).
    type: str
    choices: [present, absent]
    default: present
  directories:
    description:
      - Spread the objects over this many directories under O(prefix), round robin (V(d0000/) to V(d0999/) for
        1000), as a large bucket's names are; V(0) puts them all directly under O(prefix).
      - The names are then no longer the ones M(gcsfront.gke.http_mix_load) asks for.
    type: int
    default: 0
  only_missing:
    description:
      - With O(state=present), list the names under O(prefix) first (one call per 1,000) and write only those that
        are missing, so a large series written once is not written again.
    type: bool
    default: false
  workers:
    description: Requests in flight at once, from 1 to 32.
    type: int
    default: 8
"""

EXAMPLES = r"""
---
- name: Write 300 never-seen objects for one case of the fault benchmark.
  gcsfront.gke.gcs_objects:
    bucket: gcsfront-local
    prefix: gcsfront-faults/refuse-
    count: 300
    gcs_endpoint: http://10.254.254.17:4443
    gcs_credentials_file: /var/lib/gcsfront/gcs-emulator/service-account/service-account.json
"""

RETURN = r"""
first:
  description: The first name.
  returned: always
  type: str
  sample: gcsfront-faults/refuse-00000000
last:
  description: The last name.
  returned: always
  type: str
  sample: gcsfront-faults/refuse-00000299
count:
  description: The objects written, or deleted (missing ones not counted).
  returned: always
  type: int
  sample: 300
"""

from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.gcsfront.gke.plugins.module_utils._faults import distinct_name
from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import (
    GCS_ARG_SPEC, GCS_MUTUALLY_EXCLUSIVE, GOOGLE_AUTH_IMPORT_ERROR, HAS_GOOGLE_AUTH, READ_WRITE, GcsClient, GcsError,
    session_from_params)

MAX_COUNT = 100000
MAX_WORKERS = 32


def object_names(prefix, count, directories=0):
    """The names of a series: prefix + number, or prefix + directory + number spread over `directories`."""
    if not directories:
        return [distinct_name(prefix, i) for i in range(count)]
    return [distinct_name("%sd%04d/" % (prefix, i % directories), i) for i in range(count)]


def apply_all(action, names, workers):
    """Run action(name) for every name, `workers` at a time; returns how many returned True. The first error is
    raised (the remaining names are still tried, so the pool drains)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda n: _attempt(action, n), names))
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return sum(1 for outcome in outcomes if outcome)


def _attempt(action, name):
    try:
        return action(name)
    except (GcsError, OSError) as e:
        return e


def main():
    spec = dict(GCS_ARG_SPEC)
    spec.update(
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", required=True),
        count=dict(type="int", required=True),
        content=dict(type="str", default="never seen\n"),
        content_type=dict(type="str", default="text/plain"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        directories=dict(type="int", default=0),
        only_missing=dict(type="bool", default=False),
        workers=dict(type="int", default=8),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, mutually_exclusive=GCS_MUTUALLY_EXCLUSIVE)
    if not HAS_GOOGLE_AUTH:
        module.fail_json(msg=missing_required_lib("google-auth"), exception=GOOGLE_AUTH_IMPORT_ERROR)
    p = module.params
    if not 1 <= p["count"] <= MAX_COUNT:
        module.fail_json(msg="count must be in 1..%d, not %d" % (MAX_COUNT, p["count"]))
    if not 1 <= p["workers"] <= MAX_WORKERS:
        module.fail_json(msg="workers must be in 1..%d, not %d" % (MAX_WORKERS, p["workers"]))
    if not 0 <= p["directories"] <= 10000:
        module.fail_json(msg="directories must be in 0..10000, not %d" % p["directories"])
    names = object_names(p["prefix"], p["count"], p["directories"])
    result = dict(first=names[0], last=names[-1])
    if module.check_mode:
        module.exit_json(changed=True, count=len(names), **result)
    where = "gs://%s/%s*" % (p["bucket"], p["prefix"])
    data = p["content"].encode()
    try:
        client = GcsClient(p["gcs_endpoint"], session_from_params(p, scopes=(READ_WRITE,)))
        if p["state"] == "present":
            if p["only_missing"]:
                there = set(client.list_names(p["bucket"], p["prefix"]))
                names = [n for n in names if n not in there]
            if not names:
                module.exit_json(changed=False, count=0, **result)
            # One call first, so the token is fetched once rather than by every worker at the same time.
            client.upload(p["bucket"], names[0], data, p["content_type"])

            def write(name):
                client.upload(p["bucket"], name, data, p["content_type"])
                return True

            done = 1 + apply_all(write, names[1:], p["workers"])
        else:
            def delete(name):
                try:
                    client.delete(p["bucket"], name)
                except GcsError as e:
                    if e.status == 404:
                        return False
                    raise
                return True

            done = apply_all(delete, names, p["workers"])
    except (GcsError, OSError) as e:
        module.fail_json(msg="%s: %s" % (where, e), **result)
    module.exit_json(changed=done > 0, count=done, **result)


if __name__ == "__main__":
    main()
