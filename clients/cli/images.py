"""Image verbs: pull, images, rmi."""

from __future__ import annotations

import argparse
from typing import IO

from clients.cli.context import Context
from clients.cli.errors import daemon_message
from clients.cli.progress import PullPrinter
from clients.cli.units import UsageError, ago, human_size, table


def pull(ctx: Context, args: argparse.Namespace) -> int:
    pull_image(ctx, args.reference, args.platform, ctx.out)
    return 0


def pull_image(ctx: Context, reference: str, platform: str, out: IO[str]) -> None:
    """Pull ``reference`` (for ``platform``, "os/arch[/variant]", or the host's), printing
    docker pull's progress to ``out``."""
    printer = PullPrinter(out, ctx.isatty(out))
    for event in ctx.client().pull(reference, platform=parse_platform(platform)):
        printer.feed(event)


def parse_platform(text: str) -> tuple[str, str, str] | None:
    """(os, arch, variant) of a --platform value; None when not given."""
    if not text:
        return None
    from services.core.platform import parse

    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def split_name(name: str) -> tuple[str, str]:
    """"docker.io/library/busybox:latest" -> ("busybox", "latest")."""
    from dataclasses import replace

    from services.core.reference import parse

    try:
        ref = parse(name)
    except Exception:  # noqa: BLE001 - show what the store has
        repo, _, tag = name.rpartition(":")
        return (repo, tag) if repo and "/" not in tag else (name, "<none>")
    return replace(ref, tag="", digest="").familiar, ref.tag or "<none>"


def images(ctx: Context, args: argparse.Namespace) -> int:
    summaries = ctx.client().images()
    if args.quiet:
        seen: list[str] = []
        for img in summaries:
            sid = img.id if args.no_trunc else short_id(img.id)
            if sid not in seen:
                seen.append(sid)
        ctx.out.write("".join(s + "\n" for s in seen))
        return 0
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for img in summaries:
        sid = img.id if args.no_trunc else short_id(img.id)
        created = ago(img.created) or "N/A"
        names = [split_name(t) for t in img.repo_tags] or [("<none>", "<none>")]
        for repo, tag in names:
            rows.append([repo, tag, sid, created, human_size(img.size)])
    ctx.out.write(table(rows))
    return 0


def rmi(ctx: Context, args: argparse.Namespace) -> int:
    from services.core.errors import MuelleError, Unavailable

    status = 0
    for name in args.images:
        try:
            reply = ctx.client().remove_image(name, force=args.force)
        except MuelleError as exc:
            if isinstance(exc, Unavailable):
                raise
            ctx.error(daemon_message(str(exc)))
            status = 1
            continue
        for tag in reply.untagged:
            ctx.line(f"Untagged: {tag}")
        for deleted in reply.deleted:
            ctx.line(f"Deleted: {deleted}")
    return status
