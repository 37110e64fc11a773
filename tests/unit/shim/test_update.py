"""services/shim/update.py: which OCI limits an update changes, and their checks."""

from __future__ import annotations

import pytest
from muelle.shim.v1 import shim_pb2

from services.shim import update
from vocab.errors import InvalidArgument

MIB = 1024 * 1024


def test_only_the_fields_set_change() -> None:
    assert update.changes(shim_pb2.Resources(cpu_shares=512)) == {"cpu": {"shares": 512}}
    assert update.changes(shim_pb2.Resources()) == {}
    # A memory limit brings create's default memory+swap along (twice the limit).
    assert update.changes(shim_pb2.Resources(memory_limit=64 * MIB)) == {
        "memory": {"limit": 64 * MIB, "swap": 128 * MIB}}
    assert update.changes(shim_pb2.Resources(pids_limit=-1)) == {"pids": {"limit": -1}}


def test_merged_keeps_what_did_not_change() -> None:
    current = {"memory": {"limit": 64 * MIB, "swap": 128 * MIB}, "cpu": {"shares": 2},
               "devices": [{"allow": False, "access": "rwm"}]}
    new = update.merged(current, {"cpu": {"quota": 50000, "period": 100000}})
    assert new["cpu"] == {"shares": 2, "quota": 50000, "period": 100000}
    assert new["memory"] == current["memory"] and new["devices"] == current["devices"]
    assert update.to_message(new).cpu_quota == 50000


@pytest.mark.parametrize(("current", "res", "message"), [
    ({}, shim_pb2.Resources(memory_limit=1024), "6MB"),
    ({}, shim_pb2.Resources(memory_swap=256 * MIB), "without a memory limit"),
    ({"memory": {"limit": 512 * MIB, "swap": 1024 * MIB}},
     shim_pb2.Resources(memory_swap=256 * MIB), "larger than memory limit"),
    ({}, shim_pb2.Resources(pids_limit=-5), "pids limit"),
])
def test_bad_values_are_refused(current: dict, res: shim_pb2.Resources,
                                message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        update.merged(current, update.changes(res))
