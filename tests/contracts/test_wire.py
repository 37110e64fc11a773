"""Clients built before the shared messages moved to muelle.types.v1 keep working.

wire_before_types_v1.json holds engine.v1 and images.v1 messages as the contracts of
main at 21a2d0e serialised them (classes built from that commit's snapshot.binpb, every
field set): log entries, exec input and output, console sizes, stats, top rows, check
problems, volume mounts and volumes, network requests, the image messages the gateway
relays (pull, remove, prune, save, load, tag, import, commit, df, runtimes), alone and
inside the messages that carry them. Each must parse with today's classes into the same
JSON, and serialise back to the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import muelle.engine.v1.engine_pb2
import muelle.images.v1.images_pb2
import muelle.types.v1.types_pb2  # noqa: F401  (registers the messages by full name)
import pytest
from google.protobuf import json_format, symbol_database

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).with_name("wire_before_types_v1.json")).read_text())


@pytest.mark.parametrize("case", CASES, ids=[f"{c['before']}->{c['now']}" for c in CASES])
def test_old_bytes_parse_into_the_same_message(case: dict[str, Any]) -> None:
    old = bytes.fromhex(case["bytes"])
    msg = symbol_database.Default().GetSymbol(case["now"])()
    msg.ParseFromString(old)
    # The JSON holds known fields only: a field parsed as unknown would be missing from it.
    assert json_format.MessageToDict(msg, preserving_proto_field_name=True) == case["json"]
    assert msg.SerializeToString(deterministic=True) == old


def test_every_moved_message_is_covered() -> None:
    renamed = {c["before"] for c in CASES if c["before"] != c["now"]}
    assert {"muelle.engine.v1.LogEntry", "muelle.engine.v1.ExecContainerInput",
            "muelle.engine.v1.ExecContainerOutput", "muelle.engine.v1.TopContainerResponse",
            "muelle.engine.v1.Volume", "muelle.engine.v1.VolumeListResponse"} <= renamed
