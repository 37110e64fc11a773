"""Container records: names, lookup by ID / prefix / name, ambiguity, readiness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from services.gateway import names
from services.gateway.records import Record, Records
from vocab.errors import AlreadyExists, InvalidArgument, NotFound


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    recs = Records(tmp_path / "gateway")
    yield recs
    recs.close()


def make(cid: str, name: str, ready: bool = True, image_id: str = "sha256:aa") -> Record:
    return Record(id=cid, name=name, image="busybox", image_id=image_id, created="2024",
                  request=engine_pb2.CreateContainerRequest(image="busybox", name=name),
                  spec=shim_pb2.ContainerSpec(args=["sh"]), entrypoint=None, cmd=["sh"],
                  runtime="", auto_remove=False, stop_signal="SIGTERM", stop_timeout=10,
                  ready=ready)


A = "abc1" + "1" * 60
B = "abc2" + "2" * 60


def test_roundtrip_keeps_request_spec_and_argv(records: Records) -> None:
    rec = make(A, "web", ready=False)
    rec.entrypoint = ["/bin/sh", ""]
    records.insert(rec)
    got = records.get(A)
    assert got is not None
    assert got.request.name == "web" and list(got.spec.args) == ["sh"]
    assert got.entrypoint == ["/bin/sh", ""] and got.cmd == ["sh"]
    assert not got.ready


def test_unready_records_are_invisible_to_lookup(records: Records) -> None:
    records.insert(make(A, "web", ready=False))
    with pytest.raises(NotFound, match="No such container: web"):
        records.lookup("web")
    assert records.all() == []
    records.mark_ready(A, "/bundle")
    assert records.lookup("web").bundle == "/bundle"


def test_names_are_those_of_every_ready_record(records: Records) -> None:
    records.insert(make(A, "web"))
    records.insert(make(B, "db", ready=False))
    assert records.names() == {r.id: r.name for r in records.all()} == {A: "web"}


def test_lookup_by_id_prefix_name(records: Records) -> None:
    records.insert(make(A, "web"))
    records.insert(make(B, "db"))
    assert records.lookup(A).name == "web"
    assert records.lookup("abc2").name == "db"
    assert records.lookup("/db").id == B
    with pytest.raises(InvalidArgument, match="multiple IDs"):
        records.lookup("abc")
    with pytest.raises(NotFound, match="No such container: zzz"):
        records.lookup("zzz")


def test_name_wins_over_prefix(records: Records) -> None:
    records.insert(make(A, "db"))
    records.insert(make(B, "abc1"))  # a name that is also a prefix of A
    assert records.lookup("abc1").id == B


def test_name_clash_is_docker_conflict(records: Records) -> None:
    records.insert(make(A, "web"))
    with pytest.raises(AlreadyExists) as info:
        records.insert(make(B, "web"))
    assert 'The container name "/web" is already in use by container' in str(info.value)
    assert A in str(info.value)
    assert records.get(B) is None


def test_persists_across_reopen(tmp_path: Path) -> None:
    recs = Records(tmp_path)
    recs.insert(make(A, "web"))
    recs.close()
    again = Records(tmp_path)
    try:
        assert again.lookup("web").id == A
    finally:
        again.close()


def test_using_image_and_delete(records: Records) -> None:
    records.insert(make(A, "web", image_id="sha256:x"))
    assert [r.id for r in records.using_image("sha256:x")] == [A]
    records.delete(A)
    assert records.using_image("sha256:x") == []


@pytest.mark.parametrize("name", ["web", "a1", "my_app.v2-x", "/web"])
def test_valid_names(name: str) -> None:
    assert names.validate_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["a", "-web", "_x", "we b", "wéb", "a/b", ""])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        names.validate_name(name)


def test_generated_names_and_ids() -> None:
    for retry in (0, 1):
        name = names.generate_name(retry)
        assert names.NAME_RE.match(name) and "_" in name
    cid = names.new_id()
    assert len(cid) == 64 and int(cid, 16) >= 0 and not cid[:12].isdigit()


def test_listed_is_all_newest_first_without_the_request(records: Records) -> None:
    """What `ps` reads: the ready records of all(), reversed (ties in created by
    insertion), each with its spec."""
    c = "abc3" + "3" * 60
    records.insert(make(A, "web"))
    records.insert(make(B, "db"))
    records.insert(make(c, "half", ready=False))
    listed = records.listed()
    assert [(x.id, x.name, x.created) for x in listed] == \
        [(r.id, r.name, r.created) for r in reversed(records.all())] == \
        [(B, "db", "2024"), (A, "web", "2024")]
    assert list(listed[0].spec.args) == ["sh"] and listed[0].image_id == "sha256:aa"
