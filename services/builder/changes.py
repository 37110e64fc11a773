"""`docker commit --change` and `docker import --change`: Dockerfile instructions applied
to an image's "config" object without building, as dockerd's BuildFromConfig does: the
changes are parsed as one Dockerfile, any instruction outside dockerd's set is refused
before anything is applied, then each one changes the config in turn (variables expand
against the config's own Env; an ENTRYPOINT drops the CMD unless a change set one)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from services.builder import instructions
from services.builder.dockerfile import InstructionError, parse
from services.builder.shlex import Lexer
from vocab.errors import InvalidArgument

# dockerd 20.10's validCommitCommands
VALID = ("CMD", "ENTRYPOINT", "HEALTHCHECK", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER",
         "VOLUME", "WORKDIR")


@dataclass
class _State:
    config: dict[str, Any]
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """A copy of ``config`` with ``changes`` applied; InvalidArgument (dockerd's words)
    for a change that is not one of VALID or does not parse."""
    if not [c for c in changes if c.strip()]:
        return config
    try:
        dockerfile = parse("\n".join(changes))
    except InstructionError as exc:
        raise InvalidArgument(exc.reason) from None
    for ins in dockerfile.instructions:
        if ins.cmd not in VALID:
            raise InvalidArgument(f"{ins.cmd.lower()} is not a valid change command")
    state = _State(copy.deepcopy(config))
    lex = Lexer(dockerfile.escape)
    try:
        for ins in dockerfile.instructions:
            if ins.cmd == "WORKDIR":
                instructions.workdir(state, ins, lex)
            else:
                instructions.CONFIG_ONLY[ins.cmd](state, ins, lex)
    except InstructionError as exc:
        raise InvalidArgument(exc.reason) from None
    return state.config


_HEALTH_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")


def merge_commit(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """What dockerd's commit does after the changes (daemon/commit.go merge()): fields a
    change left empty are taken from the container's config ``old`` again (a HEALTHCHECK
    change without --interval keeps the container's interval; an ENTRYPOINT that ends up
    empty brings the CMD back), lists and maps get what they lack of it."""
    out = dict(new)
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key) and old.get(key):
            out[key] = old[key]
    for key in ("ExposedPorts", "Volumes", "Labels"):
        merged = {**(old.get(key) or {}), **(out.get(key) or {})}
        if merged or key == "Labels":  # dockerd's Labels is never null after it
            out[key] = merged
    keys = {str(e).partition("=")[0] for e in out.get("Env") or []}
    env = [*(out.get("Env") or []),
           *(e for e in old.get("Env") or [] if str(e).partition("=")[0] not in keys)]
    if env:
        out["Env"] = env
    if not out.get("Entrypoint"):
        if not out.get("Cmd") and old.get("Cmd") is not None:
            out["Cmd"] = old["Cmd"]
        if out.get("Entrypoint") is None and old.get("Entrypoint") is not None:
            out["Entrypoint"] = old["Entrypoint"]
    if old.get("Healthcheck"):
        if not out.get("Healthcheck"):
            out["Healthcheck"] = old["Healthcheck"]
        else:
            out["Healthcheck"] = {**{k: v for k, v in old["Healthcheck"].items()
                                     if k in _HEALTH_FIELDS},
                                  **{k: v for k, v in out["Healthcheck"].items() if v}}
    return {k: v for k, v in out.items() if v is not None}
