#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_account_key
short_description: Validate a Google service-account key without ever showing it
version_added: 0.1.0
description:
  - Checks that a key is JSON, is of type C(service_account), names its C(client_email), C(private_key_id) and
    C(token_uri), and that its private key parses (with google-auth), before anything uses it.
  - Optionally proves the key is accepted by asking its token endpoint for an access token.
  - Every failure is one line that names the problem and never contains key material; the private key is never
    returned.
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - google-auth
  - cryptography
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes
  - gcsfront.gke.attributes.actiongroups
attributes:
  check_mode:
    details: Reads only; a token is fetched in check mode too when O(fetch_token=true).
  diff_mode:
    support: none
  action_group:
    membership:
      - gcsfront.gke.gke
options:
  path:
    description: Key file (JSON). Mutually exclusive with O(content).
    type: path
  content:
    description: The key itself (JSON), for example from a vaulted variable. Never logged.
    type: str
  fetch_token:
    description: Ask the key's token endpoint for an access token, proving the key is registered and valid.
    type: bool
    default: false
  token_uri:
    description: Token endpoint to use instead of the key's C(token_uri).
    type: str
  scopes:
    description: OAuth scopes to ask for with O(fetch_token).
    type: list
    elements: str
    default: [https://www.googleapis.com/auth/devstorage.read_only]
seealso:
  - module: gcsfront.gke.lb_smoke
"""

EXAMPLES = r"""
---
- name: Validate the key before any cluster change.
  gcsfront.gke.service_account_key:
    path: ~/.config/gcsfront/key.json
  register: key_info

- name: Validate a vaulted key and prove it is accepted.
  gcsfront.gke.service_account_key:
    content: "{{ vaulted_gcs_key }}"
    fetch_token: true
"""

RETURN = r"""
client_email:
  description: The service account.
  returned: success
  type: str
  sample: gcsfront@my-project.iam.gserviceaccount.com
private_key_id:
  description: The key's id.
  returned: success
  type: str
  sample: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e
project_id:
  description: The project named in the key, if any.
  returned: success
  type: str
  sample: my-project
token_uri:
  description: The token endpoint the key names.
  returned: success
  type: str
  sample: https://oauth2.googleapis.com/token
fingerprint:
  description: sha256 (hex) of the key's public half.
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
token_fetched:
  description: Whether an access token was obtained with the key.
  returned: success
  type: bool
  sample: false
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._sa_key import InvalidKey, fingerprint, load

try:
    import google.auth.exceptions
    import google.auth.transport.requests

    GOOGLE_AUTH_ERROR = None
except ImportError:
    GOOGLE_AUTH_ERROR = traceback.format_exc()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            content=dict(type="str", no_log=True),
            fetch_token=dict(type="bool", default=False),
            token_uri=dict(type="str", no_log=False),  # a URL, not a secret
            scopes=dict(type="list", elements="str", default=["https://www.googleapis.com/auth/devstorage.read_only"]),
        ),
        mutually_exclusive=[("path", "content")],
        required_one_of=[("path", "content")],
        supports_check_mode=True,
    )
    if GOOGLE_AUTH_ERROR:
        module.fail_json(msg=missing_required_lib("google-auth"), exception=GOOGLE_AUTH_ERROR)
    p = module.params
    try:
        info, creds = load(p["scopes"], path=p["path"], content=p["content"])
    except InvalidKey as e:
        module.fail_json(msg=str(e))
    module.no_log_values.add(info["private_key"])

    fetched = False
    if p["fetch_token"]:
        if p["token_uri"]:
            creds = creds.with_token_uri(p["token_uri"]) if hasattr(creds, "with_token_uri") else creds
        try:
            creds.refresh(google.auth.transport.requests.Request())
            fetched = True
        except google.auth.exceptions.GoogleAuthError as e:
            module.fail_json(msg="Key %s of %s was refused by %s: %s" % (
                info["private_key_id"], info["client_email"], p["token_uri"] or info["token_uri"],
                first_line(e, 300)))
    module.exit_json(changed=False, client_email=info["client_email"], private_key_id=info["private_key_id"],
                     project_id=info.get("project_id"), token_uri=info["token_uri"],
                     fingerprint=fingerprint(info), token_fetched=fetched)


if __name__ == "__main__":
    main()
