from __future__ import annotations

import pytest

from services.registry import manifests
from services.registry.descriptors import Descriptor
from vocab.errors import DataLoss, InvalidArgument

from .fakeupstream import OCI_INDEX, OCI_MANIFEST, desc, dumps, image, sha

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def test_accept_lists_all_four_kinds() -> None:
    for media_type in (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_LIST):
        assert media_type in manifests.ACCEPT


def test_oci_manifest_parsed_over_exact_bytes() -> None:
    body = image([b"layer0", b"layer1"])
    got = manifests.parse(body, OCI_MANIFEST + "; charset=utf-8", "r:1")
    assert got.descriptor == Descriptor(OCI_MANIFEST, sha(body), len(body))
    assert got.content == body
    assert got.config is not None and got.config.media_type.endswith("config.v1+json")
    assert [d.digest for d in got.children] == [sha(b"layer0"), sha(b"layer1")]
    assert not got.is_index


def test_docker_schema2_and_manifest_list() -> None:
    body = image([b"l"], media_type=DOCKER_MANIFEST)
    assert manifests.parse(body, DOCKER_MANIFEST, "r").descriptor.media_type == DOCKER_MANIFEST
    index = dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        desc(DOCKER_MANIFEST, body, platform={"os": "linux", "architecture": "amd64"})]})
    got = manifests.parse(index, DOCKER_LIST, "r")
    assert got.is_index and got.children[0].platform is not None
    assert got.children[0].platform.architecture == "amd64"


def test_generic_content_type_uses_body_or_shape() -> None:
    index = dumps({"schemaVersion": 2, "manifests": []})
    assert manifests.parse(index, "application/json", "r").descriptor.media_type == OCI_INDEX
    body = image([b"l"])
    assert manifests.parse(body, None, "r").descriptor.media_type == OCI_MANIFEST


def test_media_type_mismatch_is_rejected() -> None:
    body = image([b"l"])  # says OCI manifest
    with pytest.raises(DataLoss, match="media type mismatch"):
        manifests.parse(body, DOCKER_MANIFEST, "r:1")


def test_expected_type_wins_when_digest_matches() -> None:
    body = dumps({"schemaVersion": 2, "config": desc("x/y", b"c"), "layers": []})
    want = Descriptor(OCI_MANIFEST, sha(body), len(body))
    got = manifests.parse(body, "application/vnd.docker.distribution.manifest.v2+json",
                          "r", expected=want)
    assert got.descriptor.media_type == OCI_MANIFEST


@pytest.mark.parametrize("ctype", [
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
])
def test_schema1_is_unsupported(ctype: str) -> None:
    with pytest.raises(InvalidArgument, match="schema1"):
        manifests.parse(b'{"schemaVersion":1,"name":"x"}', ctype, "r")


def test_schema1_body_under_generic_type_is_unsupported() -> None:
    with pytest.raises(InvalidArgument, match="schema1"):
        manifests.parse(b'{"schemaVersion":1,"fsLayers":[]}', "application/json", "r")


def test_oversize_manifest() -> None:
    body = b" " * (manifests.MAX_MANIFEST_SIZE + 1)
    with pytest.raises(InvalidArgument, match="limit"):
        manifests.parse(body, OCI_MANIFEST, "r")


@pytest.mark.parametrize("body", [b"<html>nope</html>", b"[1,2]", b"\xff\xfe"])
def test_garbage_is_data_loss(body: bytes) -> None:
    with pytest.raises(DataLoss):
        manifests.parse(body, OCI_MANIFEST, "r")


def test_unknown_content_type_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="text/html"):
        manifests.parse(image([b"l"]), "text/html", "r")


def test_digest_mismatch_when_pulling_by_digest() -> None:
    body = image([b"l"])
    wrong = sha(b"something else")
    with pytest.raises(DataLoss, match=f"digest mismatch for {wrong}: got {sha(body)}"):
        manifests.parse(body, OCI_MANIFEST, "r", expected=Descriptor("", wrong, 0))


def test_size_mismatch_against_descriptor() -> None:
    body = image([b"l"])
    with pytest.raises(DataLoss, match="size mismatch"):
        manifests.parse(body, OCI_MANIFEST, "r",
                        expected=Descriptor(OCI_MANIFEST, sha(body), len(body) + 1))


def test_content_digest_header_is_checked() -> None:
    body = image([b"l"])
    with pytest.raises(DataLoss, match="Docker-Content-Digest"):
        manifests.parse(body, OCI_MANIFEST, "r", header_digest=sha(b"other"))
    with pytest.raises(DataLoss, match="invalid Docker-Content-Digest"):
        manifests.parse(body, OCI_MANIFEST, "r", header_digest="md5:abc")
    ok = manifests.parse(body, OCI_MANIFEST, "r", header_digest=sha(body))
    assert ok.descriptor.digest == sha(body)


@pytest.mark.parametrize("bad", [
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:12"},
     "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
     "config": {"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": -1}, "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_INDEX},
    {"schemaVersion": 3, "mediaType": OCI_INDEX, "manifests": []},
])
def test_malformed_manifests(bad: dict[str, object]) -> None:
    with pytest.raises(DataLoss):
        manifests.parse(dumps(bad), bad["mediaType"], "r")  # type: ignore[arg-type]


def test_index_may_be_empty_and_hold_unknown_types() -> None:
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        desc("application/vnd.example.unknown", b"x")]})
    got = manifests.parse(index, OCI_INDEX, "r")
    assert got.children[0].media_type == "application/vnd.example.unknown"
