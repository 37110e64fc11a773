"""Run the OCI runtime-tools validation suite against an OCI runtime and count results.

Not part of ``make test``: it needs Go and the runtime-tools sources (their validation/
programs are not in Debian's golang-github-opencontainers-runtime-tools-dev, which ships the
library only). Given a checkout of github.com/opencontainers/runtime-tools at the commit
Debian packages (0105384, go 1.16, vendored deps; Debian's golang-go 1.19 builds it):

    python -m tests.conformance.runtime_tools --src DIR --runtime muelle|runc|crun [--json F]

It builds runtimetest and every validation/*/*.go program once (into DIR), runs each with
RUNTIME=<runtime binary> as root, and prints per-program TAP counts and the totals.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TAP = re.compile(r"^(not ok|ok)\b(.*)$")
CRUN_WRAPPER = """#!/bin/sh
# crun 1.8 refuses a cgroup v1/v2 hybrid host: hide the v2 mount in a private mount ns.
exec unshare --mount --propagation private sh -c \
  'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
"""


def build(src: Path) -> list[Path]:
    env = dict(os.environ, GOFLAGS="-mod=vendor", GOCACHE=str(src / ".gocache"),
               GOPATH=str(src / ".gopath"))
    if not (src / "runtimetest").exists():
        subprocess.run(["go", "build", "-tags", "netgo osusergo", "-ldflags",
                        "-extldflags -static", "-o", "runtimetest", "./cmd/runtimetest"],
                       cwd=src, env=env, check=True)
    programs = []
    for go in sorted((src / "validation").glob("*/*.go")):
        if go.parent.name == "util":
            continue
        binary = go.with_suffix(".t")
        if not binary.exists():
            subprocess.run(["go", "build", "-o", str(binary), str(go)], cwd=src, env=env,
                           check=True)
        programs.append(binary)
    return programs


def runtime_binary(name: str, src: Path) -> str:
    if name == "muelle":
        return str(Path(sys.executable).parent / "muelle-runtime")
    if name == "crun" and Path("/sys/fs/cgroup/unified").is_mount():
        wrapper = src / "crun-wrapper"
        wrapper.write_text(CRUN_WRAPPER)
        wrapper.chmod(0o755)
        return str(wrapper)
    found = shutil.which(name)
    if not found:
        sys.exit(f"runtime {name} not found")
    return found


def run_one(program: Path, runtime: str, src: Path, timeout: float) -> dict:
    counts = {"pass": 0, "fail": 0, "skip": 0, "crashed": False}
    failures: list[str] = []
    try:
        proc = subprocess.run([str(program)], cwd=src, env=dict(os.environ, RUNTIME=runtime),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        out, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        code = -1
    for line in out.splitlines():
        m = TAP.match(line)
        if not m:
            continue
        if m.group(1) == "not ok":
            counts["fail"] += 1
            failures.append(line.strip()[:160])
        elif "# SKIP" in m.group(2):
            counts["skip"] += 1
        else:
            counts["pass"] += 1
    if code != 0 and not counts["fail"]:
        counts["crashed"] = True
    return {**counts, "exit": code, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, type=Path)
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="*", default=[], help="program names to run")
    args = parser.parse_args()
    programs = build(args.src)
    runtime = runtime_binary(args.runtime, args.src)
    results = {}
    for program in programs:
        name = program.parent.name
        if args.only and name not in args.only:
            continue
        results[name] = run_one(program, runtime, args.src, args.timeout)
        r = results[name]
        print(f"{name:40} pass {r['pass']:4} fail {r['fail']:3} skip {r['skip']:4}"
              f"{'  (exited ' + str(r['exit']) + ')' if r['crashed'] else ''}", flush=True)
    total = {k: sum(r[k] for r in results.values()) for k in ("pass", "fail", "skip")}
    clean = sum(1 for r in results.values() if not r["fail"] and not r["crashed"])
    print(f"TOTAL {args.runtime}: {total['pass']} passed, {total['fail']} failed, "
          f"{total['skip']} skipped; {clean}/{len(results)} programs without a failure")
    if args.json:
        args.json.write_text(json.dumps({"runtime": args.runtime, "total": total,
                                         "clean_programs": clean, "programs": results},
                                        indent=1))


if __name__ == "__main__":
    main()
