"""Property-based fuzzing of the parsers of untrusted text (issue 19, "keep it fixed"):
whatever they are given they return a value or raise one of the typed errors of
vocab/errors.py, never another exception."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from services.core import config
from services.imagestore import manifest as store_manifest
from services.imagestore.registry_client import Content
from services.registry import auth, manifests
from tests.unit.fuzz.settings import FUZZ
from vocab import reference
from vocab.errors import MuelleError

# -- references ------------------------------------------------------------------------

_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=70)
_DOMAIN = st.one_of(
    st.builds(lambda labels, port: ".".join(labels) + (f":{port}" if port is not None
                                                         else ""),
              st.lists(_LABEL, min_size=1, max_size=4),
              st.none() | st.integers(0, 999999)),
    st.sampled_from(["localhost", "[::1]:5000", "docker.io", "index.docker.io"]))
_COMPONENT = st.from_regex(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*", fullmatch=True)
_REFERENCE_TEXT = st.builds(
    lambda domain, path, tag, digest: (f"{domain}/" if domain else "") + "/".join(path)
    + (f":{tag}" if tag else "") + (f"@sha256:{digest}" if digest else ""),
    st.none() | _DOMAIN,
    st.lists(_COMPONENT, min_size=1, max_size=3),
    st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,130}", fullmatch=True),
    st.none() | st.text("0123456789abcdef", min_size=64, max_size=64))


@FUZZ
@example("a" * 64 + ".example/x")  # a DNS label over 63 characters: IDNA refuses it
@given(st.one_of(st.text(), _REFERENCE_TEXT))
def test_reference_parse_is_a_reference_or_invalid_argument(text: str) -> None:
    try:
        ref = reference.parse(text)
    except MuelleError:
        return
    # What parses round-trips, and its host is one the HTTP client can encode (a label
    # over 63 characters once passed and failed later as UnicodeError).
    assert reference.parse(ref.canonical) == ref
    host = ref.domain.rsplit(":", 1)[0] if not ref.domain.startswith("[") else "x"
    host.encode("idna")


# -- WWW-Authenticate ------------------------------------------------------------------

_CHALLENGE = st.builds(
    lambda scheme, params: scheme + " " + ",".join(f'{k}={v}' for k, v in params),
    st.sampled_from(["Bearer", "Basic", "bearer", "Negotiate", ""]),
    st.lists(st.tuples(st.sampled_from(["realm", "service", "scope", "error", "x", ""]),
                       st.one_of(st.text(max_size=20),
                                 st.text(max_size=20).map(lambda v: '"' + v + '"'))),
             max_size=4))


@FUZZ
@given(st.one_of(st.text(), _CHALLENGE,
                 st.lists(_CHALLENGE, max_size=3).map(", ".join)))
def test_www_authenticate_parse_never_raises(header: str) -> None:
    for challenge in auth.parse_challenges(header):
        assert challenge.scheme == challenge.scheme.lower()
        assert all(isinstance(v, str) for v in challenge.params.values())


# -- manifests and indexes -------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12)
_VALID_DIGEST = st.text("0123456789abcdef", min_size=64, max_size=64).map(
    lambda h: "sha256:" + h)
_DIGEST = st.one_of(_VALID_DIGEST, _VALID_DIGEST, st.text(max_size=80))
# Sizes around the edges of the wire's int64 as well as plain ones.
_SIZE = st.one_of(st.integers(0, 10**9), st.integers(2**63 - 2, 2**70), st.integers(-5, -1),
                  _JSON)
_DESCRIPTOR = st.one_of(st.fixed_dictionaries(
    {"digest": _DIGEST, "size": _SIZE},
    optional={"mediaType": st.one_of(st.text(max_size=30), _JSON),
              "urls": _JSON, "platform": _JSON}), _JSON)
_MANIFEST_TYPE = st.sampled_from([store_manifest.OCI_MANIFEST, store_manifest.DOCKER_MANIFEST])
_INDEX_TYPE = st.sampled_from([store_manifest.OCI_INDEX, store_manifest.DOCKER_LIST])
_VERSION = st.sampled_from([2, 2, 2, 1, "2", None])
# Shaped like a manifest or an index, with wrong parts: random bytes stop at the decoder.
_MANIFEST_DOC = st.one_of(
    st.fixed_dictionaries({"schemaVersion": _VERSION, "config": _DESCRIPTOR,
                           "layers": st.one_of(st.lists(_DESCRIPTOR, max_size=3), _JSON)},
                          optional={"mediaType": _MANIFEST_TYPE | _INDEX_TYPE}),
    st.fixed_dictionaries({"schemaVersion": _VERSION,
                           "manifests": st.one_of(st.lists(_DESCRIPTOR, max_size=3), _JSON)},
                          optional={"mediaType": _INDEX_TYPE | _MANIFEST_TYPE}))
_MANIFEST_BYTES = st.one_of(_MANIFEST_DOC.map(lambda d: json.dumps(d).encode()),
                            st.binary(max_size=200),
                            _JSON.map(lambda d: json.dumps(d).encode()))
_CONTENT_TYPE = st.one_of(st.none(), _MANIFEST_TYPE, _INDEX_TYPE, st.just("application/json"),
                          st.text(max_size=40), st.just(store_manifest.SCHEMA1[0]))


# Found by this fuzzing (with more examples than CI runs): a size past int64 was accepted,
# then failed to encode as a protobuf field.
_HUGE_SIZE = json.dumps({"schemaVersion": 2, "mediaType": store_manifest.OCI_MANIFEST,
                         "config": {"digest": "sha256:" + "a" * 64, "size": 2**70},
                         "layers": [{"digest": "sha256:" + "b" * 64, "size": 1}]}).encode()


@FUZZ
@example(_HUGE_SIZE, store_manifest.OCI_MANIFEST)
@given(_MANIFEST_BYTES, _CONTENT_TYPE)
def test_registry_manifest_parse_raises_only_typed_errors(content: bytes,
                                                          ctype: str | None) -> None:
    try:
        parsed = manifests.parse(content, ctype, "fuzz")
    except MuelleError:
        return
    assert parsed.content == content
    # What is accepted fits the wire (sizes are int64 in types.v1.Descriptor).
    for child in (*parsed.children, *([parsed.config] if parsed.config else [])):
        assert 0 <= child.size < 2**63


@FUZZ
@example(_HUGE_SIZE, store_manifest.OCI_MANIFEST)
@given(_MANIFEST_BYTES, _CONTENT_TYPE)
def test_store_manifest_parse_raises_only_typed_errors(content: bytes,
                                                       ctype: str | None) -> None:
    from vocab import digest as digestmod
    doc = Content(ctype or "", digestmod.of_bytes(content), len(content), content)
    try:
        store_manifest.verify(doc)
        store_manifest.parse_manifest(doc)
    except MuelleError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=200), _JSON.map(lambda d: json.dumps(d).encode()),
                 st.fixed_dictionaries({"rootfs": st.fixed_dictionaries(
                     {"diff_ids": st.lists(_DIGEST, max_size=3)})},
                     optional={"os": _JSON, "architecture": _JSON, "created": _JSON}).map(
                     lambda d: json.dumps(d).encode())),
       st.integers(0, 3))
def test_image_config_parse_raises_only_typed_errors(raw: bytes, layers: int) -> None:
    with contextlib.suppress(MuelleError):
        store_manifest.parse_config(raw, layers)


# -- config files ----------------------------------------------------------------------

_KEYS = ["root", "run", "log_format", "log_level", "addresses", "registry", "shim",
         "network", "gateway", "parallel_ranges", "mirrors", "cgroup_parent", "bridge",
         "userns_remap", "x"]
_TOML_SCALAR = st.one_of(st.booleans(), st.integers(-(2**64), 2**64),
                         st.text(max_size=10).map(json.dumps),
                         st.floats(allow_nan=False, allow_infinity=False).map(repr))


def _toml_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


_TOML_LINE = st.builds(lambda k, v: f"{k} = {_toml_value(v)}", st.sampled_from(_KEYS),
                       st.one_of(_TOML_SCALAR, st.lists(_TOML_SCALAR, max_size=3).map(
                           lambda xs: "[" + ", ".join(_toml_value(x) for x in xs) + "]")))
_TOML = st.lists(st.one_of(_TOML_LINE, st.sampled_from(_KEYS).map(lambda k: f"[{k}]")),
                 max_size=8).map("\n".join)


@FUZZ
@given(st.one_of(_TOML, st.text(max_size=200)))
def test_config_load_raises_only_invalid_argument(text: str) -> None:
    assume("\x00" not in text)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
    try:
        config.load(f.name)
    except MuelleError:
        pass
    finally:
        os.unlink(f.name)


@pytest.fixture(autouse=True)
def _no_engine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MUELLE_CONFIG", "MUELLE_ROOT", "MUELLE_RUN", "MUELLE_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
