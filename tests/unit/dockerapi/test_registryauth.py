"""X-Registry-Auth decoding: the encodings dockerd reads, "no credentials", and 400s."""

from __future__ import annotations

import base64
import json

import pytest
from muelle.types.v1 import types_pb2

from services.dockerapi.errors import ApiError
from services.dockerapi.registryauth import credentials


def _std(doc: object) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_username_password_url_safe_without_padding() -> None:
    # "?>" makes '/' and '+' in standard base64: the URL-safe form must be read too.
    doc = {"username": "u", "password": "p?>?>", "serveraddress": "https://reg:5000/v2/"}
    header = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    assert credentials(header) == types_pb2.RegistryCredentials(
        server="reg:5000", username="u", password="p?>?>")


def test_standard_alphabet_with_padding() -> None:
    doc = {"username": "u", "password": "p?>?>"}
    assert "/" in _std(doc) or "+" in _std(doc)
    assert credentials(_std(doc)) == types_pb2.RegistryCredentials(
        username="u", password="p?>?>")


def test_auth_field_and_registry_token() -> None:
    auth = base64.b64encode(b"alice:pa:ss").decode()
    assert credentials(_std({"auth": auth})) == types_pb2.RegistryCredentials(
        username="alice", password="pa:ss")
    assert credentials(_std({"registrytoken": "tok"})) == types_pb2.RegistryCredentials(
        registry_token="tok")


@pytest.mark.parametrize("header", ["", "e30=", "e30", _std({}),
                                    _std({"serveraddress": "reg:5000"})])
def test_none_means_the_stored_logins(header: str) -> None:
    assert credentials(header) is None


@pytest.mark.parametrize("header", ["!!!", base64.b64encode(b"not json").decode(),
                                    _std(["a"]), _std({"username": 1}),
                                    _std({"auth": base64.b64encode(b"nocolon").decode()})])
def test_malformed_is_a_400_naming_the_header(header: str) -> None:
    with pytest.raises(ApiError) as err:
        credentials(header)
    assert err.value.status == 400
    assert err.value.message.startswith("invalid X-Registry-Auth header: ")


def test_identity_token_is_refused_clearly() -> None:
    with pytest.raises(ApiError) as err:
        credentials(_std({"identitytoken": "refresh"}))
    assert err.value.status == 400 and "identitytoken" in err.value.message
