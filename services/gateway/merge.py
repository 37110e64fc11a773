"""Docker's merge of an image config with a create request (SPECS.md §5 items 1-6).

Plain data in, plain data out: ``merge(image_config, request, container_id)`` returns the
``Merged`` settings the shim's ContainerSpec is built from. Presence matters for
Entrypoint and Cmd (``HasField``): absent, present-and-empty and ``[""]`` differ.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from vocab.envmerge import env_key, merge_env, replace_or_append
from vocab.errors import InvalidArgument
from vocab.platform import DEFAULT_PATH

DEFAULT_STOP_SIGNAL = "SIGTERM"


@dataclass
class Merged:
    """What the container runs with, after merging image and request."""

    args: list[str]
    entrypoint: list[str] | None
    cmd: list[str] | None
    env: list[str]
    working_dir: str
    user: str
    hostname: str
    stop_signal: str
    labels: dict[str, str] = field(default_factory=dict)
    # The image's EXPOSEd ports, "80/tcp" (published by -P).
    exposed_ports: list[str] = field(default_factory=list)


def _opt(msg: object, name: str) -> list[str] | None:
    """A StringList field as None (absent) or its values (present, maybe empty)."""
    if not msg.HasField(name):  # type: ignore[attr-defined]
        return None
    return list(getattr(msg, name).values)


def entrypoint_and_cmd(
    image_entrypoint: list[str] | None,
    image_cmd: list[str] | None,
    user_entrypoint: list[str] | None,
    user_cmd: list[str] | None,
) -> tuple[list[str] | None, list[str] | None]:
    """moby merge(): the user's Entrypoint drops the image Cmd; ``[""]`` resets it."""
    entrypoint, cmd = user_entrypoint, user_cmd
    if not entrypoint:  # nil or empty
        if not cmd:
            cmd = image_cmd
        if entrypoint is None:
            entrypoint = image_entrypoint
    if entrypoint == [""]:
        entrypoint = None
    return entrypoint, cmd


def argv(entrypoint: list[str] | None, cmd: list[str] | None) -> list[str]:
    """Final process args; InvalidArgument "no command specified" when there are none."""
    args = [*(entrypoint or []), *(cmd or [])]
    if not args:
        raise InvalidArgument("no command specified")
    return args



def final_env(merged_env: list[str], hostname: str) -> list[str]:
    """The daemon's environment: default PATH, HOSTNAME, then the config env on top."""
    return replace_or_append([f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"], merged_env)


def validate_env(env: list[str]) -> None:
    for entry in env:
        if not env_key(entry):
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        if "\x00" in entry:
            raise InvalidArgument("invalid environment variable: contains a NUL byte")


def merge(
    image: types_pb2.ImageConfig, request: engine_pb2.CreateContainerRequest, container_id: str
) -> Merged:
    """SPECS §5: user wins, else image, else Docker's default."""
    validate_env(list(request.env))
    if request.working_dir and not request.working_dir.startswith("/"):
        raise InvalidArgument(f"the working directory {request.working_dir!r} is invalid, "
                              "it needs to be an absolute path")
    entrypoint, cmd = entrypoint_and_cmd(
        _opt(image, "entrypoint"), _opt(image, "cmd"),
        _opt(request, "entrypoint"), _opt(request, "cmd"),
    )
    args = argv(entrypoint, cmd)
    # With the host's network Docker also shows the host's name (the UTS ns stays private).
    default_name = socket.gethostname() if request.network_mode == "host" else container_id[:12]
    hostname = request.hostname or default_name
    env = final_env(merge_env(list(image.env), list(request.env)), hostname)
    labels = {**dict(image.labels), **dict(request.labels)}
    return Merged(
        args=args,
        entrypoint=entrypoint,
        cmd=cmd,
        env=env,
        working_dir=request.working_dir or image.working_dir or "/",
        user=request.user or image.user,
        hostname=hostname,
        stop_signal=request.stop_signal or image.stop_signal or DEFAULT_STOP_SIGNAL,
        labels=labels,
        exposed_ports=list(dict.fromkeys([*image.exposed_ports,
                                          *exposed(list(request.exposed_ports))])),
    )


def exposed(entries: list[str]) -> list[str]:
    """--expose entries as "port/proto" keys (ranges expanded; dockerd's words on a bad
    one)."""
    from services.builder.config import ports

    return ports(entries)
