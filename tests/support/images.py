"""Build OCI images from files on this machine, for tests, the demo and benchmarks.

No image is ever fetched from the internet: the base is the machine's busybox-static.

    layout = build_busybox_layout(tmp / "layout", tag="1")
    push_layout(layout, "127.0.0.1:5000/demo/busybox:1")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EPOCH = 1700000000


@dataclass
class Entry:
    """One tar entry of a layer."""

    path: str
    kind: str = "file"  # file, dir, symlink, hardlink, whiteout, opaque, char, block, fifo
    data: bytes = b""
    mode: int = 0o644
    target: str = ""  # symlink or hardlink target
    uid: int = 0
    gid: int = 0
    mtime: int = EPOCH
    xattrs: dict[str, bytes] = field(default_factory=dict)
    device: tuple[int, int] = (0, 0)  # (major, minor) of a char or block device


@dataclass
class Layer:
    entries: list[Entry] = field(default_factory=list)

    def tar(self) -> bytes:
        """The uncompressed, deterministic tar stream of this layer."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as tar:
            for entry in self.entries:
                info = tarfile.TarInfo(entry.path.lstrip("/"))
                info.mtime = entry.mtime
                info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                    for k, v in entry.xattrs.items()}
                info.uid, info.gid = entry.uid, entry.gid
                info.mode = entry.mode
                payload = None
                if entry.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    info.mode = entry.mode if entry.mode != 0o644 else 0o755
                elif entry.kind == "symlink":
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
                elif entry.kind == "hardlink":
                    info.type, info.linkname = tarfile.LNKTYPE, entry.target
                elif entry.kind in ("char", "block"):
                    info.type = tarfile.CHRTYPE if entry.kind == "char" else tarfile.BLKTYPE
                    info.devmajor, info.devminor = entry.device
                elif entry.kind == "fifo":
                    info.type = tarfile.FIFOTYPE
                elif entry.kind in ("whiteout", "opaque"):
                    parent, _, name = entry.path.rstrip("/").rpartition("/")
                    wh = ".wh..wh..opq" if entry.kind == "opaque" else f".wh.{name}"
                    if entry.kind == "opaque":
                        parent = entry.path.rstrip("/")
                    info.name = f"{parent}/{wh}".lstrip("/")
                    info.size = 0
                else:
                    info.size = len(entry.data)
                    payload = io.BytesIO(entry.data)
                tar.addfile(info, payload)
        return buf.getvalue()


def busybox_layer(extra: Iterable[Entry] = ()) -> Layer:
    """A minimal busybox root: /bin/busybox, one symlink per applet, /etc files, dirs."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    entries = [Entry(d, "dir") for d in ("bin", "dev", "etc", "proc", "root", "sys", "usr",
                                          "usr/bin", "var", "home")]
    entries.append(Entry("tmp", "dir", mode=0o1777))
    entries.append(Entry("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755))
    entries += [Entry(f"bin/{a}", "symlink", target="busybox") for a in applets if a != "busybox"]
    entries.append(Entry("etc/passwd", data=(
        b"root:x:0:0:root:/root:/bin/sh\n"
        b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        b"nobody:x:65534:65534:nobody:/home:/bin/false\n"
        b"app:x:1000:1000:app:/home/app:/bin/sh\n")))
    entries.append(Entry("etc/group", data=(
        b"root:x:0:\ndaemon:x:1:\nwheel:x:10:root,app\nnogroup:x:65534:\napp:x:1000:\n")))
    entries += list(extra)
    return Layer(entries)


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest, len(data)


def build_layout(
    layout: Path,
    layers: list[Layer],
    tag: str = "latest",
    config: dict[str, Any] | None = None,
    architecture: str = "amd64",
    compression: str | list[str] = "gzip",
) -> str:
    """Write an OCI image layout with one image tagged ``tag``; returns the manifest digest.
    ``compression``: "gzip" or "zstd" for every layer, or one per layer."""
    if layout.exists():
        shutil.rmtree(layout)
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layer_descs, diff_ids = [], []
    kinds = [compression] * len(layers) if isinstance(compression, str) else compression
    for layer, kind in zip(layers, kinds, strict=True):
        raw = layer.tar()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        if kind == "zstd":
            import zstandard

            data, media_type = zstandard.ZstdCompressor(level=3).compress(raw), OCI_LAYER_ZSTD
        else:
            data, media_type = gzip.compress(raw, compresslevel=6, mtime=0), OCI_LAYER_GZIP
        digest, size = _blob(layout, data)
        layer_descs.append({"mediaType": media_type, "digest": digest, "size": size})
    image_config: dict[str, Any] = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": architecture,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "muelle tests"}
                    for _ in layers],
    }
    if config:
        image_config["config"].update(config)
    cfg_digest, cfg_size = _blob(layout, json.dumps(image_config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": cfg_size},
        "layers": layer_descs,
    }
    man_digest, man_size = _blob(layout, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": man_digest, "size": man_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
            "platform": {"architecture": architecture, "os": "linux"},
        }],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return man_digest


def build_busybox_layout(
    layout: Path, tag: str = "latest", config: dict[str, Any] | None = None
) -> str:
    """An OCI layout with a one-layer busybox image; returns the manifest digest."""
    return build_layout(layout, [busybox_layer()], tag=tag, config=config)


def push_layout(layout: Path, reference: str, tag: str = "latest",
                creds: tuple[str, str] | None = None) -> None:
    """Push the image tagged ``tag`` in ``layout`` to a plain-HTTP registry with skopeo
    (as the user ``creds`` names, when given)."""
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
         *(["--dest-creds", ":".join(creds)] if creds else []),
         f"oci:{layout}:{tag}", f"docker://{reference}"],
        check=True, capture_output=True,
    )


def push_multi_platform(registry_url: str, tmp: Path, repo_tag: str) -> dict[str, str]:
    """Push an OCI index ``repo_tag`` ("demo/multi:2") with an amd64 and an arm64 busybox
    image (their /etc/arch says which) and a BuildKit-style attestation entry, which must
    never be selected. Returns {"ref", "index", "amd64", "arm64"}: reference and digests."""
    import httpx

    repo, _, tag = repo_tag.rpartition(":")
    host = registry_url.split("://", 1)[1]
    digests: dict[str, str] = {}
    entries: list[dict[str, Any]] = []
    for arch in ("amd64", "arm64"):
        layer = busybox_layer([Entry("etc/arch", data=arch.encode())])
        digest = build_layout(tmp / arch, [layer], tag=arch, architecture=arch)
        push_layout(tmp / arch, f"{host}/{repo}:{tag}-{arch}", tag=arch)
        size = (tmp / arch / "blobs" / "sha256" / digest.split(":")[1]).stat().st_size
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                        "platform": {"os": "linux", "architecture": arch}})
        digests[arch] = digest
    entries.append({**entries[0], "platform": {"os": "unknown", "architecture": "unknown"},
                    "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": entries}).encode()
    resp = httpx.put(f"{registry_url}/v2/{repo}/manifests/{tag}", content=index,
                     headers={"Content-Type": OCI_INDEX}, timeout=10)
    if resp.status_code != 201:
        raise RuntimeError(f"pushing the index failed: {resp.status_code} {resp.text}")
    digests["index"] = resp.headers["Docker-Content-Digest"]
    digests["ref"] = f"{host}/{repo_tag}"
    return digests


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.support.images build DIR --tag T [--push REF]`` (used by make demo)."""
    import argparse

    parser = argparse.ArgumentParser(prog="images")
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="build a busybox OCI layout")
    build.add_argument("layout", type=Path)
    build.add_argument("--tag", default="latest")
    build.add_argument("--push", metavar="REF", help="push it to a plain-HTTP registry")
    args = parser.parse_args(argv)
    digest = build_busybox_layout(args.layout, tag=args.tag)
    print(f"built {args.layout}:{args.tag} manifest {digest}")
    if args.push:
        push_layout(args.layout, args.push, tag=args.tag)
        print(f"pushed {args.push}")


if __name__ == "__main__":
    main()
