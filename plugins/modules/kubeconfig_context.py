#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeconfig_context
short_description: Merge a cluster, user and context into a kubeconfig file, or remove them
version_added: 0.1.0
description:
  - Adds (or replaces) one cluster, one user and one context, all named O(name), in a kubeconfig file, leaving every
    other entry as it is, the way C(kind) merges its clusters into C(~/.kube/config).
  - With O(state=absent) removes those three entries again, and clears C(current-context) if it named O(name).
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - PyYAML
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes
attributes:
  diff_mode:
    support: full
options:
  path:
    description: The kubeconfig file. Created with mode 0600 when missing.
    type: path
    required: true
  name:
    description: Name of the cluster, user and context.
    type: str
    required: true
  state:
    description: Whether the entries should be there.
    type: str
    choices: [present, absent]
    default: present
  server:
    description: API server URL. Required with O(state=present).
    type: str
  certificate_authority_data:
    description: PEM of the CA that signed the API server's certificate.
    type: str
  client_certificate_data:
    description: PEM of the client certificate.
    type: str
  client_key_data:
    description: PEM of the client key.
    type: str
  user_exec:
    description:
      - An exec credential plugin the user gets its credentials from, instead of a client certificate, for example
        C(gke-gcloud-auth-plugin) for GKE.
      - Mutually exclusive with O(client_certificate_data) and O(client_key_data).
    type: dict
    version_added: 0.2.0
    suboptions:
      command:
        description: The plugin's command, looked up on E(PATH).
        type: str
        required: true
      args:
        description: Its arguments.
        type: list
        elements: str
      api_version:
        description: The C(client.authentication.k8s.io) version of the plugin's input and output.
        type: str
        default: client.authentication.k8s.io/v1beta1
      provide_cluster_info:
        description: Pass the cluster's entry to the plugin (E(KUBERNETES_EXEC_INFO)).
        type: bool
        default: false
      install_hint:
        description: What a client tells the user when the command is missing.
        type: str
  set_current:
    description: Make O(name) the current context when none is set, or always with V(always).
    type: str
    choices: [never, if_unset, always]
    default: if_unset
"""

EXAMPLES = r"""
---
- name: Merge the local cluster into the user's kubeconfig.
  gcsfront.gke.kubeconfig_context:
    path: ~/.kube/config
    name: gcsfront-local
    server: https://10.254.254.2:6443
    certificate_authority_data: "{{ lookup('ansible.builtin.file', 'pki/ca.crt') }}"
    client_certificate_data: "{{ lookup('ansible.builtin.file', 'pki/admin.crt') }}"
    client_key_data: "{{ lookup('ansible.builtin.file', 'pki/admin.key') }}"
  no_log: true

- name: Merge a GKE cluster whose user gets its tokens from gke-gcloud-auth-plugin, as gcloud does.
  gcsfront.gke.kubeconfig_context:
    path: ~/.kube/config
    name: gke_my-project_asia-northeast1-a_gcsfront-cluster1
    server: https://34.84.0.10
    certificate_authority_data: "{{ cluster.cluster.certificate_authority_data }}"
    user_exec:
      command: gke-gcloud-auth-plugin
      provide_cluster_info: true

- name: Remove it again.
  gcsfront.gke.kubeconfig_context:
    path: ~/.kube/config
    name: gcsfront-local
    state: absent
"""

RETURN = r"""
path:
  description: The kubeconfig file.
  returned: always
  type: str
  sample: /home/user/.kube/config
"""

import base64
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import yaml
except ImportError:
    yaml = None


def _b64(pem):
    return base64.b64encode(pem.encode()).decode() if pem else None


def _upsert(entries, name, key, value):
    """Replace the entry called name in a kubeconfig list where it stands, or append it; return the new list."""
    entry = {"name": name, key: value}
    entries = list(entries or [])
    for i, e in enumerate(entries):
        if e.get("name") == name:
            return entries[:i] + [entry] + [e for e in entries[i + 1:] if e.get("name") != name]
    return entries + [entry]


def _exec(spec):
    """A kubeconfig user's exec entry, keyed as client-go and gcloud write it."""
    entry = {"apiVersion": spec.get("api_version") or "client.authentication.k8s.io/v1beta1",
             "command": spec["command"]}
    if spec.get("args"):
        entry["args"] = list(spec["args"])
    if spec.get("install_hint"):
        entry["installHint"] = spec["install_hint"]
    entry["provideClusterInfo"] = bool(spec.get("provide_cluster_info"))
    return entry


def merge(config, p):
    """Return a new kubeconfig dict with the entries of p applied (pure: no I/O)."""
    new = dict(config)
    name = p["name"]
    for kind in ("clusters", "users", "contexts"):
        new[kind] = [e for e in new.get(kind) or [] if e.get("name") != name]
    if p["state"] == "present":
        cluster = {"server": p["server"]}
        if p["certificate_authority_data"]:
            cluster["certificate-authority-data"] = _b64(p["certificate_authority_data"])
        user = {}
        if p["client_certificate_data"]:
            user["client-certificate-data"] = _b64(p["client_certificate_data"])
        if p["client_key_data"]:
            user["client-key-data"] = _b64(p["client_key_data"])
        if p.get("user_exec"):
            user["exec"] = _exec(p["user_exec"])
        new["clusters"] = _upsert(config.get("clusters"), name, "cluster", cluster)
        new["users"] = _upsert(config.get("users"), name, "user", user)
        new["contexts"] = _upsert(config.get("contexts"), name, "context", {"cluster": name, "user": name})
        if p["set_current"] == "always" or (p["set_current"] == "if_unset" and not config.get("current-context")):
            new["current-context"] = name
    elif config.get("current-context") == name:
        new["current-context"] = ""
    new.setdefault("apiVersion", "v1")
    new.setdefault("kind", "Config")
    new.setdefault("preferences", {})
    return new


def redacted(config):
    """The kubeconfig as YAML with user credentials replaced: a diff shows the shape, not the secrets."""
    users = [{"name": u.get("name"), "user": "(redacted)"} for u in config.get("users") or []]
    return yaml.safe_dump(dict(config, users=users), default_flow_style=False)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            server=dict(type="str"),
            certificate_authority_data=dict(type="str"),
            client_certificate_data=dict(type="str"),
            client_key_data=dict(type="str", no_log=True),
            user_exec=dict(type="dict", options=dict(
                command=dict(type="str", required=True),
                args=dict(type="list", elements="str"),
                api_version=dict(type="str", default="client.authentication.k8s.io/v1beta1"),
                provide_cluster_info=dict(type="bool", default=False),
                install_hint=dict(type="str"),
            )),
            set_current=dict(type="str", choices=["never", "if_unset", "always"], default="if_unset"),
        ),
        required_if=[("state", "present", ("server",))],
        mutually_exclusive=[("user_exec", "client_certificate_data"), ("user_exec", "client_key_data")],
        supports_check_mode=True,
    )
    if yaml is None:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    path = module.params["path"]
    before_text = ""
    if os.path.exists(path):
        with open(path) as f:
            before_text = f.read()
    try:
        before = yaml.safe_load(before_text) or {}
    except yaml.YAMLError as e:
        module.fail_json(msg="%s is not valid YAML: %s" % (path, e))
    if not isinstance(before, dict):
        module.fail_json(msg="%s is not a kubeconfig (its top level is not a mapping)" % path)

    after = merge(before, module.params)
    if module.params["state"] == "absent" and not before_text:
        module.exit_json(changed=False, path=path)
    changed = after != before
    result = dict(changed=changed, path=path)
    if module._diff:
        result["diff"] = dict(before=redacted(before) if before_text else "", after=redacted(after),
                              before_header=path, after_header=path)
    if changed and not module.check_mode:
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kubeconfig-")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(after, f, default_flow_style=False)
        os.chmod(tmp, 0o600)
        module.atomic_move(tmp, path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
