#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeconfig_info
short_description: Tell how a kubeconfig context authenticates, and whether that can work from here
version_added: 0.1.0
description:
  - Reads the kubeconfig as kubectl does (O(path), else every file of E(KUBECONFIG), else C(~/.kube/config); the
    first file naming an entry wins) and describes one context - its cluster, its server and how its user
    authenticates - without returning any credential.
  - RV(problem) says in one line why the user cannot authenticate from this machine - the removed C(gcp)
    auth-provider, or an exec plugin (such as C(gke-gcloud-auth-plugin)) that is not on E(PATH) - so a play can
    stop with that line before a Kubernetes client fails with a long one.
  - Asks no cluster.
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - PyYAML
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes.read_only
  - gcsfront.gke.attributes.actiongroups
attributes:
  action_group:
    membership:
      - gcsfront.gke.k8s
options:
  path:
    description:
      - The kubeconfig file. Default, as kubectl, E(KUBECONFIG) or C(~/.kube/config).
      - The alias O(kubeconfig) is the name kubernetes.core's modules give it, so that one C(module_defaults) entry
        sets both.
    type: path
    aliases: [kubeconfig]
  context:
    description: The context. Default, the kubeconfig's C(current-context).
    type: str
seealso:
  - module: gcsfront.gke.kubeconfig_context
"""

EXAMPLES = r"""
---
- name: Read how the GKE context authenticates.
  gcsfront.gke.kubeconfig_info:
    context: gke_my-project_asia-northeast1-a_gcsfront-cluster1
  register: kubeconfig

- name: Stop when it cannot authenticate from here.
  ansible.builtin.assert:
    that: kubeconfig.problem is none
    fail_msg: "{{ kubeconfig.problem }}"
"""

RETURN = r"""
context:
  description: The context described (O(context), or the current one).
  returned: always
  type: str
  sample: gke_my-project_asia-northeast1-a_gcsfront-cluster1
files:
  description: The kubeconfig files read, in order (those that do not exist included), as kubectl reads them.
  returned: always
  type: list
  elements: str
  sample: [/home/user/.kube/config]
exists:
  description: Whether a kubeconfig file names the context.
  returned: always
  type: bool
  sample: true
path:
  description: The file that names the context.
  returned: when RV(exists)
  type: str
  sample: /home/user/.kube/config
cluster:
  description: The context's cluster entry.
  returned: when RV(exists)
  type: str
  sample: gke_my-project_asia-northeast1-a_gcsfront-cluster1
server:
  description: That cluster's API server.
  returned: when RV(exists)
  type: str
  sample: https://203.0.113.10
user:
  description: The context's user entry.
  returned: when RV(exists)
  type: str
  sample: gke_my-project_asia-northeast1-a_gcsfront-cluster1
auth:
  description: How the user authenticates.
  returned: when RV(exists)
  type: str
  choices: [exec, auth-provider, token, client-certificate, basic, none]
  sample: exec
command:
  description: The exec plugin's command, or the auth-provider's name.
  returned: when RV(exists)
  type: str
  sample: gke-gcloud-auth-plugin
problem:
  description: One line saying why the user cannot authenticate from here; null when nothing is wrong (or the
    context does not exist).
  returned: always
  type: str
  sample: "context gke_p_z_c of /home/user/.kube/config gets its credentials from gke-gcloud-auth-plugin, which is
    not on PATH: install it (gcloud components install gke-gcloud-auth-plugin, or the
    google-cloud-cli-gke-gcloud-auth-plugin package)"
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._kubeconfig import (
    KubeconfigError, auth_problem, describe, files, merge)

try:
    import yaml
except ImportError:
    yaml = None


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", aliases=["kubeconfig"]), context=dict(type="str")),
        supports_check_mode=True,
    )
    if yaml is None:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    loaded = []
    read = files(module.params["path"], os.environ)
    for path in read:
        if not os.path.exists(path):
            continue
        try:
            with open(path) as f:
                loaded.append((path, yaml.safe_load(f) or {}))
        except (OSError, yaml.YAMLError) as e:
            module.fail_json(msg="kubeconfig %s cannot be read: %s" % (path, first_line(e)))
    try:
        info = describe(merge(loaded), module.params["context"])
    except KubeconfigError as e:
        module.fail_json(msg=str(e))
    info["problem"] = auth_problem(info)
    info.pop("user_path", None)
    module.exit_json(changed=False, files=read, **info)


if __name__ == "__main__":
    main()
