"""OCI hooks under muelle-runtime and runc: order, state on stdin, namespaces, failures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.runtime.bundle import edit
from tests.integration.runtime.conftest import Runtime

ORDER = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]
# $1 = the hook's kind, $2 = where to write (/out inside the container for startContainer).
SCRIPT = ('cat > "$2/$1.json"; readlink /proc/self/ns/mnt > "$2/$1.mnt"; '
          'readlink /proc/self/ns/pid > "$2/$1.pid"; echo "$HOOKVAR" > "$2/$1.env"; '
          'echo "$1" >> "$2/order"')


def _hook(kind: str, out: str, **extra: Any) -> dict[str, Any]:
    return {"path": "/bin/sh", "args": ["sh", "-c", SCRIPT, "hook", kind, out],
            "env": ["HOOKVAR=from-" + kind], **extra}


def _with_hooks(out: Path, hooks: dict[str, list[dict[str, Any]]]) -> Any:
    def change(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = hooks
        cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                              "options": ["rbind", "rw"]})
    return change


def _all_hooks(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {kind: [_hook(kind, "/out" if kind == "startContainer" else str(out))]
            for kind in ORDER}


def test_hooks_run_in_order_with_the_state(runtime: Runtime, rootfs: Path,
                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    bundle = runtime.bundle("hooks", ["true"], rootfs)
    edit(bundle, _with_hooks(out, _all_hooks(out)))
    proc = runtime.run("hooks", bundle)
    assert proc.returncode == 0, proc.stderr
    order = (out / "order").read_text().split()
    if runtime.name == "runc":
        # runc 1.1.5 runs poststart while the init runs startContainer: either may be first.
        order[3:5] = sorted(order[3:5], key=ORDER.index)
    assert order == ORDER
    host_mnt = os.readlink("/proc/self/ns/mnt")
    host_pid = os.readlink("/proc/self/ns/pid")
    for kind in ORDER:
        state = json.loads((out / f"{kind}.json").read_text())
        assert state["id"] == "hooks" and state["bundle"] == str(bundle), kind
        assert state["ociVersion"]
        assert (out / f"{kind}.env").read_text().strip() == f"from-{kind}"
        if kind != "poststop":
            assert state["pid"] > 0, kind
        in_container = kind in ("createContainer", "startContainer")
        assert ((out / f"{kind}.mnt").read_text().strip() != host_mnt) == in_container, kind
        assert ((out / f"{kind}.pid").read_text().strip() != host_pid) == in_container, kind


def test_failing_create_runtime_hook_fails_create(runtime: Runtime, rootfs: Path,
                                                  tmp_path: Path) -> None:
    bundle = runtime.bundle("hook-fail", ["true"], rootfs)
    edit(bundle, lambda cfg: cfg.update(hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}))
    code, err, _ = runtime.create("hook-fail", bundle)
    assert code != 0
    if runtime.name == "muelle-runtime":
        assert "createRuntime hook /bin/sh exited 3: nope" in err and "Traceback" not in err
    assert runtime.status("hook-fail") == "absent"


def test_failing_start_container_hook_fails_start(muelle: Runtime, rootfs: Path,
                                                  tmp_path: Path) -> None:
    """runc 1.1.5's start returns 0 and the container just never runs its process."""
    runtime = muelle
    bundle = runtime.bundle("start-fail", ["sh", "-c", "echo ran > /tmp/ran"], rootfs)
    edit(bundle, lambda cfg: cfg.update(hooks={"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]}))
    code, err, _ = runtime.create("start-fail", bundle)
    assert code == 0, err
    try:
        proc = runtime.cmd("start", "start-fail")
        assert proc.returncode != 0
        assert "startContainer hook /bin/sh exited 4" in proc.stderr
        assert runtime.wait_status("start-fail", "stopped") == "stopped"
    finally:
        runtime.cmd("delete", "--force", "start-fail")


def test_failing_poststart_and_poststop_hooks_are_warnings(muelle: Runtime, rootfs: Path
                                                           ) -> None:
    """runtime-spec: a failed poststart or poststop hook is logged and the lifecycle goes
    on (runc 1.1.5 fails `run` on a poststart hook)."""
    runtime = muelle
    bundle = runtime.bundle("post-fail", ["true"], rootfs)
    failing = [{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}]
    edit(bundle, lambda cfg: cfg.update(hooks={"poststart": failing, "poststop": failing}))
    proc = runtime.run("post-fail", bundle)
    assert proc.returncode == 0, proc.stderr


def test_hook_timeout(muelle: Runtime, rootfs: Path) -> None:
    bundle = muelle.bundle("hook-slow", ["true"], rootfs)
    edit(bundle, lambda cfg: cfg.update(hooks={"prestart": [
        {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}))
    code, err, _ = muelle.create("hook-slow", bundle)
    assert code != 0 and "prestart hook /bin/sleep timed out after 1s" in err
    assert muelle.status("hook-slow") == "absent"


@pytest.mark.parametrize("hooks, message", [
    ({"prestrat": []}, "unknown hook kind 'prestrat'"),
    ({"poststop": [{"path": "sh"}]}, "absolute path"),
    ({"poststop": [{"path": "/bin/sh", "timeout": 0}]}, "timeout must be a positive"),
    ({"poststop": [{"path": "/bin/sh", "args": "sh -c true"}]}, "args must be a list"),
])
def test_bad_hooks_are_refused(muelle: Runtime, rootfs: Path, hooks: dict[str, Any],
                               message: str) -> None:
    bundle = muelle.bundle("hook-bad", ["true"], rootfs)
    edit(bundle, lambda cfg: cfg.update(hooks=hooks))
    proc = muelle.run("hook-bad", bundle)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
