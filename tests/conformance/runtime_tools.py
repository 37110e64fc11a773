"""Run the OCI runtime-tools validation suite against an OCI runtime and count results.

Not part of ``make test``: it needs Go and the runtime-tools sources (their validation/
programs are not in Debian's golang-github-opencontainers-runtime-tools-dev, which ships the
library only). Recipe (as root; outside the repo):

    apt-get install golang-go      # Debian's Go 1.19 builds it with the vendored deps
    git clone https://github.com/opencontainers/runtime-tools /work/build/runtime-tools
    git -C /work/build/runtime-tools checkout 0105384   # the commit Debian packages
    python -m tests.conformance.runtime_tools --src /work/build/runtime-tools \
        --runtime muelle|runc|crun [--json F] [--record DIR] [--only NAME...]
    python -m tests.conformance.runtime_tools --src ... --runtime X --recount DIR

It builds runtimetest and every validation/*/*.go program once (into the checkout,
GOFLAGS=-mod=vendor), runs each with RUNTIME=<runtime binary>, prints per-program TAP counts
and the totals, counted strictly (tap.py): a program is clean only if it exited 0, printed a
plan with its tests (or a skip plan), no ``not ok`` and no error block. --record keeps each
program's output; --recount counts such a directory again without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conformance.tap import classify

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


def run_one(program: Path, runtime: str, src: Path, timeout: float,
            record: Path | None = None) -> dict:
    try:
        proc = subprocess.run([str(program)], cwd=src, env=dict(os.environ, RUNTIME=runtime),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        code = -1
    if record:
        record.mkdir(parents=True, exist_ok=True)
        (record / f"{program.parent.name}.out").write_text(
            f"exit {code}\n--- stdout\n{out}--- stderr\n{err}")
    return result(out, code)


def read_record(path: Path) -> tuple[str, int]:
    """(stdout, exit code) of an output that --record wrote."""
    head, _, rest = path.read_text().partition("\n--- stdout\n")
    stdout, _, _stderr = rest.rpartition("--- stderr\n")
    return stdout, int(head.removeprefix("exit "))


def result(out: str, code: int) -> dict:
    v = classify(out, code)
    return {"pass": v.passed, "fail": v.failed, "skip": v.skipped, "exit": code,
            "clean": v.clean, "empty": v.empty, "problems": v.problems, "failures": v.failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, type=Path)
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--record", type=Path)
    parser.add_argument("--recount", type=Path,
                        help="count the outputs a --record run wrote instead of running")
    parser.add_argument("--only", nargs="*", default=[], help="program names to run")
    args = parser.parse_args()
    results = {}
    if args.recount:
        runs = [(p.stem, lambda p=p: result(*read_record(p)))
                for p in sorted(args.recount.glob("*.out"))]
    else:
        runtime = runtime_binary(args.runtime, args.src)
        runs = [(p.parent.name, lambda p=p: run_one(p, runtime, args.src, args.timeout,
                                                     args.record))
                for p in build(args.src)]
    for name, run in runs:
        if args.only and name not in args.only:
            continue
        results[name] = r = run()
        verdict = "clean" if r["clean"] else "FAILED: " + "; ".join(r["problems"])
        print(f"{name:40} pass {r['pass']:4} fail {r['fail']:3} skip {r['skip']:4}  {verdict}",
              flush=True)
    total = {k: sum(r[k] for r in results.values()) for k in ("pass", "fail", "skip")}
    clean = sum(1 for r in results.values() if r["clean"])
    empty = sum(1 for r in results.values() if r["empty"])
    print(f"TOTAL {args.runtime}: {total['pass']} passed, {total['fail']} failed, "
          f"{total['skip']} skipped; {clean}/{len(results)} programs strictly clean; "
          f"{empty} more ran no test and reported no error (plan 1..0)")
    if args.json:
        args.json.write_text(json.dumps({"runtime": args.runtime, "total": total,
                                         "clean_programs": clean, "empty_programs": empty,
                                         "programs": results}, indent=1))


if __name__ == "__main__":
    main()
