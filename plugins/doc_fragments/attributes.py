# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The attributes every module here shares, with ansible.builtin.action_common_attributes (which describes
    # them): each supports check mode. A module adds its diff_mode support, and any details, next to its options.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    support: full
  platform:
    platforms: posix
"""

    # The attributes of a module that only reads (with ansible.builtin.action_common_attributes).
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: The module only reads, so it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

    # A module in the collection's action groups (meta/runtime.yml). The module lists its groups itself, under
    # attributes.action_group.membership: a module's key replaces the fragment's, so a list here would be lost
    # (or, left empty, shown as no membership).
    ACTIONGROUPS = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/) and a group listed here in C(module_defaults) to set the options once per play.
      - C(gcsfront.gke.k8s) holds the modules that reach the cluster with kubernetes.core's C(kubeconfig) and
        C(context), so that one entry beside C(group/kubernetes.core.k8s) sets the cluster access.
    support: full
"""
