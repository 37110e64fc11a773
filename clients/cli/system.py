"""Maintenance verbs: `image prune [-a] [-f]`, `system df [-v]`, `system check`."""

from __future__ import annotations

import argparse
import sys

from clients.cli.context import Context
from clients.cli.images import short_id, split_name
from clients.cli.units import human_binary, human_size, table

_PRUNE_WARNING = {
    False: "WARNING! This will remove all dangling images.",
    True: "WARNING! This will remove all images without at least one container "
          "associated to them.",
}


def _confirm(ctx: Context, text: str) -> bool:
    ctx.out.write(f"{text}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    answer = sys.stdin.readline() if sys.stdin else ""
    return answer.strip().lower() in ("y", "yes")


def image(ctx: Context, args: argparse.Namespace) -> int:
    # Only `prune` so far; the parser refuses other sub-verbs.
    if not args.force and not _confirm(ctx, _PRUNE_WARNING[args.all]):
        return 0
    reply = ctx.client().prune_images(all=args.all)
    if reply.untagged or reply.deleted:
        ctx.line("Deleted Images:")
        for name in reply.untagged:
            ctx.line(f"untagged: {name}")
        for item in reply.deleted:
            ctx.line(f"deleted: {item}")
        ctx.line("")
    ctx.line(f"Total reclaimed space: {human_size(reply.space_reclaimed)}")
    return 0


def _percent(part: int, whole: int) -> str:
    return f" ({round(100 * part / whole)}%)" if whole else ""


def system(ctx: Context, args: argparse.Namespace) -> int:
    if args.system_verb == "df":
        return _df(ctx, args)
    return _check(ctx, args.repair)


def _df(ctx: Context, args: argparse.Namespace) -> int:
    reply = ctx.client().system_df()
    rows = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]]
    for s in reply.summary:
        rows.append([s.type, str(s.total), str(s.active), human_size(s.size),
                     human_size(s.reclaimable) + _percent(s.reclaimable, s.size)])
    ctx.out.write(table(rows))
    if not args.verbose:
        return 0
    ctx.line("")
    ctx.line("Images space usage:")
    ctx.line("")
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "SIZE", "SHARED SIZE", "UNIQUE SIZE",
             "CONTAINERS"]]
    for img in reply.images:
        for repo, tag in [split_name(t) for t in img.repo_tags] or [("<none>", "<none>")]:
            rows.append([repo, tag, short_id(img.id), human_size(img.size),
                         human_size(img.shared_size), human_size(img.size - img.shared_size),
                         str(img.containers)])
    ctx.out.write(table(rows))
    ctx.line("")
    ctx.line("Containers space usage:")
    ctx.line("")
    rows = [["CONTAINER ID", "IMAGE", "SIZE", "STATUS", "NAMES"]]
    for c in reply.containers:
        rows.append([c.id[:12], short_id(c.image_id), human_size(c.size), c.state, c.name])
    ctx.out.write(table(rows))
    ctx.line("")
    ctx.line("Local Volumes space usage:")
    ctx.line("")
    rows = [["VOLUME NAME", "LINKS", "SIZE"]]
    for v in reply.volumes:
        rows.append([v.name, str(len(v.containers)), human_size(v.size)])
    ctx.out.write(table(rows))
    return 0


def _check(ctx: Context, repair: bool) -> int:
    reply = ctx.client().system_check(repair=repair)
    for p in reply.problems:
        ctx.line(f"{p.kind} {p.subject}: {p.message}" + (" (removed)" if p.repaired else ""))
    summary = (f"checked {reply.blobs} blobs, {reply.snapshots} snapshots, "
               f"{reply.images} images, {reply.containers} containers: ")
    left = sum(1 for p in reply.problems if not p.repaired)
    repaired = len(reply.problems) - left
    if left:
        ctx.error(summary + f"{len(reply.problems)} problem(s) found"
                  + (f", {repaired} repaired" if repaired else ""))
        return 1
    ctx.line(summary + (f"{repaired} problem(s) found and repaired" if repaired
                        else "no problems found"))
    return 0


def info(ctx: Context, args: argparse.Namespace) -> int:
    """`docker info`'s server part, with muelle's runtimes."""
    reply = ctx.client().info()
    ctx.line("Server:")
    ctx.line(f" Containers: {reply.containers}")
    ctx.line(f"  Running: {reply.containers_running}")
    ctx.line(f"  Paused: {reply.containers_paused}")
    ctx.line(f"  Stopped: {reply.containers_stopped}")
    ctx.line(f" Images: {reply.images}")
    ctx.line(f" Server Version: {reply.server_version}")
    ctx.line(f" Storage Driver: {reply.storage_driver}")
    ctx.line(" Cgroup Driver: cgroupfs")
    ctx.line(f" Cgroup Version: {reply.cgroup_version}")
    ctx.line(f" Runtimes: {' '.join(r.name for r in reply.runtimes)}")
    for r in reply.runtimes:
        ctx.line(f"  {r.name}: {r.path} ({r.version})")
    ctx.line(f" Default Runtime: {reply.default_runtime}")
    ctx.line(f" Kernel Version: {reply.kernel_version}")
    ctx.line(f" Operating System: {reply.operating_system}")
    ctx.line(f" OSType: {reply.os_type}")
    ctx.line(f" Architecture: {reply.architecture}")
    ctx.line(f" CPUs: {reply.ncpu}")
    ctx.line(f" Total Memory: {human_binary(reply.mem_total)}")
    ctx.line(f" Name: {reply.name}")
    ctx.line(f" Muelle Root Dir: {reply.root_dir}")
    return 0
