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
