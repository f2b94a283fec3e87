"""gcsfront.gke.gcs_bucket_iam_member: the pure edit of one member of a bucket's IAM policy (module_utils._gcs), and
the module end to end against a fake Cloud Storage IAM endpoint started here on 127.0.0.1. Traffic goes only to
that server; any other address would go to a proxy on 127.0.0.1:9 that does not exist.
"""

from __future__ import annotations

import copy
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import adhoc, stand_in

from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import (
    member_problem, role_members, role_problem, with_member)


VIEWER = "roles/storage.objectViewer"
WI = ("principal://iam.googleapis.com/projects/424242424242/locations/global/workloadIdentityPools/"
      "gcsfront-local.svc.id.goog/subject/ns/gcsfront/sa/gcsfront")
SA = "serviceAccount:gcsfront@my-project.iam.gserviceaccount.com"
OTHER = "user:someone-else@example.com"
CONDITION = {"title": "old", "expression": 'resource.name.startsWith("projects/_/buckets/b/objects/old/")'}


def _policy():
    return {
        "kind": "storage#policy", "resourceId": "projects/_/buckets/b", "version": 3, "etag": "CAE=",
        "bindings": [
            {"role": "roles/storage.legacyBucketOwner", "members": ["projectOwner:my-project"]},
            {"role": VIEWER, "members": [SA]},
            {"role": VIEWER, "members": [WI], "condition": CONDITION},
        ],
    }


# The pure edit.

def test_grant_joins_the_roles_binding_and_keeps_the_rest():
    policy = _policy()
    new, changed = with_member(policy, VIEWER, WI, True)
    assert changed
    assert policy == _policy(), "the input was changed"
    assert new["bindings"][1] == {"role": VIEWER, "members": [SA, WI]}
    assert new["bindings"][2] == {"role": VIEWER, "members": [WI], "condition": CONDITION}
    assert {k: v for k, v in new.items() if k != "bindings"} == {k: v for k, v in policy.items() if k != "bindings"}
    assert new["bindings"][0] == policy["bindings"][0]


def test_grant_of_a_new_role_adds_a_binding():
    new, changed = with_member(_policy(), "roles/storage.objectAdmin", WI, True)
    assert changed and new["bindings"][-1] == {"role": "roles/storage.objectAdmin", "members": [WI]}
    assert new["bindings"][:3] == _policy()["bindings"]
    new, changed = with_member({"etag": "CAE="}, VIEWER, WI, True)
    assert changed and new == {"etag": "CAE=", "bindings": [{"role": VIEWER, "members": [WI]}]}


def test_grant_already_there_changes_nothing():
    new, changed = with_member(_policy(), VIEWER, SA, True)
    assert not changed and new == _policy()


def test_a_conditional_grant_is_not_the_grant():
    # WI has the role only under a condition: granting adds it unconditionally, removing finds nothing to remove.
    new, changed = with_member(_policy(), VIEWER, WI, True)
    assert changed and role_members(new, VIEWER) == sorted([SA, WI])
    new, changed = with_member(_policy(), VIEWER, WI, False)
    assert not changed and new == _policy()
    only_conditional = {"bindings": [{"role": VIEWER, "members": [WI], "condition": CONDITION}]}
    new, changed = with_member(only_conditional, VIEWER, WI, True)
    assert changed and new["bindings"] == only_conditional["bindings"] + [{"role": VIEWER, "members": [WI]}]


def test_remove_drops_a_binding_left_empty_only():
    policy = _policy()
    new, changed = with_member(policy, VIEWER, SA, False)
    assert changed and policy == _policy()
    assert new["bindings"] == [policy["bindings"][0], policy["bindings"][2]]
    assert new["etag"] == "CAE=" and new["version"] == 3
    policy["bindings"][1]["members"].append(OTHER)
    new, changed = with_member(policy, VIEWER, SA, False)
    assert changed and new["bindings"][1] == {"role": VIEWER, "members": [OTHER]}


def test_remove_takes_the_member_out_of_every_unconditional_binding_of_the_role():
    policy = {"bindings": [{"role": VIEWER, "members": [SA, OTHER]}, {"role": VIEWER, "members": [SA]}]}
    new, changed = with_member(policy, VIEWER, SA, False)
    assert changed and new == {"bindings": [{"role": VIEWER, "members": [OTHER]}]}


def test_remove_of_an_absent_member_changes_nothing():
    for policy in (_policy(), {}, {"bindings": []}):
        new, changed = with_member(policy, VIEWER, OTHER, False)
        assert not changed and new == policy


def test_role_members_are_sorted_and_unconditional():
    policy = {"bindings": [{"role": VIEWER, "members": [SA, WI]}, {"role": VIEWER, "members": [OTHER]},
                           {"role": VIEWER, "members": ["user:conditional@example.com"], "condition": CONDITION},
                           {"role": "roles/storage.objectAdmin", "members": ["user:admin@example.com"]}]}
    assert role_members(policy, VIEWER) == [WI, SA, OTHER]
    assert role_members({}, VIEWER) == []


@pytest.mark.parametrize("member", [
    WI, SA, OTHER, "group:readers@example.com", "domain:example.com", "allUsers", "allAuthenticatedUsers",
    "principalSet://iam.googleapis.com/projects/424242424242/locations/global/workloadIdentityPools/"
    "gcsfront-local.svc.id.goog/namespace/gcsfront",
    "deleted:serviceAccount:old@my-project.iam.gserviceaccount.com?uid=123456789",
])
def test_members_that_are_principals(member):
    assert member_problem(member) is None


@pytest.mark.parametrize("member", [
    "", "gcsfront@my-project.iam.gserviceaccount.com", "serviceAccount:", "user: a@example.com",
    "user:a@example.com\n", "principal:iam.googleapis.com/x", "principal://", "principalSet:/x", "allusers",
    "ServiceAccount:x@example.com", ":x",
])
def test_members_that_are_not(member):
    assert member_problem(member).startswith("member %r is not an IAM principal" % member)


def test_roles():
    for role in (VIEWER, "projects/my-project/roles/gcsfrontReader", "organizations/42/roles/reader.v2"):
        assert role_problem(role) is None
    for role in ("storage.objectViewer", "roles/", "roles/a b", "projects//roles/x", "roles/storage.objectViewer\n"):
        assert role_problem(role).startswith("role %r is not an IAM role" % role)


# The module against a fake IAM endpoint.

class FakeIam:
    """GET/PUT /storage/v1/b/<bucket>/iam for one bucket, with a GCS-like etag that changes on every write.
    fail maps a method to a status to answer it with; race_puts makes that many PUTs meet a concurrent change."""

    def __init__(self, bucket):
        self.bucket = bucket
        self.lock = threading.Lock()
        self.generation = 1
        self.policy = {k: v for k, v in _policy().items() if k != "etag"}
        self.policy["resourceId"] = "projects/_/buckets/%s" % bucket
        self.requests = []
        self.fail = {}
        self.race_puts = 0

    def etag(self):
        return "CA%d=" % self.generation

    def current(self):
        return dict(copy.deepcopy(self.policy), etag=self.etag())

    def puts(self):
        return [body for method, _query, body in self.requests if method == "PUT"]

    def answer(self, method, path, body):
        """(status, json body) for one request."""
        url = urlsplit(path)
        with self.lock:
            self.requests.append((method, parse_qs(url.query), body))
            if url.path != "/storage/v1/b/%s/iam" % self.bucket:
                return 404, _error(404, "The specified bucket does not exist.")
            if method in self.fail:
                status = self.fail[method]
                needs = "get" if method == "GET" else "set"
                return status, _error(status, "anonymous caller does not have storage.buckets.%sIamPolicy access to "
                                              "the Google Cloud Storage bucket." % needs)
            if method == "GET":
                return 200, self.current()
            if self.race_puts:
                self.race_puts -= 1
                self.policy["bindings"].append({"role": "roles/storage.objectAdmin", "members": [OTHER]})
                self.generation += 1
            if body.get("etag") != self.etag():
                return 412, _error(412, "At least one of the pre-conditions you specified did not hold.")
            self.policy = dict({k: v for k, v in body.items() if k != "etag"}, kind="storage#policy",
                               resourceId="projects/_/buckets/%s" % self.bucket)
            self.generation += 1
            return 200, self.current()


def _error(status, message):
    return {"error": {"code": status, "message": message, "errors": [{"message": message, "reason": "x"}]}}


@pytest.fixture
def fake():
    iam = FakeIam("gcsfront-local")
    iam.endpoint, stop = stand_in(lambda method, path, body, _headers: iam.answer(method, path, body))
    yield iam
    stop()


def run(fake, *flags, **args):
    """(state, result, other output) of one ad-hoc run of the module; the other output holds a --diff."""
    args = dict(dict(bucket=fake.bucket, role=VIEWER, member=WI, gcs_endpoint=fake.endpoint, gcs_anonymous=True),
                **args)
    return adhoc("gcsfront.gke.gcs_bucket_iam_member", args, *flags)


def test_grant_then_grant_again(fake):
    state, r, _shown = run(fake)
    assert state == "CHANGED" and r["changed"] is True, r
    assert r["bindings"] == [WI, SA] and r["etag"] == "CA2=" and r["previous_bindings"] == [SA], r
    (get_method, get_query, _get_body), (put_method, _put_query, put) = fake.requests
    assert (get_method, get_query, put_method) == ("GET", {"optionsRequestedPolicyVersion": ["3"]}, "PUT")
    assert put["etag"] == "CA1=" and put["version"] == 3
    assert put["bindings"] == [_policy()["bindings"][0], {"role": VIEWER, "members": [SA, WI]},
                               _policy()["bindings"][2]]

    state, r, _shown = run(fake)
    assert state == "SUCCESS" and r["changed"] is False and r["bindings"] == [WI, SA] and r["etag"] == "CA2=", r
    assert r["previous_bindings"] == [WI, SA], r
    assert len(fake.puts()) == 1


def test_check_mode_writes_nothing_and_diff_shows_the_roles_members(fake):
    state, r, shown = run(fake, "--check", "--diff")
    assert state == "CHANGED" and r["changed"] is True and r["bindings"] == [WI, SA] and r["etag"] == "CA1=", r
    assert r["previous_bindings"] == [SA], r  # what a look-only run tells: the member does not hold the role
    assert fake.puts() == [] and fake.policy["bindings"] == _policy()["bindings"]
    lines = shown.splitlines()
    assert "--- before: gs://gcsfront-local roles/storage.objectViewer" in lines, shown
    assert "+++ after: gs://gcsfront-local roles/storage.objectViewer" in lines, shown
    assert "+" + WI in lines and " " + SA in lines, shown
    assert not [line for line in lines if line.startswith("-") and not line.startswith("---")], shown


def test_remove_then_remove_again(fake):
    state, r, shown = run(fake, "--diff", member=SA, state="absent")
    assert state == "CHANGED" and r["bindings"] == [] and r["etag"] == "CA2=", r
    assert "-" + SA in shown.splitlines(), shown
    assert fake.policy["bindings"] == [_policy()["bindings"][0], _policy()["bindings"][2]]
    state, r, _shown = run(fake, member=SA, state="absent")
    assert state == "SUCCESS" and r["changed"] is False and r["bindings"] == [], r
    assert len(fake.puts()) == 1


def test_a_concurrent_change_is_read_again_and_kept(fake):
    fake.race_puts = 1
    state, r, _shown = run(fake)
    assert state == "CHANGED" and r["bindings"] == [WI, SA], r
    assert [method for method, _q, _b in fake.requests] == ["GET", "PUT", "GET", "PUT"]
    assert [put["etag"] for put in fake.puts()] == ["CA1=", "CA2="]
    assert {"role": "roles/storage.objectAdmin", "members": [OTHER]} in fake.policy["bindings"]
    assert {"role": VIEWER, "members": [SA, WI]} in fake.policy["bindings"]


def test_gives_up_after_three_concurrent_changes(fake):
    fake.race_puts = 5
    state, r, _shown = run(fake)
    assert state == "FAILED!" and "\n" not in r["msg"], r
    assert r["msg"].startswith("cannot set the IAM policy of gs://gcsfront-local: it changed during each of 3 "), r
    assert len(fake.puts()) == 3


@pytest.mark.parametrize("method, verb, needs", [("GET", "read", "get"), ("PUT", "set", "set")])
def test_forbidden_says_which_permission(fake, method, verb, needs):
    fake.fail[method] = 403
    state, r, _shown = run(fake)
    assert state == "FAILED!", r
    assert r["msg"] == (
        "cannot %s the IAM policy of gs://gcsfront-local: 403 anonymous caller does not have "
        "storage.buckets.%sIamPolicy access to the Google Cloud Storage bucket. (the credentials need "
        "storage.buckets.%sIamPolicy)" % (verb, needs, needs)), r


def test_missing_bucket(fake):
    state, r, _shown = run(fake, bucket="no-such-bucket")
    assert state == "FAILED!" and r["msg"] == "cannot read the IAM policy of gs://no-such-bucket: 404 bucket not found"


def test_other_errors_name_the_endpoint(fake):
    fake.fail["GET"] = 500
    state, r, _shown = run(fake)
    assert state == "FAILED!" and r["msg"] == (
        "cannot read the IAM policy of gs://gcsfront-local: the GCS JSON API at %s answered 500" % fake.endpoint), r


def test_a_bad_member_or_role_fails_before_any_call(fake):
    state, r, _shown = run(fake, member="gcsfront@my-project.iam.gserviceaccount.com")
    assert state == "FAILED!" and r["msg"].startswith(
        "member 'gcsfront@my-project.iam.gserviceaccount.com' is not an IAM principal: use kind:value"), r
    state, r, _shown = run(fake, role="storage.objectViewer")
    assert state == "FAILED!" and r["msg"].startswith("role 'storage.objectViewer' is not an IAM role"), r
    assert fake.requests == []
