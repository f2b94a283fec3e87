# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""A kubeconfig read as kubectl merges it, and whether a context's user can authenticate from this machine.

Nothing here returns credentials: only how a user authenticates and, for exec plugins, the command's name.
"""

from __future__ import annotations

import os
import shutil

GKE_AUTH_PLUGIN = "gke-gcloud-auth-plugin"


class KubeconfigError(Exception):
    pass


def files(path, environ):
    """The kubeconfig files kubectl reads: path if given, else $KUBECONFIG's list, else ~/.kube/config (each with
    ~ expanded)."""
    if path:
        return [os.path.expanduser(path)]
    listed = [os.path.expanduser(p) for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [os.path.expanduser("~/.kube/config")]


def merge(loaded):
    """Merge [(path, config dict)] as kubectl does: the first file naming an entry, or current-context, wins.

    Returns {"current-context": str, "contexts"|"users"|"clusters": {name: (path, entry)}}.
    """
    merged = {"current-context": "", "contexts": {}, "users": {}, "clusters": {}}
    for path, config in loaded:
        if not isinstance(config, dict):
            raise KubeconfigError("%s is not a kubeconfig (its top level is not a mapping)" % path)
        if not merged["current-context"]:
            merged["current-context"] = config.get("current-context") or ""
        for kind, key in (("contexts", "context"), ("users", "user"), ("clusters", "cluster")):
            for entry in config.get(kind) or []:
                if isinstance(entry, dict) and entry.get("name") not in merged[kind]:
                    merged[kind][entry.get("name")] = (path, entry.get(key) or {})
    return merged


def describe(merged, context):
    """What a context (default: the current one) names; credentials left out."""
    name = context or merged["current-context"]
    if name not in merged["contexts"]:
        return {"context": name, "exists": False}
    path, ctx = merged["contexts"][name]
    user_path, user = merged["users"].get(ctx.get("user"), (path, {}))
    cluster = merged["clusters"].get(ctx.get("cluster"), (path, {}))[1]
    info = {"context": name, "exists": True, "path": path, "cluster": ctx.get("cluster"),
            "server": cluster.get("server"), "user": ctx.get("user"), "auth": auth_kind(user), "command": None}
    if info["auth"] == "exec":
        info["command"] = (user.get("exec") or {}).get("command")
    elif info["auth"] == "auth-provider":
        info["command"] = (user.get("auth-provider") or {}).get("name")
    info["user_path"] = user_path
    return info


def auth_kind(user):
    """How a kubeconfig user authenticates: exec, auth-provider, token, client-certificate, basic or none."""
    for key, kind in (("exec", "exec"), ("auth-provider", "auth-provider"), ("token", "token"),
                      ("tokenFile", "token"), ("client-certificate-data", "client-certificate"),
                      ("client-certificate", "client-certificate"), ("username", "basic")):
        if user.get(key):
            return kind
    return "none"


def resolve(command, kubeconfig_path, which=shutil.which):
    """Where an exec plugin's command is, as client-go finds it (a relative path is the kubeconfig's), or None."""
    if os.sep in command:
        full = command if os.path.isabs(command) else os.path.join(os.path.dirname(kubeconfig_path), command)
        return full if os.path.isfile(full) and os.access(full, os.X_OK) else None
    return which(command)


def auth_problem(info, which=shutil.which):
    """One line saying why the context's user cannot authenticate from here, or None."""
    if not info.get("exists"):
        return None
    where = "context %s of %s" % (info["context"], info["user_path"])
    if info["auth"] == "auth-provider" and info["command"] == "gcp":
        return ("%s authenticates with the gcp auth-provider, which Kubernetes clients no longer have: install "
                "%s, then run gcloud container clusters get-credentials again" % (where, GKE_AUTH_PLUGIN))
    if info["auth"] == "exec":
        command = info["command"] or ""
        if not command:
            return "%s runs an exec plugin without a command: fix user %s" % (where, info["user"])
        if resolve(command, info["user_path"], which) is None:
            hint = ("gcloud components install %s, or the google-cloud-cli-gke-gcloud-auth-plugin package"
                    % GKE_AUTH_PLUGIN if os.path.basename(command) == GKE_AUTH_PLUGIN else "or fix user %s" % info["user"])
            missing = "an executable file" if os.sep in command else "on PATH"
            return "%s gets its credentials from %s, which is not %s: install it (%s)" % (where, command, missing, hint)
    return None
