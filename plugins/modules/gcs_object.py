#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gcs_object
short_description: Upload an object to a Cloud Storage bucket when its content differs, or delete it
version_added: 0.1.0
description:
  - Idempotent by content. The object's C(md5Hash) is compared with the local content's, and the object is
    uploaded only when they differ.
  - Can create the bucket first, which is meant for emulators and test buckets.
  - Used by the local inventory to seed the emulator's bucket; works against Cloud Storage as well.
author:
  - gcsfront maintainers (@gcsfront)
extends_documentation_fragment:
  - gcsfront.gke.gcs
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes
attributes:
  diff_mode:
    support: full
    details: The diff shows the object's size and md5, never its content.
options:
  bucket:
    description: The bucket.
    type: str
    required: true
  name:
    description: Name of the object.
    type: str
    required: true
  src:
    description: Local file with the content. Mutually exclusive with O(content).
    type: path
  content:
    description: The content itself. Mutually exclusive with O(src).
    type: str
  content_type:
    description: Content type of the uploaded object.
    type: str
    default: application/octet-stream
  state:
    description: Whether the object should exist.
    type: str
    choices: [present, absent]
    default: present
  create_bucket:
    description: Create the bucket when it does not exist.
    type: bool
    default: false
  project:
    description: Project to create the bucket in, with O(create_bucket=true).
    type: str
"""

EXAMPLES = r"""
---
- name: Seed the local emulator's bucket.
  gcsfront.gke.gcs_object:
    bucket: gcsfront-local
    name: file1.txt
    src: files/seed/file1.txt
    content_type: text/plain
    create_bucket: true
    project: gcsfront-local
    gcs_endpoint: http://10.254.254.17:4443
    gcs_credentials_file: /var/lib/gcsfront/gcs-emulator/service-account/service-account.json
"""

RETURN = r"""
md5:
  description: The object's md5Hash (base64) after the task.
  returned: when O(state=present)
  type: str
  sample: XUFAKrxLKna5cZ2REBfFkg==
size:
  description: The object's size after the task.
  returned: when O(state=present)
  type: int
  sample: 10
generation:
  description: The object's generation after an upload.
  returned: when uploaded
  type: str
  sample: "1764040000000000"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import (
    GCS_ARG_SPEC, GCS_MUTUALLY_EXCLUSIVE, READ_WRITE, GcsClient, GcsError,
    md5_b64, require_libraries, session_from_params)


def main():
    spec = dict(GCS_ARG_SPEC)
    spec.update(
        bucket=dict(type="str", required=True),
        name=dict(type="str", required=True),
        src=dict(type="path"),
        content=dict(type="str"),
        content_type=dict(type="str", default="application/octet-stream"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        create_bucket=dict(type="bool", default=False),
        project=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=GCS_MUTUALLY_EXCLUSIVE + [("src", "content")],
                           required_if=[("state", "present", ("src", "content"), True),
                                        ("create_bucket", True, ("project",))])
    require_libraries(module)
    p = module.params
    where = "gs://%s/%s" % (p["bucket"], p["name"])
    try:
        client = GcsClient(p["gcs_endpoint"], session_from_params(p, scopes=(READ_WRITE,)))
        if p["state"] == "present":
            if p["src"]:
                with open(p["src"], "rb") as f:
                    data = f.read()
            else:
                data = p["content"].encode()
            md5 = md5_b64(data)
            bucket_missing = p["create_bucket"] and not client.bucket_exists(p["bucket"])
            current = None if bucket_missing else client.stat(p["bucket"], p["name"])
            result = dict(changed=current is None or current.get("md5Hash") != md5, md5=md5, size=len(data))
            if module._diff:
                result["diff"] = dict(before="" if current is None else "md5 %s, %s bytes\n" % (
                    current.get("md5Hash"), current.get("size")), after="md5 %s, %d bytes\n" % (md5, len(data)),
                    before_header=where, after_header=where)
            if result["changed"] and not module.check_mode:
                if bucket_missing:
                    client.create_bucket(p["bucket"], p["project"])
                result["generation"] = client.upload(p["bucket"], p["name"], data, p["content_type"]).get("generation")
        else:
            current = client.stat(p["bucket"], p["name"])
            result = dict(changed=current is not None)
            if current is not None and not module.check_mode:
                client.delete(p["bucket"], p["name"])
    except (GcsError, OSError) as e:
        module.fail_json(msg="%s: %s" % (where, e))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
