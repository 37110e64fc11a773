"""What a Dockerfile's metadata instructions do to an image's "config" object (Docker's
JSON shape), apart from committing it: each function changes ``state.config`` and returns
the instruction as the history shows it ("ENV A=b", after the "#(nop)" prefix).

Two callers: the builder (build.py), which commits each result as a step, and `docker
commit/import --change` (changes.py), which applies a list of them to one config, as
dockerd's BuildFromConfig does with the same dispatchers.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from typing import Any, Protocol

from services.builder import config as cfgmod
from services.builder.dockerfile import Instruction, name_values
from services.builder.shlex import Lexer


class State(Protocol):
    """The part of a build stage an instruction reads and changes."""

    config: dict[str, Any]
    args: dict[str, str | None]  # build args in scope (None: declared without a value)
    cmd_set: bool  # a CMD came earlier in this stage (an ENTRYPOINT then keeps it)


def variables(state: State) -> dict[str, str]:
    """What variables expand to: build args in scope, then ENV (which wins)."""
    env = {k: v for k, v in state.args.items() if v is not None}
    env.update(cfgmod.env_map(state.config))
    return env


def env(state: State, ins: Instruction, lex: Lexer) -> str:
    parts = []
    known = variables(state)  # as Docker: not the values this same ENV sets
    for name, value in name_values(ins, lex.escape):
        key, val = lex.word(name, known), lex.word(value, known)
        cfgmod.set_env(state.config, key, val)
        parts.append(f"{key}={val}")
    return "ENV " + " ".join(parts)


def label(state: State, ins: Instruction, lex: Lexer) -> str:
    labels = dict(state.config.get("Labels") or {})
    parts = []
    known = variables(state)
    for name, value in name_values(ins, lex.escape):
        key, val = lex.word(name, known), lex.word(value, known)
        labels[key] = val
        parts.append(f"{key}={val}")
    state.config["Labels"] = labels
    return "LABEL " + " ".join(parts)


def maintainer(state: State, ins: Instruction, lex: Lexer) -> str:
    return "MAINTAINER " + ins.rest


def user(state: State, ins: Instruction, lex: Lexer) -> str:
    state.config["User"] = lex.word(ins.rest, variables(state))
    return f"USER {state.config['User']}"


def stopsignal(state: State, ins: Instruction, lex: Lexer) -> str:
    sig = lex.word(ins.rest, variables(state))
    cfgmod.check_signal(sig)
    state.config["StopSignal"] = sig
    return f"STOPSIGNAL {sig}"


def words_of(state: State, ins: Instruction, lex: Lexer) -> list[str]:
    """An instruction's words, expanded: the exec form's each, else the shell form split."""
    known = variables(state)
    if ins.exec_form is not None:
        return [lex.word(w, known) for w in ins.exec_form]
    return lex.words(ins.rest, known)


def expose(state: State, ins: Instruction, lex: Lexer) -> str:
    words = lex.words(ins.rest, variables(state))
    exposed = dict(state.config.get("ExposedPorts") or {})
    exposed.update({p: {} for p in cfgmod.ports(words)})
    state.config["ExposedPorts"] = exposed
    return "EXPOSE " + " ".join(sorted(words))


def volume(state: State, ins: Instruction, lex: Lexer) -> str:
    volumes = dict(state.config.get("Volumes") or {})
    words = words_of(state, ins, lex)
    if not words or any(not w.strip() for w in words):
        raise ins.error("VOLUME specified can not be an empty string")
    volumes.update({w: {} for w in words})
    state.config["Volumes"] = volumes
    return f"VOLUME [{' '.join(words)}]"


def command(state: State, ins: Instruction) -> list[str]:
    """RUN/CMD/ENTRYPOINT's argv: the exec form as written, else the shell's."""
    if ins.exec_form is not None:
        return list(ins.exec_form)
    return [*cfgmod.shell(state.config), ins.rest]


def cmd(state: State, ins: Instruction, lex: Lexer) -> str:
    state.config["Cmd"] = command(state, ins)
    state.cmd_set = True
    return f"CMD {go_quoted(state.config['Cmd'])}"


def entrypoint(state: State, ins: Instruction, lex: Lexer) -> str:
    # ENTRYPOINT [] unsets it: Docker stores null, not an empty list.
    state.config["Entrypoint"] = command(state, ins) or None
    if not state.cmd_set:
        state.config.pop("Cmd", None)  # an inherited CMD does not survive, as in Docker
    return f"ENTRYPOINT {go_quoted(state.config['Entrypoint'] or [])}"


def shell(state: State, ins: Instruction, lex: Lexer) -> str:
    assert ins.exec_form is not None
    if not ins.exec_form:
        raise ins.error("SHELL requires at least one argument")
    state.config["Shell"] = list(ins.exec_form)
    # Docker's history prints the list with Go's %v: [/bin/sh -c].
    return f"SHELL [{' '.join(ins.exec_form)}]"


def onbuild(state: State, ins: Instruction, lex: Lexer) -> str:
    assert ins.sub is not None
    state.config["OnBuild"] = [*(state.config.get("OnBuild") or []), ins.sub.original]
    return "ONBUILD " + ins.sub.original


def healthcheck(state: State, ins: Instruction, lex: Lexer) -> str:
    rest = ins.rest
    if rest.upper() == "NONE":
        if ins.flags:
            raise ins.error("HEALTHCHECK NONE takes no flags")
        hc: dict[str, Any] = {"Test": ["NONE"]}
    else:
        keyword, _, body = rest.partition(" ")
        if keyword.upper() != "CMD":
            raise ins.error(f"Unknown type \"{keyword}\" in HEALTHCHECK (try CMD)")
        body = body.strip()
        try:
            form = json.loads(body) if body.startswith("[") else None
        except ValueError:
            form = None
        if isinstance(form, list) and all(isinstance(w, str) for w in form):
            hc = {"Test": ["CMD", *form]}
        else:
            hc = {"Test": ["CMD-SHELL", body]}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                          ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            if flag in ins.flags:
                value = cfgmod.duration(ins.flags[flag], flag)
                if value:
                    hc[key] = value
        if "retries" in ins.flags:
            if not ins.flags["retries"].isdigit():
                raise ins.error(f"invalid retries value {ins.flags['retries']!r}")
            if int(ins.flags["retries"]):
                hc["Retries"] = int(ins.flags["retries"])
    state.config["Healthcheck"] = hc
    return f"HEALTHCHECK {json.dumps(hc)}"


def workdir(state: State, ins: Instruction, lex: Lexer) -> str:
    """The new WorkingDir (relative paths resolve against the current one); the builder
    also makes the directory in the image, a change only records it."""
    path = lex.word(ins.rest, variables(state))
    if not path:
        raise ins.error("WORKDIR requires at least one argument")
    path = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))
    state.config["WorkingDir"] = path
    return f"WORKDIR {path}"


def go_quoted(words: list[str]) -> str:
    """A list as Go's %q prints it, which is how Docker's history shows CMD and the like:
    ["sh" "-c"]."""
    return "[" + " ".join(json.dumps(w, ensure_ascii=False) for w in words) + "]"


# The instructions that only change the config, by name (WORKDIR also makes a directory
# when built, so the builder handles it itself).
CONFIG_ONLY: dict[str, Callable[[State, Instruction, Lexer], str]] = {
    "ENV": env, "LABEL": label, "MAINTAINER": maintainer, "USER": user,
    "STOPSIGNAL": stopsignal, "EXPOSE": expose, "VOLUME": volume, "CMD": cmd,
    "ENTRYPOINT": entrypoint, "SHELL": shell, "ONBUILD": onbuild, "HEALTHCHECK": healthcheck,
}
