"""module_utils._sa_key: one-line reasons that never quote key material."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import GcsError, session_from_params
from ansible_collections.gcsfront.gke.plugins.module_utils._sa_key import InvalidKey, credentials, fingerprint, load, parse

SECRET_MARK = "MIIE-never-print-me"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key(rsa_key):
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "p", "private_key_id": "0123abcd", "private_key": pem,
            "client_email": "frontend@p.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "http://127.0.0.1:4443/token"}


def test_a_valid_key_parses_and_makes_credentials(key):
    info = parse(json.dumps(key), "key.json")
    creds = credentials(info, "key.json", ["https://www.googleapis.com/auth/devstorage.read_only"])
    assert creds.service_account_email == key["client_email"]


def test_fingerprint_is_the_public_half(key, rsa_key):
    other = dict(key, private_key_id="changed", client_email="x@p.iam.gserviceaccount.com")
    assert fingerprint(key) == fingerprint(other)
    fresh = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert fingerprint(key) != fingerprint(dict(key, private_key=fresh.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()))


@pytest.mark.parametrize("mutate, reason", [
    (lambda k: '{"private_key": "%s", ' % SECRET_MARK, "is not JSON (error at line 1"),
    (lambda k: json.dumps([SECRET_MARK]), "is not a JSON object"),
    (lambda k: json.dumps(dict(k, type="authorized_user")), "is a 'authorized_user' key, not a service-account"),
    (lambda k: json.dumps({key: v for key, v in k.items() if key != "token_uri"}), "lacks token_uri"),
    (lambda k: json.dumps(dict(k, private_key="", client_email=None)), "lacks client_email, private_key"),
    (lambda k: json.dumps(dict(k, client_email="nobody")), "client_email 'nobody' is not an email address"),
])
def test_bad_keys_get_one_line_without_key_material(key, mutate, reason):
    key["private_key"] = key["private_key"].replace("-----\n", "-----\n" + SECRET_MARK, 1)
    with pytest.raises(InvalidKey) as e:
        parse(mutate(key), "key.json")
    message = str(e.value)
    assert reason in message and message.startswith("key.json")
    assert "\n" not in message and SECRET_MARK not in message and "PRIVATE KEY" not in message


def test_unparsable_private_key_is_named_without_its_content(key):
    info = parse(json.dumps(dict(key, private_key="-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n"
                                 % SECRET_MARK)), "key.json")
    with pytest.raises(InvalidKey) as e:
        credentials(info, "key.json", [])
    assert str(e.value) == "private_key in key.json does not parse as a PEM RSA private key"


def test_load_reads_a_key_file_and_names_it(key, tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    info, creds = load(["https://www.googleapis.com/auth/devstorage.read_only"], path=str(path))
    assert info["client_email"] == creds.service_account_email == key["client_email"]
    path.write_text(json.dumps(dict(key, type="authorized_user")))
    with pytest.raises(InvalidKey) as e:
        load([], path=str(path))
    assert str(e.value).startswith("%s is a 'authorized_user' key" % path)
    with pytest.raises(InvalidKey) as e:
        load([], path=str(tmp_path / "absent.json"))
    assert str(e.value) == "cannot read service-account key %s: No such file or directory" % (tmp_path / "absent.json")


def test_load_names_the_content_by_its_option(key):
    with pytest.raises(InvalidKey) as e:
        load([], content=json.dumps(dict(key, client_email="nobody")), content_source="gcs_credentials_content")
    assert str(e.value) == "gcs_credentials_content: client_email 'nobody' is not an email address"


def test_the_gcs_options_load_through_the_same_loader(key):
    params = {"gcs_anonymous": False, "gcs_credentials_file": None, "gcs_credentials_content": "{ nope"}
    with pytest.raises(GcsError) as e:
        session_from_params(params)
    assert str(e.value) == "gcs_credentials_content is not JSON (error at line 1, column 3)"
    session = session_from_params(dict(params, gcs_credentials_content=json.dumps(key)))
    assert session.credentials.service_account_email == key["client_email"]
