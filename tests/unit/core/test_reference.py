from __future__ import annotations

import pytest

from vocab.errors import InvalidArgument
from vocab.reference import is_loopback, parse


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
        ("index.docker.io/library/alpine:3", "docker.io/library/alpine:3", "alpine:3"),
        ("docker.io/foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
        ("127.0.0.1:5000/demo/busybox:1", "127.0.0.1:5000/demo/busybox:1",
         "127.0.0.1:5000/demo/busybox:1"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        ("quay.io/a/b/c:v1.2", "quay.io/a/b/c:v1.2", "quay.io/a/b/c:v1.2"),
    ],
)
def test_normalisation(text: str, canonical: str, familiar: str) -> None:
    ref = parse(text)
    assert ref.canonical == canonical
    assert ref.familiar == familiar


def test_digest_reference_has_no_default_tag() -> None:
    digest = "sha256:" + "a" * 64
    ref = parse(f"foo/bar@{digest}")
    assert ref.tag == "" and ref.digest == digest
    assert ref.canonical == f"docker.io/foo/bar@{digest}"


@pytest.mark.parametrize(
    "text",
    ["", "Busybox", "a b", "x:@@", ":tag", "foo/bar@sha256:abc", "foo:" + "t" * 129,
     "foo//bar", "-foo", "foo/bar:ta/g"],
)
def test_malformed(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        parse(text)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1:5000")
    assert is_loopback("localhost")
    assert is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000")
