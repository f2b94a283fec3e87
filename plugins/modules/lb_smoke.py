#!/usr/bin/python
# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lb_smoke
short_description: Wait for a Service's LoadBalancer address, then prove it serves a bucket object
version_added: 0.1.0
description:
  - Waits until a Kubernetes Service of type LoadBalancer has an address (IP or host name), retrying passing API
    errors, on a monotonic clock.
  - Then fetches an object through that address and compares its sha256 with the object read from the bucket
    through the Cloud Storage JSON API (or an emulator of it), retrying until the deadline while a rollout or a cold
    mount settles.
  - Also checks that C(HEAD) gives the object's size, that a C(Range) request gives its first byte with 206, and
    that a missing path gives 404.
  - With O(address_only=true), it only waits for the address and returns it with the Service's base URL, for a
    caller that talks to the Service itself (no HTTP request, no bucket).
  - Read-only. It never returns or logs the body.
author:
  - gcsfront maintainers (@gcsfront)
requirements:
  - kubernetes
  - google-auth
  - requests
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gcsfront.gke.gcs
  - ansible.builtin.action_common_attributes
  - gcsfront.gke.attributes.read_only
options:
  name:
    description: Name of the Service.
    type: str
    required: true
  namespace:
    description: Namespace of the Service.
    type: str
    default: default
  port:
    description: Port of the Service to connect to. Defaults to its port named as O(scheme), else its first port.
    type: int
  scheme:
    description: Scheme of the URL.
    type: str
    choices: [http, https]
    default: http
  path:
    description:
      - URL path of the object, for example V(/index.html). Defaults to C(/) and O(object).
      - Without O(path) and O(object), the module picks the object from the first page of the bucket's listing
        (up to 1,000 names), C(index.html) when the bucket has it, else the smallest non-empty object of at most
        1 MiB. RV(object) says which. An empty bucket (or one with nothing that small) leaves only the 404 of
        O(missing_path) to check, with a warning.
    type: str
  bucket:
    description: The bucket the Service serves. Required unless O(address_only=true).
    type: str
  address_only:
    description:
      - Only wait for the Service's LoadBalancer address and return RV(address) and RV(url), with no HTTP request.
      - O(bucket), O(object), O(path), O(missing_path), O(server_name) and O(ca_path) are then an error.
    type: bool
    default: false
  object:
    description: Name of the object in the bucket. Defaults to O(path) without its leading C(/).
    type: str
  missing_path:
    description: A path that must answer 404.
    type: str
    default: /gcsfront-smoke-missing-object
  wait_timeout:
    description: Seconds to wait for the address and then for a matching answer, in all.
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two attempts.
    type: int
    default: 5
  request_timeout:
    description: Seconds one HTTP request may take.
    type: int
    default: 10
  validate_certs:
    description: Verify the LoadBalancer's certificate with O(scheme=https).
    type: bool
    default: true
    aliases: [lb_validate_certs]
  server_name:
    description:
      - With O(scheme=https), the host name the certificate names. The module connects to the LoadBalancer's
        address, presents this name (SNI), checks the certificate against it and sends it as C(Host), as
        C(curl --resolve NAME:PORT:ADDRESS) does.
    type: str
  ca_path:
    description:
      - With O(scheme=https), a PEM bundle of the CAs the certificate is checked against, for a private CA.
        Defaults to the system's.
    type: path
seealso:
  - module: kubernetes.core.k8s
  - module: gcsfront.gke.service_account_key
"""

EXAMPLES = r"""
---
- name: Wait for the frontend's LoadBalancer and check it serves index.html from the bucket.
  gcsfront.gke.lb_smoke:
    context: gke_my-project_asia-northeast1-a_gcsfront-cluster1
    name: gcsfront
    namespace: gcsfront
    path: /index.html
    bucket: my-project-gcsfront-site
    gcs_credentials_file: ~/.config/gcsfront/key.json
  register: smoke

- name: The same against the local substrate's GCS emulator.
  gcsfront.gke.lb_smoke:
    context: gcsfront-local
    name: gcsfront
    namespace: gcsfront
    path: /file2.png
    bucket: gcsfront-local
    gcs_endpoint: http://10.254.254.17:4443
    gcs_credentials_file: /var/lib/gcsfront/gcs-emulator/service-account/service-account.json
    wait_timeout: 120

- name: Wait for a Service's LoadBalancer address only, to talk to the Service on port 4444.
  gcsfront.gke.lb_smoke:
    name: gcs-proxy
    namespace: gcsfront-bench
    port: 4444
    address_only: true
  register: proxy_lb

- name: Use its base URL.
  ansible.builtin.uri:
    url: "{{ proxy_lb.url }}/__proxy/config"
"""

RETURN = r"""
object:
  description: The object compared; null when the bucket had none to pick.
  returned: unless O(address_only=true)
  type: str
  sample: index.html
object_picked:
  description: Whether the module picked the object from the bucket's listing (neither O(path) nor O(object) given).
  returned: unless O(address_only=true)
  type: bool
  sample: true
address:
  description: The Service's LoadBalancer address.
  returned: when the Service got one
  type: str
  sample: 10.254.254.18
url:
  description:
    - The URL that was fetched.
    - With O(address_only=true), the Service's base URL, without a trailing slash.
  returned: when the Service got an address
  type: str
  sample: http://10.254.254.18:80/index.html
port:
  description: The Service port the URL names.
  returned: when the Service got an address
  type: int
  sample: 80
status:
  description: HTTP status of the last GET.
  returned: when the Service got an address, unless O(address_only=true)
  type: int
  sample: 200
bytes:
  description: Size of the served body.
  returned: success, when an object was compared
  type: int
  sample: 195
sha256:
  description: sha256 of the served body.
  returned: success, when an object was compared
  type: str
  sample: 3a1f0b5e8c0d4b0f0f7d7a6c3b8e2d1f4a5b6c7d8e9f00112233445566778899
object_sha256:
  description: sha256 of the object in the bucket.
  returned: success, when an object was compared
  type: str
  sample: 3a1f0b5e8c0d4b0f0f7d7a6c3b8e2d1f4a5b6c7d8e9f00112233445566778899
matched:
  description: Whether the served body is the object's.
  returned: success, when an object was compared
  type: bool
  sample: true
attempts:
  description: GET attempts until the answer (none with O(address_only=true)).
  returned: always
  type: int
  sample: 1
elapsed:
  description: Seconds spent, waiting included.
  returned: always
  type: float
  sample: 2.5
checks:
  description: Status of the HEAD, Range and missing-path requests.
  returned: success
  type: dict
  sample: {head: 200, range: 206, missing: 404}
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.six.moves.urllib.error import URLError
from ansible.module_utils.six.moves.urllib.parse import quote
from ansible_collections.gcsfront.gke.plugins.module_utils._errors import first_line
from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import (
    GCS_ARG_SPEC, GCS_MUTUALLY_EXCLUSIVE, HAS_GOOGLE_AUTH, GOOGLE_AUTH_IMPORT_ERROR, GcsClient, GcsError,
    pick_smoke_object, session_from_params)
from ansible_collections.gcsfront.gke.plugins.module_utils._http_check import compare, digest, fetch_until, request
from ansible_collections.gcsfront.gke.plugins.module_utils._waiter import lb_address, wait

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client

    K8S_IMPORT_ERROR = None
except ImportError:
    AUTH_ARG_SPEC = {}
    K8S_IMPORT_ERROR = traceback.format_exc()


# The options of the fetch, an error with address_only.
FETCH_ONLY = ("bucket", "object", "path", "missing_path", "server_name", "ca_path")


def argument_spec():
    spec = dict(AUTH_ARG_SPEC)
    spec.pop("validate_certs", None)  # ours is about the LoadBalancer; the API's comes from the kubeconfig
    spec.update(GCS_ARG_SPEC)
    spec.update(
        name=dict(type="str", required=True),
        namespace=dict(type="str", default="default"),
        port=dict(type="int"),
        scheme=dict(type="str", choices=["http", "https"], default="http"),
        path=dict(type="str"),
        bucket=dict(type="str"),
        object=dict(type="str"),
        address_only=dict(type="bool", default=False),
        missing_path=dict(type="str", default="/gcsfront-smoke-missing-object"),
        wait_timeout=dict(type="int", default=300),
        wait_sleep=dict(type="int", default=5),
        request_timeout=dict(type="int", default=10),
        validate_certs=dict(type="bool", default=True, aliases=["lb_validate_certs"]),
        server_name=dict(type="str"),
        ca_path=dict(type="path"),
    )
    return spec


def wait_for_address(p, fail):
    """(address, Service dict) once the Service has a LoadBalancer address. A missing Service counts as waiting:
    it may be being created."""
    where = "Service %s/%s" % (p["namespace"], p["name"])
    # The client is made from the auth options alone: get_api_client(module=...) expects
    # kubernetes.core's own module class.
    auth = {k: p[k] for k in AUTH_ARG_SPEC if k in p and p[k] is not None}
    try:
        k8s = get_api_client(**auth)
    except Exception as e:  # pylint: disable=broad-exception-caught
        fail("Cannot reach the Kubernetes API for %s: %s" % (where, first_line(e, 300)))
    services = k8s.resource("Service", "v1")
    found = {}

    def fetch():
        svc = k8s.get(services, name=p["name"], namespace=p["namespace"]).to_dict()
        found["service"] = svc
        return svc

    address, _elapsed, last_error, _attempts = wait(fetch, lb_address, p["wait_timeout"], p["wait_sleep"])
    if not address:
        why = "the Service does not exist" if "service" not in found else "no address was assigned"
        if last_error is not None and "service" in found:
            why += "; last error: %s" % first_line(last_error, 200)
        fail("Timed out after %ds waiting for %s to get a LoadBalancer address (%s)" % (p["wait_timeout"], where, why))
    return address, found["service"]


def base_url(p, address, service):
    """(scheme://address:port, port): the port is O(port), else the Service's port named as the scheme, else its
    first."""
    ports = (service.get("spec") or {}).get("ports") or [{}]
    named = {item.get("name"): item.get("port") for item in ports}
    port = p["port"] or named.get(p["scheme"]) or ports[0].get("port") or 80
    host = "[%s]" % address if ":" in address else address
    return "%s://%s:%s" % (p["scheme"], host, port), port


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=GCS_MUTUALLY_EXCLUSIVE,
                           required_if=[("address_only", False, ("bucket",))], supports_check_mode=True)
    began = time.monotonic()
    p = module.params
    result = dict(changed=False, attempts=0)

    def fail(msg, **extra):
        module.fail_json(msg=msg, elapsed=round(time.monotonic() - began, 3), **dict(result, **extra))

    if p["address_only"]:
        # missing_path has a default: only a value other than it was set by the caller.
        given = [k for k in FETCH_ONLY if p[k] is not None
                 and not (k == "missing_path" and p[k] == module.argument_spec[k]["default"])]
        if given:
            fail("address_only waits for the address only, with no HTTP request: remove %s" % ", ".join(given))
    if K8S_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=K8S_IMPORT_ERROR)
    if p["address_only"]:
        address, service = wait_for_address(p, fail)
        url, port = base_url(p, address, service)
        module.exit_json(address=address, url=url, port=port, elapsed=round(time.monotonic() - began, 3), **result)
    if not HAS_GOOGLE_AUTH:
        module.fail_json(msg=missing_required_lib("google-auth"), exception=GOOGLE_AUTH_IMPORT_ERROR)

    if p["path"] is not None and not p["path"].startswith("/"):
        fail("path must start with '/': %s" % p["path"])
    obj = p["object"] or (p["path"] or "").lstrip("/") or None
    result.update(object_picked=obj is None)

    # 1. The object, from the bucket: fails fast when it is missing or the credentials are wrong.
    expected = None
    try:
        client = GcsClient(p["gcs_endpoint"], session_from_params(p), timeout=p["request_timeout"])
        if obj is None:
            obj = pick_smoke_object(client.list_page(p["bucket"], fields="items(name,size)").get("items", []))
        if obj is not None:
            expected = client.read(p["bucket"], obj)
    except GcsError as e:
        if e.status == 404:
            fail("Object gs://%s/%s not found in the bucket (GCS JSON API at %s answered 404)"
                 % (p["bucket"], obj, p["gcs_endpoint"]) if obj else
                 "Bucket gs://%s not found (GCS JSON API at %s answered 404)" % (p["bucket"], p["gcs_endpoint"]))
        fail("Cannot read %s from the bucket: %s" % ("gs://%s/%s" % (p["bucket"], obj) if obj else "a listing", e))
    result.update(object=obj)
    if obj is None:
        module.warn("gs://%s has no object of at most 1 MiB in its first 1,000 names to compare: only the 404 of %s "
                    "was checked (set path or object)" % (p["bucket"], p["missing_path"]))

    # 2. The Service's address.
    address, service = wait_for_address(p, fail)
    base, port = base_url(p, address, service)
    url = base + (p["path"] or "/" + quote(obj or "", safe="/"))
    missing_url = base + p["missing_path"]
    result.update(address=address, port=port, url=url if obj else missing_url)

    # 3. The object through the LoadBalancer (or, with none, the missing path), until it answers or the deadline.
    remaining = max(1, p["wait_timeout"] - (time.monotonic() - began))
    tls = {"server_name": p["server_name"], "ca_path": p["ca_path"]}
    status, body, attempts, net_error = fetch_until(url if obj else missing_url, remaining, p["wait_sleep"],
                                                    p["request_timeout"], p["validate_certs"],
                                                    want=200 if obj else 404, **tls)
    result.update(status=status, attempts=attempts)
    if obj is None:
        if status != 404:
            fail("GET %s answered %s after %d attempts, not 404%s" % (
                missing_url, status if status is not None else "nothing", attempts,
                " (last error: %s)" % net_error if net_error else ""))
        module.exit_json(checks={"missing": status}, elapsed=round(time.monotonic() - began, 3), **result)
    if status != 200:
        fail("GET %s answered %s after %d attempts%s" % (url, status if status is not None else "nothing", attempts,
                                                         " (last error: %s)" % net_error if net_error else ""))
    matched, why = compare(body, expected)
    result.update(bytes=len(body), sha256=digest(body), object_sha256=digest(expected), matched=matched)
    if not matched:
        fail("Body served at %s does not match gs://%s/%s: %s" % (url, p["bucket"], obj, why))

    # 4. HEAD, Range and a missing path.
    checks = {}
    try:
        code, headers, _body = request(url, "HEAD", timeout=p["request_timeout"], validate_certs=p["validate_certs"],
                                       **tls)
        checks["head"] = code
        length = {k.lower(): v for k, v in headers.items()}.get("content-length")
        if code != 200 or str(length) != str(len(expected)):
            fail("HEAD %s answered %s with Content-Length %s, not 200 with %d" % (url, code, length, len(expected)),
                 checks=checks)
        if expected:
            code, _headers, part = request(url, headers={"Range": "bytes=0-0"}, timeout=p["request_timeout"],
                                           validate_certs=p["validate_certs"], **tls)
            checks["range"] = code
            if code != 206 or part != expected[:1]:
                fail("Range bytes=0-0 on %s answered %s with %d bytes, not 206 with the object's first byte"
                     % (url, code, len(part)), checks=checks)
        else:
            checks["range"] = None  # an empty object has no first byte to ask for
        code, _headers, _body = request(missing_url, timeout=p["request_timeout"], validate_certs=p["validate_certs"],
                                        **tls)
        checks["missing"] = code
        if code != 404:
            fail("GET %s answered %s, not 404" % (missing_url, code), checks=checks)
    except (URLError, OSError) as e:
        fail("Request to %s failed: %s" % (base, getattr(e, "reason", e)), checks=checks)

    module.exit_json(checks=checks, elapsed=round(time.monotonic() - began, 3), **result)


if __name__ == "__main__":
    main()
