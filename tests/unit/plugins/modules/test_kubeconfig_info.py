"""gcsfront.gke.kubeconfig_info: a kubeconfig read as kubectl merges it (module_utils._kubeconfig), and the one line
that says a context's user cannot authenticate from here, on kubeconfig files crafted as gcloud writes them."""

from __future__ import annotations

import json
import os
import pathlib
import re
import stat
import subprocess

import pytest
import yaml

from ansible_collections.gcsfront.gke.plugins.module_utils._kubeconfig import (
    KubeconfigError, auth_problem, describe, files, merge)

REPO = pathlib.Path(__file__).resolve().parents[4]
GKE = "gke_my-project_asia-northeast1-a_gcsfront-cluster1"
# What gcloud container clusters get-credentials writes with the plugin installed, and what older gcloud wrote.
PLUGIN_USER = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
                        "installHint": "Install gke-gcloud-auth-plugin for use with kubectl", "provideClusterInfo": True}}
GCP_PROVIDER_USER = {"auth-provider": {"name": "gcp", "config": {
    "access-token": "ya29.never-print-me", "cmd-path": "/usr/lib/google-cloud-sdk/bin/gcloud",
    "cmd-args": "config config-helper --format=json", "token-key": "{.credential.access_token}"}}}
CERT_USER = {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}


def kubeconfig(path, user, name=GKE, current=GKE, extra=()):
    config = {"apiVersion": "v1", "kind": "Config", "current-context": current,
              "clusters": [{"name": name, "cluster": {"server": "https://203.0.113.10"}}],
              "users": [{"name": name, "user": user}],
              "contexts": [{"name": name, "context": {"cluster": name, "user": name}}, *extra]}
    path.write_text(yaml.safe_dump(config))
    return path


def read(*paths, context=None, which=lambda _command: None):
    info = describe(merge([(str(p), yaml.safe_load(p.read_text())) for p in paths]), context)
    return info, auth_problem(info, which=which)


def test_the_gke_plugin_missing_from_path_is_one_line_saying_to_install_it(tmp_path):
    info, problem = read(kubeconfig(tmp_path / "config", PLUGIN_USER))
    assert info["auth"] == "exec" and info["command"] == "gke-gcloud-auth-plugin"
    assert problem == (
        "context %s of %s gets its credentials from gke-gcloud-auth-plugin, which is not on PATH: install it "
        "(gcloud components install gke-gcloud-auth-plugin, or the google-cloud-cli-gke-gcloud-auth-plugin "
        "package)" % (GKE, tmp_path / "config"))
    assert "\n" not in problem


def test_the_gke_plugin_on_path_is_fine(tmp_path):
    _info, problem = read(kubeconfig(tmp_path / "config", PLUGIN_USER),
                          which=lambda c: "/usr/bin/" + c if c == "gke-gcloud-auth-plugin" else None)
    assert problem is None


def test_the_removed_gcp_auth_provider_says_to_get_credentials_again(tmp_path):
    info, problem = read(kubeconfig(tmp_path / "config", GCP_PROVIDER_USER))
    assert info["auth"] == "auth-provider" and info["command"] == "gcp"
    assert "gcp auth-provider" in problem and "gcloud container clusters get-credentials again" in problem
    assert "install gke-gcloud-auth-plugin" in problem
    assert "never-print-me" not in json.dumps([info, problem])


def test_certificates_and_missing_contexts_are_no_problem(tmp_path):
    info, problem = read(kubeconfig(tmp_path / "config", CERT_USER, name="gcsfront-local", current="gcsfront-local"))
    assert info["auth"] == "client-certificate" and problem is None
    assert "Q0VSVA" not in json.dumps(info)
    info, problem = read(tmp_path / "config", context="no-such-context")
    assert info == {"context": "no-such-context", "exists": False} and problem is None


def test_an_exec_command_with_a_relative_path_is_the_kubeconfigs(tmp_path):
    plugin = tmp_path / "bin/my-plugin"
    user = {"exec": {"command": "bin/my-plugin", "apiVersion": "client.authentication.k8s.io/v1beta1"}}
    config = kubeconfig(tmp_path / "config", user)
    _info, problem = read(config)
    assert "bin/my-plugin, which is not an executable file: install it (or fix user %s)" % GKE in problem
    plugin.parent.mkdir()
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    assert read(config)[1] is None


def test_files_are_merged_as_kubectl_does(tmp_path):
    first = kubeconfig(tmp_path / "a", CERT_USER, name="shared", current="")
    second = kubeconfig(tmp_path / "b", PLUGIN_USER, name="shared", current="shared",
                        extra=[{"name": "other", "context": {"cluster": "shared", "user": "shared"}}])
    # The first file naming an entry wins; current-context comes from the first file that sets one.
    info, problem = read(first, second)
    assert info["context"] == "shared" and info["auth"] == "client-certificate" and info["path"] == str(first)
    assert problem is None
    assert read(first, second, context="other")[0]["path"] == str(second)
    assert files(None, {"KUBECONFIG": "%s%s%s" % (first, os.pathsep, second)}) == [str(first), str(second)]
    assert files(str(first), {"KUBECONFIG": str(second)}) == [str(first)]
    assert files(None, {}) == [os.path.expanduser("~/.kube/config")]
    with pytest.raises(KubeconfigError, match="is not a kubeconfig"):
        merge([("list.yaml", ["not", "a", "mapping"])])


def run_module(args, path_dirs=()):
    """The module through ansible, with path_dirs put first on PATH."""
    env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=os.pathsep.join([str(d) for d in path_dirs] + [os.environ["PATH"]]))
    proc = subprocess.run([str(REPO / ".venv/bin/ansible"), "localhost", "-m", "gcsfront.gke.kubeconfig_info",
                           "-a", json.dumps(args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    m = re.search(r"^localhost \| (SUCCESS|FAILED!) => ", proc.stdout, re.M)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    return m.group(1), json.JSONDecoder().raw_decode(proc.stdout, m.end())[0]


def test_the_module_reports_the_problem_and_finds_the_plugin_on_path(tmp_path):
    # A plugin of its own name: this machine may have gke-gcloud-auth-plugin installed.
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gcsfront-test-auth-plugin"}}
    config = kubeconfig(tmp_path / "config", user)
    state, result = run_module({"path": str(config)})
    assert state == "SUCCESS" and result["context"] == GKE and result["server"] == "https://203.0.113.10"
    assert "gcsfront-test-auth-plugin, which is not on PATH: install it" in result["problem"]
    plugin = tmp_path / "bin/gcsfront-test-auth-plugin"
    plugin.parent.mkdir()
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    state, result = run_module({"path": str(config), "context": GKE}, [plugin.parent])
    assert state == "SUCCESS" and result["problem"] is None and result["auth"] == "exec"
    (tmp_path / "broken").write_text("clusters: [\n")
    state, result = run_module({"path": str(tmp_path / "broken")})
    assert state == "FAILED!" and result["msg"].startswith("kubeconfig %s cannot be read: " % (tmp_path / "broken"))


def test_the_module_takes_kubernetes_cores_option_name_and_says_which_files_it_read(tmp_path):
    config = kubeconfig(tmp_path / "config", CERT_USER)
    state, result = run_module({"kubeconfig": str(config), "context": "absent"})
    assert state == "SUCCESS" and result["exists"] is False and result["files"] == [str(config)]


def run_check_context(tmp_path, extra_vars):
    """playbooks/tasks/check_context.yml in a play of its own: (rc, output)."""
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_tasks": str(REPO / "playbooks/tasks/check_context.yml")}]}]))
    proc = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), str(play), "-e", json.dumps(extra_vars)],
                          cwd=REPO, env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("local, hint", [(True, ""), (False, " (for GKE: gcloud container clusters get-credentials ...)")])
def test_check_context_names_a_missing_context_and_the_file_in_one_line(tmp_path, local, hint):
    config = kubeconfig(tmp_path / "config", CERT_USER)
    rc, out = run_check_context(tmp_path, {"gcsfront_kubeconfig": str(config), "gcsfront_kube_context": "nope",
                                           "gcsfront_local_substrate": local})
    assert rc == 2, out
    assert "Action failed: kube context 'nope' is missing from %s%s\n" % (config, hint) in out, out
    rc, out = run_check_context(tmp_path, {"gcsfront_kubeconfig": str(tmp_path / "absent"),
                                           "gcsfront_kube_context": GKE, "gcsfront_local_substrate": True})
    assert rc == 2 and "Action failed: kube context '%s' is missing from %s\n" % (GKE, tmp_path / "absent") in out, out


def test_check_context_passes_a_context_the_kubeconfig_names(tmp_path):
    config = kubeconfig(tmp_path / "config", CERT_USER)
    rc, out = run_check_context(tmp_path, {"gcsfront_kubeconfig": str(config), "gcsfront_kube_context": GKE})
    assert rc == 0, out
