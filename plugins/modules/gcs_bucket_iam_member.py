#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gcs_bucket_iam_member
short_description: Grant or remove one member of one role in a Cloud Storage bucket's IAM policy
version_added: 0.2.0
description:
  - Makes sure that O(member) has, or does not have, O(role) on O(bucket) through an unconditional binding of the
    bucket's IAM policy. Every other binding, member and field of the policy is left as it is.
  - Reads the policy (as version 3) and writes it back with the etag it was read with, so a concurrent change of
    the policy makes the write fail with 412 instead of being overwritten; the read-modify-write is then tried
    again, 3 times in all.
  - Bindings with a C(condition) are never changed, and do not count as the grant. A binding left without members
    by O(state=absent) is removed.
  - Made to let a Workload Identity principal read the bucket, with V(roles/storage.objectViewer).
  - The credentials need C(storage.buckets.getIamPolicy), and C(storage.buckets.setIamPolicy) to change the policy.
    A key is used with the C(devstorage.full_control) scope, which the IAM calls need.
author:
  - gcsfront maintainers (@gcsfront)
extends_documentation_fragment:
  - gcsfront.gke.gcs
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes
  - gcsfront.gke.attributes.actiongroups
attributes:
  check_mode:
    details: The policy is read and C(changed) predicted; nothing is written.
  diff_mode:
    support: full
    details: The diff shows the sorted members of O(role), before and after.
  action_group:
    membership:
      - gcsfront.gke.gke
options:
  bucket:
    description: The bucket, without C(gs://).
    type: str
    required: true
  role:
    description:
      - The role, V(roles/NAME) or a custom role V(projects/PROJECT/roles/NAME) or V(organizations/ORG/roles/NAME).
    type: str
    required: true
  member:
    description:
      - The principal, as IAM writes it.
      - A Kubernetes service account through Workload Identity is
        V(principal://iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/subject/ns/NS/sa/KSA),
        and all of a namespace's service accounts are
        V(principalSet://iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/namespace/NS),
        where POOL is C(PROJECT.svc.id.goog).
      - Other principals are V(serviceAccount:gcsfront@my-project.iam.gserviceaccount.com), V(user:ada@example.com),
        V(group:readers@example.com), V(domain:example.com), V(allUsers) and V(allAuthenticatedUsers).
      - Anything else fails before any call. Compared as written, so write it the way IAM returns it.
    type: str
    required: true
  state:
    description: Whether O(member) should have O(role).
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: gcsfront.gke.gcs_object
  - name: Cloud Storage JSON API, buckets.setIamPolicy
    description: The call this module makes.
    link: https://cloud.google.com/storage/docs/json_api/v1/buckets/setIamPolicy
  - name: Workload Identity Federation principal identifiers
    description: How principal:// and principalSet:// members are written.
    link: https://cloud.google.com/iam/docs/principal-identifiers
"""

EXAMPLES = r"""
---
- name: Let the frontend's Kubernetes service account read the bucket through Workload Identity.
  gcsfront.gke.gcs_bucket_iam_member:
    bucket: gcsfront-local
    role: roles/storage.objectViewer
    member: "{{ wi_pool }}/subject/ns/gcsfront/sa/gcsfront"
    gcs_credentials_file: ~/.config/gcsfront/admin-key.json
  vars:
    wi_pool: principal://iam.googleapis.com/projects/424242424242/locations/global/workloadIdentityPools/gcsfront-local.svc.id.goog

- name: Take the grant of an old service account back.
  gcsfront.gke.gcs_bucket_iam_member:
    bucket: gcsfront-local
    role: roles/storage.objectViewer
    member: serviceAccount:gcsfront-old@my-project.iam.gserviceaccount.com
    state: absent
    gcs_credentials_content: "{{ vaulted_admin_key }}"
"""

RETURN = r"""
bindings:
  description:
    - The sorted members of O(role) after the task (predicted in check mode), from its unconditional bindings.
  returned: success
  type: list
  elements: str
  sample:
    - principal://iam.googleapis.com/projects/424242424242/locations/global/workloadIdentityPools/POOL/subject/ns/gcsfront/sa/gcsfront
    - serviceAccount:gcsfront@my-project.iam.gserviceaccount.com
previous_bindings:
  description:
    - The sorted members of O(role) before the task. With check mode, whether a member holds the role now
      (O(member) in it) without reporting a change.
  returned: success
  type: list
  elements: str
  sample: []
etag:
  description: The etag of the bucket's policy after the task; the one read when nothing was written.
  returned: success
  type: str
  sample: CAI=
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import (
    FULL_CONTROL, GCS_ARG_SPEC, GCS_MUTUALLY_EXCLUSIVE, GcsClient, GcsError,
    member_problem, require_libraries, role_members, role_problem, session_from_params, with_member)

ATTEMPTS = 3  # reads and writes of the policy before a 412 is the answer
ARG_SPEC = dict(
    GCS_ARG_SPEC,
    bucket=dict(type="str", required=True),
    role=dict(type="str", required=True),
    member=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def converge(client, module):
    """Read, edit and (unless in check mode) write the policy, again after a 412; the module's result."""
    p = module.params
    where = "gs://%s" % p["bucket"]
    for _attempt in range(ATTEMPTS):
        policy = client.get_iam_policy(p["bucket"])
        new, changed = with_member(policy, p["role"], p["member"], p["state"] == "present")
        result = dict(changed=changed, bindings=role_members(new, p["role"]), etag=policy.get("etag"),
                      previous_bindings=role_members(policy, p["role"]))
        if module._diff:
            result["diff"] = dict(before=_lines(role_members(policy, p["role"])), after=_lines(result["bindings"]),
                                  before_header="%s %s" % (where, p["role"]), after_header="%s %s" % (where, p["role"]))
        if not changed or module.check_mode:
            return result
        try:
            stored = client.set_iam_policy(p["bucket"], new)
        except GcsError as e:
            if e.status == 412:
                continue
            raise
        result.update(bindings=role_members(stored, p["role"]), etag=stored.get("etag"))
        return result
    raise GcsError("cannot set the IAM policy of %s: it changed during each of %d read-modify-write attempts "
                   "(412 Precondition Failed); run the task again" % (where, ATTEMPTS), 412)


def _lines(members):
    return "".join(m + "\n" for m in members)


def main():
    module = AnsibleModule(argument_spec=ARG_SPEC, supports_check_mode=True, mutually_exclusive=GCS_MUTUALLY_EXCLUSIVE)
    require_libraries(module)
    p = module.params
    problem = role_problem(p["role"]) or member_problem(p["member"])
    if problem:
        module.fail_json(msg=problem)
    try:
        result = converge(GcsClient(p["gcs_endpoint"], session_from_params(p, scopes=(FULL_CONTROL,))), module)
    except GcsError as e:
        module.fail_json(msg=str(e))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
