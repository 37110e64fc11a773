"""Unpack speed: one layer of 20,200 small entries (gzip and zstd), muelle's unpack vs
GNU tar -x into a fresh directory, 5 runs each, medians.

    .venv/bin/python -m tests.bench.unpack_speed
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import zstandard

from services.imagestore.unpack import unpack

DIRS, FILES = 200, 100
RUNS = 5


def layer() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for d in range(DIRS):
            info = tarfile.TarInfo(f"d{d:03d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for f in range(FILES):
                data = os.urandom(64) + b"x" * 900
                info = tarfile.TarInfo(f"d{d:03d}/f{f:03d}")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def median_seconds(fn: object, work: Path) -> float:
    times = []
    for i in range(RUNS):
        dest = work / f"run{i}"
        dest.mkdir()
        start = time.perf_counter()
        fn(dest)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
        shutil.rmtree(dest)
    return sorted(times)[RUNS // 2]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="unpack-"))
    try:
        tar_bytes = layer()
        diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
        entries = DIRS * (FILES + 1)
        print(f"layer: {entries:,} entries, {len(tar_bytes) / 1e6:.1f} MB of tar")
        blobs = {"gzip": gzip.compress(tar_bytes, 6),
                 "zstd": zstandard.ZstdCompressor(level=3).compress(tar_bytes)}
        for kind, blob in blobs.items():
            path = work / f"layer.{kind}"
            path.write_bytes(blob)

            def ours(dest: Path, path: Path = path) -> None:
                with open(path, "rb") as f:
                    unpack(f, dest, diff_id)

            def gnu_tar(dest: Path, path: Path = path, kind: str = kind) -> None:
                flags = ["-xzf"] if kind == "gzip" else ["--zstd", "-xf"]
                subprocess.run(["tar", *flags, str(path), "-C", str(dest)], check=True)

            m, t = median_seconds(ours, work), median_seconds(gnu_tar, work)
            print(f"{kind}: muelle {m * 1000:.0f} ms ({entries / m:,.0f} entries/s), "
                  f"GNU tar {t * 1000:.0f} ms, muelle/tar {m / t:.2f}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
