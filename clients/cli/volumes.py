"""`muelle volume create/ls/inspect/rm/prune`, with docker's flags and output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from clients.cli.containers import _each
from clients.cli.context import Context
from clients.cli.system import _confirm
from clients.cli.units import human_size, parse_labels, table

_PRUNE_WARNING = {
    False: "WARNING! This will remove anonymous local volumes not used by at least one "
           "container.",
    True: "WARNING! This will remove all local volumes not used by at least one container.",
}


def volume_json(v: Any) -> dict[str, Any]:
    return {"CreatedAt": v.created_at, "Driver": v.driver or "local",
            "Labels": dict(v.labels) or None, "Mountpoint": v.mountpoint, "Name": v.name,
            "Options": None, "Scope": "local"}


def volume(ctx: Context, args: argparse.Namespace) -> int:
    verb = args.volume_verb
    client = ctx.client()
    if verb == "create":
        ctx.line(client.create_volume(args.name or "", parse_labels(args.label)).name)
        return 0
    if verb in ("ls", "list"):
        vols = sorted(client.volumes(), key=lambda v: v.name)
        if args.quiet:
            for v in vols:
                ctx.line(v.name)
        else:
            ctx.out.write(table([["DRIVER", "VOLUME NAME"]] +
                                [[v.driver or "local", v.name] for v in vols]))
        return 0
    if verb == "inspect":
        from vocab.errors import NotFound

        found, status = [], 0
        for name in args.volumes:
            try:
                found.append(volume_json(client.inspect_volume(name)))
            except NotFound as exc:
                ctx.error(f"Error: {exc}")
                status = 1
        ctx.line(json.dumps(found, indent=4))
        return status
    if verb in ("rm", "remove"):
        return _each(ctx, args.volumes, lambda n: client.remove_volume(n, force=args.force))
    # prune
    if not args.force and not _confirm(ctx, _PRUNE_WARNING[args.all]):
        return 0
    reply = client.prune_volumes(all=args.all)
    if reply.volumes:
        ctx.line("Deleted Volumes:")
        for name in reply.volumes:
            ctx.line(name)
        ctx.line("")
    ctx.line(f"Total reclaimed space: {human_size(reply.space_reclaimed)}")
    return 0
