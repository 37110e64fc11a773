"""Plain value types of the registry core: platforms and content descriptors.

They mirror muelle.types.v1 Platform / Descriptor so the core needs no protobuf; the
servicer converts at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vocab import digest as digestmod
from vocab.errors import DataLoss


@dataclass(frozen=True)
class Platform:
    """An OCI platform (image-spec image-index.md)."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def from_json(cls, data: Any) -> Platform | None:
        """The ``platform`` object of an index entry; None when absent or not an object."""
        if not isinstance(data, dict):
            return None
        features = data.get("os.features") or ()
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=str(data.get("variant", "") or ""),
            os_version=str(data.get("os.version", "") or ""),
            os_features=tuple(str(f) for f in features) if isinstance(features, list) else (),
        )


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (image-spec descriptor.md)."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, data: Any, where: str) -> Descriptor:
        """Validate and convert a descriptor object found in a manifest (``where`` names it
        in errors). A malformed descriptor means the registry served broken content."""
        if not isinstance(data, dict):
            raise DataLoss(f"{where}: descriptor is not an object")
        media_type = data.get("mediaType", "")
        digest = data.get("digest")
        size = data.get("size")
        if not isinstance(media_type, str):
            raise DataLoss(f"{where}: mediaType is not a string")
        if not isinstance(digest, str):
            raise DataLoss(f"{where}: descriptor has no digest")
        try:
            digestmod.validate(digest)
        except Exception as exc:  # InvalidArgument from the digest grammar
            raise DataLoss(f"{where}: {exc}") from None
        # (sizes travel as int64: a bigger one would fail to encode, as an internal error)
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 1 << 63:
            raise DataLoss(f"{where}: descriptor {digest} has an invalid size {size!r}")
        urls = data.get("urls") or []
        annotations = data.get("annotations") or {}
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise DataLoss(f"{where}: urls of {digest} is not a list of strings")
        if not isinstance(annotations, dict):
            raise DataLoss(f"{where}: annotations of {digest} is not an object")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=tuple(urls),
            annotations={str(k): str(v) for k, v in annotations.items()},
            platform=Platform.from_json(data.get("platform")),
        )
