# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""Loading and validation of Google service-account keys, the collection's one key loader. Messages never contain
key material."""

from __future__ import annotations

import hashlib
import json

REQUIRED = ("client_email", "private_key", "private_key_id", "token_uri")


class InvalidKey(Exception):
    pass


def parse(text, source):
    """The key's dict after structural checks; raises InvalidKey with a one-line reason."""
    try:
        info = json.loads(text)
    except ValueError as e:
        # The position only: the decoder's message may quote the content.
        raise InvalidKey("%s is not JSON (error at line %s, column %s)" % (source, e.lineno, e.colno)) from None
    if not isinstance(info, dict):
        raise InvalidKey("%s is not a JSON object" % source)
    kind = info.get("type")
    if kind != "service_account":
        raise InvalidKey("%s is a %r key, not a service-account key (type must be 'service_account')"
                         % (source, kind if isinstance(kind, str) else type(kind).__name__))
    missing = [k for k in REQUIRED if not isinstance(info.get(k), str) or not info.get(k)]
    if missing:
        raise InvalidKey("%s lacks %s" % (source, ", ".join(missing)))
    if "@" not in info["client_email"]:
        raise InvalidKey("%s: client_email %r is not an email address" % (source, info["client_email"]))
    return info


def load(scopes, path=None, content=None, content_source="the key content"):
    """(the key's dict, google-auth credentials) from the key file at path, else from the key's text content (named
    content_source in messages); raises InvalidKey with a one-line reason."""
    source = content_source
    if path:
        source = path
        try:
            with open(path) as f:
                content = f.read()
        except OSError as e:
            raise InvalidKey("cannot read service-account key %s: %s" % (path, e.strerror)) from None
    info = parse(content, source)
    return info, credentials(info, source, scopes)


def credentials(info, source, scopes):
    """google-auth credentials from a parsed key; raises InvalidKey when the private key does not parse."""
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
    except (ValueError, TypeError, IndexError):
        raise InvalidKey("private_key in %s does not parse as a PEM RSA private key" % source) from None


def fingerprint(info):
    """sha256 (hex) of the DER public half of the key's private key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
