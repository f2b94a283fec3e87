# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""A small Cloud Storage JSON API client on google-auth: read, stat and upload objects, create buckets, read and
set a bucket's IAM policy; and the pure edit of one member of such a policy."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import traceback
from urllib.parse import quote

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._sa_key import InvalidKey, load

try:
    # google-auth's requests transport needs requests, and the client uses it directly too.
    import requests
    import google.auth.exceptions
    import google.auth.transport.requests

    GOOGLE_AUTH_IMPORT_ERROR = None
    MISSING_LIBRARY = None
except ImportError as e:
    GOOGLE_AUTH_IMPORT_ERROR = traceback.format_exc()
    MISSING_LIBRARY = "requests" if e.name == "requests" else "google-auth"
HAS_GOOGLE_AUTH = GOOGLE_AUTH_IMPORT_ERROR is None

READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only"
READ_WRITE = "https://www.googleapis.com/auth/devstorage.read_write"
# read_write covers objects only; reading and setting IAM policies needs full control.
FULL_CONTROL = "https://www.googleapis.com/auth/devstorage.full_control"

GCS_ARG_SPEC = dict(
    gcs_endpoint=dict(type="str", default="https://storage.googleapis.com"),
    gcs_credentials_file=dict(type="path", fallback=(env_fallback, ["GOOGLE_APPLICATION_CREDENTIALS"])),
    gcs_credentials_content=dict(type="str", no_log=True),
    gcs_anonymous=dict(type="bool", default=False),
)
GCS_MUTUALLY_EXCLUSIVE = [("gcs_credentials_file", "gcs_credentials_content", "gcs_anonymous")]


def require_libraries(module):
    """Fail the module, naming the library, when google-auth or requests is missing."""
    if MISSING_LIBRARY:
        module.fail_json(msg=missing_required_lib(MISSING_LIBRARY), exception=GOOGLE_AUTH_IMPORT_ERROR)


class GcsError(Exception):
    """A failed Cloud Storage call; status is the HTTP status, or None when no answer came; detail is the message of
    the JSON API's error body, when it had one."""

    def __init__(self, msg, status=None, detail=None):
        super().__init__(msg)
        self.status = status
        self.detail = detail


def session_from_params(params, scopes=(READ_ONLY,)):
    """An authorized requests session for the module's gcs_* options."""
    if params.get("gcs_anonymous"):
        return requests.Session()
    if not params.get("gcs_credentials_content") and not params.get("gcs_credentials_file"):
        raise GcsError("no credentials: set gcs_credentials_file (or GOOGLE_APPLICATION_CREDENTIALS), "
                       "gcs_credentials_content, or gcs_anonymous")
    content = params.get("gcs_credentials_content")
    try:
        _info, creds = load(scopes, path=None if content else params["gcs_credentials_file"], content=content,
                            content_source="gcs_credentials_content")
    except InvalidKey as e:
        raise GcsError(str(e)) from None
    return google.auth.transport.requests.AuthorizedSession(creds)


class GcsClient:
    def __init__(self, endpoint, session, timeout=30):
        self.endpoint = endpoint.rstrip("/")
        self.session = session
        self.timeout = timeout

    def _call(self, method, url, what, ok=(200,), **kwargs):
        try:
            r = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except google.auth.exceptions.RefreshError as e:
            raise GcsError("cannot get a token for %s: %s" % (what, first_line(e, 200)), 401) from None
        except requests.RequestException as e:
            raise GcsError("%s: no answer from %s (%s)" % (what, self.endpoint, type(e).__name__)) from None
        if r.status_code not in ok:
            raise GcsError("%s: the GCS JSON API at %s answered %s" % (what, self.endpoint, r.status_code),
                           r.status_code, _error_detail(r))
        return r

    def _object_url(self, bucket, name):
        return "%s/storage/v1/b/%s/o/%s" % (self.endpoint, quote(bucket, safe=""), quote(name, safe=""))

    def read(self, bucket, name):
        """The object's bytes."""
        return self._call("GET", self._object_url(bucket, name), "gs://%s/%s" % (bucket, name),
                          params={"alt": "media"}).content

    def stat(self, bucket, name):
        """The object's metadata, or None when it does not exist."""
        try:
            return self._call("GET", self._object_url(bucket, name), "gs://%s/%s" % (bucket, name)).json()
        except GcsError as e:
            if e.status == 404:
                return None
            raise

    def list_page(self, bucket, prefix="", max_results=1000, fields="nextPageToken,items(name)", page_token=None):
        """One page of objects.list: {"items": [...], "nextPageToken": ...}."""
        params = {"prefix": prefix, "maxResults": max_results, "fields": fields}
        if page_token:
            params["pageToken"] = page_token
        return self._call("GET", "%s/storage/v1/b/%s/o" % (self.endpoint, quote(bucket, safe="")),
                          "listing gs://%s/%s" % (bucket, prefix), params=params).json()

    def list_names(self, bucket, prefix=""):
        """Every object name under prefix (objects.list, 1,000 names per call)."""
        names, token = [], None
        while True:
            page = self.list_page(bucket, prefix, page_token=token)
            names.extend(item["name"] for item in page.get("items", []))
            token = page.get("nextPageToken")
            if not token:
                return names

    def bucket_exists(self, bucket):
        try:
            self._call("GET", "%s/storage/v1/b/%s" % (self.endpoint, quote(bucket, safe="")), "gs://%s" % bucket)
            return True
        except GcsError as e:
            if e.status == 404:
                return False
            raise

    def create_bucket(self, bucket, project):
        self._call("POST", "%s/storage/v1/b" % self.endpoint, "creating gs://%s" % bucket, ok=(200, 409),
                   params={"project": project}, json={"name": bucket})

    def upload(self, bucket, name, data, content_type):
        return self._call("POST", "%s/upload/storage/v1/b/%s/o" % (self.endpoint, quote(bucket, safe="")),
                          "uploading gs://%s/%s" % (bucket, name),
                          params={"uploadType": "media", "name": name}, data=data,
                          headers={"Content-Type": content_type}).json()

    def delete(self, bucket, name):
        self._call("DELETE", self._object_url(bucket, name), "deleting gs://%s/%s" % (bucket, name), ok=(200, 204))

    def get_iam_policy(self, bucket):
        """The bucket's IAM policy, asked for as version 3 so that conditional bindings come back whole."""
        return self._iam("GET", bucket, "read", params={"optionsRequestedPolicyVersion": 3})

    def set_iam_policy(self, bucket, policy):
        """Replace the bucket's IAM policy with `policy` and return the stored one. With the etag of the policy read,
        a concurrent change makes this fail with status 412."""
        return self._iam("PUT", bucket, "set", json=policy)

    def _iam(self, method, bucket, verb, **kwargs):
        what = "cannot %s the IAM policy of gs://%s" % (verb, bucket)
        try:
            r = self._call(method, "%s/storage/v1/b/%s/iam" % (self.endpoint, quote(bucket, safe="")), what, **kwargs)
        except GcsError as e:
            if e.status == 403:
                raise GcsError("%s: 403 %s (the credentials need storage.buckets.%sIamPolicy)" % (
                    what, e.detail or "Forbidden", "get" if verb == "read" else "set"), 403, e.detail) from None
            if e.status == 404:
                raise GcsError("%s: 404 bucket not found" % what, 404, e.detail) from None
            raise
        try:
            return r.json()
        except ValueError:
            raise GcsError("%s: the GCS JSON API at %s answered %s without a JSON policy" % (
                what, self.endpoint, r.status_code), r.status_code) from None


def _error_detail(response):
    """The message of a JSON API error body ({"error": {"message": ...}}), on one line; None without one."""
    try:
        return first_line(response.json()["error"]["message"], 200) or None
    except (ValueError, KeyError, TypeError):
        return None


# An IAM principal: allUsers, allAuthenticatedUsers, principal://..., principalSet://..., or kind:value such as
# user:, group:, serviceAccount:, domain:, projectViewer: (deleted:serviceAccount:...?uid=... included).
_MEMBER_RE = re.compile(r"allUsers|allAuthenticatedUsers|principal(Set)?://[^\s/]\S*|[a-z][A-Za-z]*:[^\s/]\S*")
_ROLE_RE = re.compile(r"((projects|organizations)/[^/\s]+/)?roles/[A-Za-z0-9_.]+")


def member_problem(member):
    """Why `member` is not an IAM principal, or None when it looks like one."""
    if not _MEMBER_RE.fullmatch(member) or re.match(r"principal(Set)?:(?!//)", member):
        return ("member %r is not an IAM principal: use kind:value (user:, group:, serviceAccount:, domain:), "
                "principal://..., principalSet://..., allUsers or allAuthenticatedUsers" % member)
    return None


def role_problem(role):
    """Why `role` is not an IAM role name, or None when it looks like one."""
    if not _ROLE_RE.fullmatch(role):
        return "role %r is not an IAM role: use roles/NAME, projects/P/roles/NAME or organizations/O/roles/NAME" % role
    return None


def role_members(policy, role):
    """The sorted members of the unconditional bindings of `role` in `policy`."""
    return sorted({m for b in policy.get("bindings") or () if b.get("role") == role and not b.get("condition")
                   for m in b.get("members") or ()})


def with_member(policy, role, member, present):
    """(new_policy, changed): `policy` with `member` granted `role` (present) or no longer granted it (absent), by
    an unconditional binding. The input is never mutated. Conditional bindings are left alone (they are not the
    unconditional grant managed here), a binding this leaves empty is dropped, and everything else (version,
    etag, other bindings) is kept."""
    new = copy.deepcopy(policy)
    bindings = new.get("bindings") or []
    ours = [b for b in bindings if b.get("role") == role and not b.get("condition")]
    has = any(member in (b.get("members") or ()) for b in ours)
    if present == has:
        return new, False
    if present:
        if ours:
            ours[0]["members"] = list(ours[0].get("members") or ()) + [member]
        else:
            bindings.append({"role": role, "members": [member]})
    else:
        for b in ours:
            b["members"] = [m for m in b.get("members") or () if m != member]
        emptied = {id(b) for b in ours if not b["members"]}
        bindings = [b for b in bindings if id(b) not in emptied]
    new["bindings"] = bindings
    return new, True


def md5_b64(data):
    """The object's md5Hash as the JSON API reports it."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # nosec - GCS's own content hash


# The smoke fetch reads what it picks twice (from the bucket, through the front): keep it small.
SMOKE_PICK_MAX_BYTES = 1024 * 1024


def pick_smoke_object(items, preferred="index.html"):
    """The object a smoke fetch should compare, from one objects.list page (items with name and size).

    The preferred name when the page has it, else the smallest non-empty object of at most SMOKE_PICK_MAX_BYTES
    (the first by name among equals; an empty one only when there is no other); folder placeholders (names ending
    in /) never. None when nothing fits.
    """
    objects = [i for i in items if not i["name"].endswith("/")]
    if any(i["name"] == preferred for i in objects):
        return preferred
    small = [i for i in objects if int(i.get("size", 0)) <= SMOKE_PICK_MAX_BYTES]
    if not small:
        return None
    return min(small, key=lambda i: (int(i.get("size", 0)) == 0, int(i.get("size", 0)), i["name"]))["name"]
