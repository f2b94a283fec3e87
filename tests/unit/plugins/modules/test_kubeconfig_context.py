"""kubeconfig_context.merge: pure, idempotent, and leaves other contexts alone."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.gcsfront.gke.plugins.modules.kubeconfig_context import merge, redacted

PARAMS = {"name": "gcsfront-local", "state": "present", "server": "https://10.254.254.2:6443",
          "certificate_authority_data": "CA PEM", "client_certificate_data": "CERT PEM",
          "client_key_data": "KEY PEM", "set_current": "if_unset"}


def other(name):
    return {"clusters": [{"name": name, "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": name, "user": {"token": "t"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}]}


def combined(*configs):
    out = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "kind-dev"}
    for kind in ("clusters", "users", "contexts"):
        out[kind] = [e for c in configs for e in c[kind]]
    return out


def test_merge_into_an_empty_config_sets_the_context_current():
    new = merge({}, PARAMS)
    assert new["current-context"] == "gcsfront-local"
    assert new["contexts"] == [{"name": "gcsfront-local", "context": {"cluster": "gcsfront-local",
                                                                      "user": "gcsfront-local"}}]
    assert new["users"][0]["user"]["client-key-data"] == "S0VZIFBFTQ=="


def test_merge_is_idempotent_and_keeps_the_order_of_other_entries():
    config = combined(other("kind-dev"))
    once = merge(config, PARAMS)
    assert once["current-context"] == "kind-dev"  # if_unset: the user's choice stays
    # Ours first, another tool's context added after it: a rerun must not reorder (that would be a change).
    config = combined(merge({}, PARAMS), other("kind-dev"))
    assert merge(config, PARAMS)["contexts"] == config["contexts"]
    assert merge(merge(config, PARAMS), PARAMS) == merge(config, PARAMS)


def test_merge_does_not_touch_its_input():
    config = combined(other("kind-dev"))
    before = copy.deepcopy(config)
    merge(config, PARAMS)
    assert config == before


def test_absent_removes_only_ours_and_clears_current():
    config = merge(combined(other("kind-dev")), dict(PARAMS, set_current="always"))
    gone = merge(config, dict(PARAMS, state="absent"))
    assert [c["name"] for c in gone["contexts"]] == ["kind-dev"]
    assert gone["current-context"] == ""
    assert merge(gone, dict(PARAMS, state="absent")) == gone


@pytest.mark.parametrize("secret", ["S0VZIFBFTQ==", "Q0VSVCBQRU0="])
def test_redacted_diff_hides_credentials(secret):
    assert secret not in redacted(merge({}, PARAMS))


def test_a_user_can_run_an_exec_plugin_as_gcloud_writes_it():
    params = dict(PARAMS, name="gke_p_z_c", client_certificate_data=None, client_key_data=None,
                  user_exec={"command": "gke-gcloud-auth-plugin", "args": None, "install_hint": "install it",
                             "api_version": "client.authentication.k8s.io/v1beta1", "provide_cluster_info": True})
    config = merge({}, params)
    assert config["users"] == [{"name": "gke_p_z_c", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
        "installHint": "install it", "provideClusterInfo": True}}}]
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0EgUEVN"
    assert merge(config, params) == config
