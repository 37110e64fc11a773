"""Image verbs: pull, images, rmi."""

from __future__ import annotations

from clients.cli.context import Context
from clients.cli.errors import daemon_message
from clients.cli.progress import PullPrinter
from clients.cli.units import UsageError, ago, human_size, table

# argparse and typing would cost `muelle pull` ~10 modules read as it starts (~5 ms warm,
# more with a cold page cache); mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import IO, Any


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
    from vocab.platform import parse

    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def split_name(name: str) -> tuple[str, str]:
    """"docker.io/library/busybox:latest" -> ("busybox", "latest")."""
    from dataclasses import replace

    from vocab.reference import parse

    try:
        ref = parse(name)
    except Exception:  # noqa: BLE001 - show what the store has
        repo, _, tag = name.rpartition(":")
        return (repo, tag) if repo and "/" not in tag else (name, "<none>")
    return replace(ref, tag="", digest="").familiar, ref.tag or "<none>"


IMAGE_FILTERS = ("dangling", "reference", "label")
IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
                 "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE",
                 "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}


def images(ctx: Context, args: argparse.Namespace) -> int:
    from clients.cli import formatting

    filters = formatting.parse_filters(args.filter, IMAGE_FILTERS)
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"invalid filter 'dangling={value}'")
    summaries = [img for img in ctx.client().images(all=args.all)
                 if formatting.matches(filters, _image_tests(ctx, img))]
    if args.quiet:
        seen: list[str] = []
        for img in summaries:
            sid = img.id if args.no_trunc else short_id(img.id)
            if sid not in seen:
                seen.append(sid)
        ctx.out.write("".join(s + "\n" for s in seen))
        return 0
    if args.format:
        rows = [_image_fields(img, repo, tag, args.no_trunc)
                for img in summaries for repo, tag in _names(img)]
        ctx.out.write(formatting.render(args.format, rows, IMAGE_HEADERS))
        return 0
    table_rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for img in summaries:
        sid = img.id if args.no_trunc else short_id(img.id)
        created = ago(img.created) or "N/A"
        for repo, tag in _names(img):
            table_rows.append([repo, tag, sid, created, human_size(img.size)])
    ctx.out.write(table(table_rows))
    return 0


def _names(img: Any) -> list[tuple[str, str]]:
    return [split_name(t) for t in img.repo_tags] or [("<none>", "<none>")]


def _image_tests(ctx: Context, img: Any) -> dict[str, Callable[[str], bool]]:
    from fnmatch import fnmatchcase

    from clients.cli.formatting import label_test

    def reference(pattern: str) -> bool:
        # docker matches the familiar name with and without its tag
        return any(fnmatchcase(f"{repo}:{tag}", pattern) or fnmatchcase(repo, pattern)
                   for repo, tag in _names(img) if repo != "<none>")

    def label(value: str) -> bool:
        labels = dict(ctx.client().inspect_image(img.id).config.labels)
        return label_test(labels)(value)

    return {
        "dangling": lambda v: (not img.repo_tags) == (v.lower() in ("true", "1")),
        "reference": reference,
        "label": label,
    }


def _image_fields(img: Any, repo: str, tag: str, no_trunc: bool) -> Any:
    from clients.cli.formatting import go_time
    from clients.cli.gotemplate import Fields
    from vocab.timefmt import parse_seconds

    digest = next((d.partition("@")[2] for d in img.repo_digests
                   if split_name(d.partition("@")[0] + ":x")[0] == repo), "<none>")
    created = parse_seconds(img.created)
    return Fields(
        ID=img.id if no_trunc else short_id(img.id), Repository=repo, Tag=tag, Digest=digest,
        CreatedSince=ago(img.created) or "N/A",
        CreatedAt=go_time(created) if created is not None else "",
        Size=human_size(img.size), Containers="N/A", VirtualSize=human_size(img.size),
        SharedSize="N/A", UniqueSize="N/A")


def rmi(ctx: Context, args: argparse.Namespace) -> int:
    from vocab.errors import MuelleError, Unavailable

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
