# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""A small Cloud Storage JSON API client on google-auth: read, stat and upload objects, create buckets."""

from __future__ import annotations

import base64
import hashlib
import json
import traceback
from urllib.parse import quote

from ansible.module_utils.basic import env_fallback
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line

try:
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2 import service_account

    HAS_GOOGLE_AUTH = True
    GOOGLE_AUTH_IMPORT_ERROR = None
except ImportError:
    HAS_GOOGLE_AUTH = False
    GOOGLE_AUTH_IMPORT_ERROR = traceback.format_exc()

try:
    import requests

    HAS_REQUESTS = True
except ImportError:
    HAS_REQUESTS = False

READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only"
READ_WRITE = "https://www.googleapis.com/auth/devstorage.read_write"

GCS_ARG_SPEC = dict(
    gcs_endpoint=dict(type="str", default="https://storage.googleapis.com"),
    gcs_credentials_file=dict(type="path", fallback=(env_fallback, ["GOOGLE_APPLICATION_CREDENTIALS"])),
    gcs_credentials_content=dict(type="str", no_log=True),
    gcs_anonymous=dict(type="bool", default=False),
)
GCS_MUTUALLY_EXCLUSIVE = [("gcs_credentials_file", "gcs_credentials_content", "gcs_anonymous")]


class GcsError(Exception):
    """A failed Cloud Storage call; status is the HTTP status, or None when no answer came."""

    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def session_from_params(params, scopes=(READ_ONLY,)):
    """An authorized requests session for the module's gcs_* options."""
    if params.get("gcs_anonymous"):
        return requests.Session()
    info = None
    source = None
    if params.get("gcs_credentials_content"):
        source = "gcs_credentials_content"
        try:
            info = json.loads(params["gcs_credentials_content"])
        except ValueError:
            raise GcsError("gcs_credentials_content is not JSON") from None
    elif params.get("gcs_credentials_file"):
        source = params["gcs_credentials_file"]
        try:
            with open(source) as f:
                info = json.load(f)
        except (OSError, ValueError) as e:
            why = getattr(e, "strerror", None) or "not JSON"
            raise GcsError("cannot read service-account key %s: %s" % (source, why)) from None
    if info is None:
        raise GcsError("no credentials: set gcs_credentials_file (or GOOGLE_APPLICATION_CREDENTIALS), "
                       "gcs_credentials_content, or gcs_anonymous")
    try:
        creds = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
    except (ValueError, KeyError) as e:
        raise GcsError("%s is not a usable service-account key (%s)" % (source, type(e).__name__)) from None
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
                           r.status_code)
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


def md5_b64(data):
    """The object's md5Hash as the JSON API reports it."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # nosec - GCS's own content hash
