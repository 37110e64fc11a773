"""The image store's side of a Dockerfile build: steps that need no container (AddFiles)
and reading files out of an image (ReadFiles, for COPY --from). RUN steps are containers
committed with Commit."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from typing import IO

from muelle.images.v1 import images_pb2

from services.core.logging import get_logger
from services.core.tarstream import stream_archive
from services.imagestore.addfiles import Placement, spool
from services.imagestore.build import NewLayer, write_layer
from services.imagestore.imageconfig import config_object, step_config
from services.imagestore.metadata import ImageRecord
from services.imagestore.store import ImageStore
from services.imagestore.treetar import TreeTar, _merge
from services.imagestore.view import resolve
from vocab.errors import InvalidArgument, NotFound


def _layers(store: ImageStore, rec: ImageRecord | None) -> list[str]:
    return [str(p) for p in store.snapshots.lowers(rec.chain_ids)] if rec else []


def add_files(store: ImageStore, header: images_pb2.AddFilesHeader,
              chunks: Iterable[bytes]) -> tuple[ImageRecord, bool]:
    """The new image and whether it has a new layer (see AddFiles in images.proto)."""
    parent = store.get(header.parent) if header.parent else None
    config = config_object(header.config_json)
    with store.commit_lock:
        store._unleased += 1  # our snapshots and blobs are not recorded yet: no GC of them
    layer: NewLayer | None = None
    try:
        if header.dest:
            place = Placement(_layers(store, parent), header.dest, header.single_name,
                              header.chown, header.chmod)
            with spool(chunks, str(store.tmp)) as src:
                def produce(out: IO[bytes]) -> None:
                    place.write(src, out)

                layer = write_layer(store.tmp, produce)
            if not place.written:
                layer.path.unlink(missing_ok=True)
                layer = None
        elif any(chunks):
            raise InvalidArgument("files to add need a destination")
        doc = step_config(parent.config_json if parent else None, config, header.created_by,
                          empty_layer=layer is None)
        rec = store.builder.record(parent, layer, doc, [])
    finally:
        if layer is not None:
            layer.path.unlink(missing_ok=True)
        with store.commit_lock:
            store._unleased -= 1
    get_logger(image=rec.id).info("build step recorded", layer=layer is not None)
    return rec, layer is not None


def read_files(store: ImageStore, image: str, path: str) -> Iterator[bytes]:
    """One path of an image's filesystem as a tar (see ReadFiles in images.proto)."""
    rec = store.get(image)
    layers = _layers(store, rec)
    rel, found = resolve(layers, path)
    if rel == "" and not layers:
        found = None
    if found is None:
        raise NotFound(f"{path}: no such file or directory in image {rec.id[7:19]}")
    top = found

    def produce(out: IO[bytes]) -> None:
        tar = TreeTar(out)
        if stat.S_ISDIR(top.st.st_mode):
            tar.add(".", top.path, top.st)
            tar.write(_merge("", top.stack))
        else:
            tar.add(os.path.basename(rel), top.path, top.st)
        tar.close()

    return stream_archive(produce)  # type: ignore[arg-type]
