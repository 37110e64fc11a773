"""OCI hooks (runtime-spec config.md#posix-platform-hooks): checked, then run in order.

    prestart, createRuntime  create, in the runtime's namespaces, once the container's
                             namespaces exist and before pivot_root (the init waits)
    createContainer          the init, in the container's namespaces, before pivot_root
    startContainer           the init, after `start` and pivot_root, before exec
    poststart                `start`, once the process was executed; a failure is a warning
    poststop                 `delete`, once everything is gone; a failure is a warning
Each gets the container's state on stdin; a hook that fails, exits non-zero or outlives its
timeout fails the step it belongs to - but for poststart and poststop, where the spec says
to log a warning and continue: the hooks after a failed one still run (run_all).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from vocab.errors import FailedPrecondition, InvalidArgument

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
# The ones the init must wait for create on (they need the init's host pid, or order).
BEFORE_PIVOT = ("prestart", "createRuntime", "createContainer")


def validate(hooks: Any) -> None:
    if hooks is None:
        return
    if not isinstance(hooks, dict):
        raise InvalidArgument("config.json: hooks must be an object")
    for kind, entries in hooks.items():
        if kind not in KINDS:
            raise InvalidArgument(f"config.json: unknown hook kind {kind!r}")
        if not isinstance(entries, list):
            raise InvalidArgument(f"config.json: hooks.{kind} must be a list")
        for hook in entries:
            if not isinstance(hook, dict) or not isinstance(hook.get("path"), str) \
                    or not hook["path"].startswith("/"):
                raise InvalidArgument(f"config.json: hooks.{kind}: every hook needs an "
                                      "absolute path")
            for key in ("args", "env"):
                value = hook.get(key)
                if value is not None and (not isinstance(value, list)
                                          or not all(isinstance(v, str) for v in value)):
                    raise InvalidArgument(f"config.json: hooks.{kind}: {key} must be a list "
                                          "of strings")
            timeout = hook.get("timeout")
            if timeout is not None and (not isinstance(timeout, int) or isinstance(
                    timeout, bool) or timeout <= 0):
                raise InvalidArgument(f"config.json: hooks.{kind}: timeout must be a "
                                      "positive number of seconds")


def of(config: dict[str, Any], *kinds: str) -> list[tuple[str, dict[str, Any]]]:
    hooks = config.get("hooks") or {}
    return [(kind, hook) for kind in kinds for hook in hooks.get(kind) or []]


def state(config: dict[str, Any], cid: str, status: str, pid: int, bundle: str
          ) -> dict[str, Any]:
    return {"ociVersion": config.get("ociVersion", "1.0.2"), "id": cid, "status": status,
            "pid": pid, "bundle": bundle, "annotations": config.get("annotations") or {}}


def run(hooks: list[tuple[str, dict[str, Any]]], state_: dict[str, Any],
        cwd: str | None = None) -> None:
    """Run each hook in order; the first failure raises FailedPrecondition."""
    data = json.dumps(state_).encode()
    for kind, hook in hooks:
        _run_one(kind, hook, data, cwd)


def run_all(hooks: list[tuple[str, dict[str, Any]]], state_: dict[str, Any],
            cwd: str | None, warn: Callable[[str], None]) -> None:
    """Run every hook in order; a failure is passed to ``warn`` and the next one runs."""
    data = json.dumps(state_).encode()
    for kind, hook in hooks:
        try:
            _run_one(kind, hook, data, cwd)
        except FailedPrecondition as exc:
            warn(str(exc))


def _run_one(kind: str, hook: dict[str, Any], data: bytes, cwd: str | None) -> None:
    path = hook["path"]
    env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
    try:
        proc = subprocess.run(hook.get("args") or [path], executable=path, input=data,
                              env=env, cwd=cwd, capture_output=True,
                              timeout=hook.get("timeout"), check=False)
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(f"{kind} hook {path} timed out after "
                                 f"{hook['timeout']}s") from None
    except OSError as exc:
        raise FailedPrecondition(f"{kind} hook {path}: {exc.strerror}") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()[-500:]
        raise FailedPrecondition(f"{kind} hook {path} exited {proc.returncode}"
                                 + (f": {detail}" if detail else ""))
