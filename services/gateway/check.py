"""`system check` across the three places a container lives, and `--repair`.

A container is whole when the gateway has a ready record of it, the shim its state (a
container dir, a monitor or an exit status) and the image store its rootfs (record and
writable layer). A crash can leave part of one: a create killed half-way, a removal
killed half-way. Restarts converge on their own (the shim drops half-created dirs, the
gateway undoes unfinished creates until they are gone); this check shows what is left
and `--repair` removes it, since a container that one of them does not know cannot be
listed, used or removed the normal way.

Creates and removals in flight are not problems: ``Busy`` records which containers
were being created or removed at any time during a check, and those are skipped.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from muelle.engine.v1 import engine_pb2
from muelle.images.v1 import images_pb2
from muelle.shim.v1 import shim_pb2

from services.core.logging import get_logger
from services.gateway.records import Records
from vocab.errors import MuelleError


class Busy:
    """The containers a create or a removal is working on, and while a check runs, every
    container one worked on since it began."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._now: dict[str, int] = {}
        self._seen: list[set[str]] = []  # one set per check running

    @contextlib.contextmanager
    def working(self, cid: str) -> Iterator[None]:
        with self._guard:
            self._now[cid] = self._now.get(cid, 0) + 1
            for seen in self._seen:
                seen.add(cid)
        try:
            yield
        finally:
            with self._guard:
                self._now[cid] -= 1
                if not self._now[cid]:
                    del self._now[cid]

    @contextlib.contextmanager
    def watching(self) -> Iterator[set[str]]:
        """The set of containers worked on while this block runs (filled as it runs)."""
        with self._guard:
            seen = set(self._now)
            self._seen.append(seen)
        try:
            yield seen
        finally:
            with self._guard:
                self._seen.remove(seen)


@dataclass
class Known:
    """Where a container is known."""

    record: bool = False
    ready: bool = False
    removing: bool = False
    shim: bool = False
    rootfs: bool = False


def _diagnose(k: Known) -> str:
    if k.record and k.removing:
        return "a removal that did not finish"
    if k.record and not k.ready:
        return "a create that did not finish (the gateway's record is not ready)"
    if not k.record:
        parts = [p for p, on in (("the shim", k.shim), ("the image store", k.rootfs)) if on]
        return (f"hidden: known to {' and '.join(parts)} but not to the gateway "
                "(not listed, cannot be removed)")
    if not k.shim and not k.rootfs:
        return "lost: the gateway has its record, the shim and the image store do not"
    if not k.shim:
        return "lost: the shim does not know it (its rootfs is kept)"
    return "its rootfs is missing from the image store"


def cross_check(records: Records, shim: object, check: images_pb2.CheckResponse,
                seen: set[str], repair: bool,
                remove: Callable[[str], None]) -> tuple[list[engine_pb2.CheckProblem], int]:
    """Problems for each container not whole; with ``repair``, ``remove`` is called for
    each (its errors are reported, not raised). ``seen``: from ``busy.watching()``, begun
    before ``check`` (the image store's part) was asked for, read at the end. Also the
    number of containers compared."""
    known: dict[str, Known] = {}
    for rec in records.all(include_unready=True):
        known.setdefault(rec.id, Known()).record = True
        known[rec.id].ready = rec.ready
        known[rec.id].removing = rec.removing
    for st in shim.List(shim_pb2.ListRequest()).containers:  # type: ignore[attr-defined]
        known.setdefault(st.id, Known()).shim = True
    for cid in check.container_ids:
        known.setdefault(cid, Known()).rootfs = True
    problems = []
    for cid, k in sorted(known.items()):
        if cid in seen or (k.ready and k.shim and k.rootfs):
            continue
        problem = engine_pb2.CheckProblem(kind="container", subject=cid, message=_diagnose(k))
        if repair:
            try:
                remove(cid)
                problem.repaired = True
                get_logger(container=cid[:12]).warning("system check removed a leftover",
                                                       problem=problem.message)
            except MuelleError as exc:
                problem.message += f"; repair failed: {exc}"
        problems.append(problem)
    return problems, len(known)


def system_check(images: object, shim: object, records: Records, busy: Busy, repair: bool,
                 remove: Callable[[str], None]) -> engine_pb2.SystemCheckResponse:
    """The image store's own check, then the containers compared across the three."""
    with busy.watching() as seen:
        reply = images.Check(images_pb2.CheckRequest())  # type: ignore[attr-defined]
        ours, compared = cross_check(records, shim, reply, seen, repair, remove)
        # The image store's findings about a container being created or removed meanwhile
        # (a writable layer whose record is being written) are not problems either.
        theirs = [engine_pb2.CheckProblem(kind=p.kind, subject=p.subject, message=p.message)
                  for p in reply.problems if not (p.kind == "container" and p.subject in seen)]
    return engine_pb2.SystemCheckResponse(
        problems=theirs + ours, blobs=reply.blobs, snapshots=reply.snapshots,
        images=reply.images, containers=compared)
