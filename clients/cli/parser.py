"""The `muelle` command line (argparse only: building it imports no grpc)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence

from clients.cli.boolflags import BoolFlag, explicit
from clients.cli.run_options import container_options
from clients.cli.units import UsageError, int32

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# argparse translates every message through gettext, which looks for catalogs on disk at
# each call (~40 stat calls while `run`'s parser is built). muelle's messages are English
# only, as docker's are.
argparse._ = lambda message: message  # type: ignore[attr-defined]
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # type: ignore[attr-defined]


@functools.cache
def _columns() -> int:
    """shutil.get_terminal_size() without importing shutil (and bz2, lzma...): ~4 ms."""
    with_env = os.environ.get("COLUMNS", "")
    if with_env.isdigit() and int(with_env) > 0:
        return int(with_env)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class Formatter(argparse.HelpFormatter):
    """argparse makes a formatter per add_argument (to check metavars) and each asks the
    terminal's width: asked once here."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)


class Parser(argparse.ArgumentParser):
    """Raises UsageError instead of printing usage and exiting 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        """Bare boolean flags (`commit -p CONTAINER`) mean true, as in docker."""
        args = explicit(self._option_string_actions,
                        list(sys.argv[1:] if args is None else args))
        return super().parse_known_args(args, namespace)


class _Skipped:
    """Stands in for the parser of a verb the command line does not use, taking and
    ignoring every call: building all ~50 sub-parsers would cost each start ~20 ms."""

    def __getattr__(self, name: str) -> Any:
        return self._ignore

    def _ignore(self, *_args: Any, **_kwargs: Any) -> Any:
        return self


class _OnlyVerb:
    """add_subparsers()'s action that builds the parser of one verb only."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser], verb: str) -> None:
        self._sub = sub
        self._verb = verb

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._verb or self._verb in kwargs.get("aliases", ()):
            return self._sub.add_parser(name, **kwargs)
        return _Skipped()


def build(verb: str | None = None) -> Parser:
    """The parser; with ``verb`` (a known one), only that verb's sub-parser is built."""
    parser = Parser(prog="muelle", description="muelle: run containers")
    parser.add_argument("-H", "--host", default=None,
                        help="gateway address (default $MUELLE_HOST or "
                             "unix://$MUELLE_RUN/gateway.sock)")
    # Docker's TLS flags; they set the MUELLE_TLS_* variables the SDK reads (address.py).
    parser.add_argument("--tlsverify", action="store_true", default=None,
                        help="mutual TLS to a tcp:// host (files from $MUELLE_CERT_PATH)")
    parser.add_argument("--tlscacert", help="CA the gateway's certificate is signed by")
    parser.add_argument("--tlscert", help="our client certificate")
    parser.add_argument("--tlskey", help="our client certificate's key")
    sub: Any = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    if verb is not None:
        sub = _OnlyVerb(sub, verb)

    p = sub.add_parser("pull", help="pull an image")
    p.add_argument("--platform", default="",
                   help='pull this platform, "os/arch[/variant]", not the host\'s')
    p.add_argument("reference")

    p = sub.add_parser("images", help="list images")
    p.add_argument("-a", "--all", action="store_true",
                   help="also intermediate images (a build's steps)")
    p.add_argument("-q", "--quiet", action="store_true", help="only the IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="dangling=true|false, reference=PATTERN, label=KEY[=VALUE]")
    p.add_argument("--format", default="",
                   help="Go template: 'table {{.Repository}}\\t{{.Tag}}', 'json'")

    p = sub.add_parser("rmi", help="remove images")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+")

    for verb, text in (("run", "create and run a container"),
                       ("create", "create a container")):
        p = sub.add_parser(verb, help=text, add_help=False)
        container_options(p, verb, BoolFlag)

    p = sub.add_parser("start", help="start containers")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all (default: running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only the IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="id=, name=, label=KEY[=VALUE], status=, exited=, ancestor=")
    p.add_argument("--format", default="",
                   help="Go template: 'table {{.ID}}\\t{{.Names}}', '{{json .}}', 'json'")

    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--since", default="")
    p.add_argument("container")

    p = sub.add_parser("stop", help="stop containers")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int32, default=None)
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("restart", help="restart containers")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int32, default=None)
    p.add_argument("containers", nargs="+")

    for verb, text in (("pause", "pause all processes within containers"),
                       ("unpause", "unpause all processes within containers")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("containers", nargs="+")

    p = sub.add_parser("stats", help="resource usage of containers")
    p.add_argument("--no-stream", action="store_true", help="one reading, then exit")
    p.add_argument("containers", nargs="*")

    p = sub.add_parser("top", help="the processes of a container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)

    p = sub.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="")
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true",
                   help="remove the container's anonymous volumes too")
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("inspect", help="show containers or images as JSON")
    p.add_argument("-f", "--format", default="",
                   help="Go template for each object: '{{.State.Status}}', '{{json .Config}}'")
    p.add_argument("--type", default="", choices=["", "container", "image"],
                   help="only this kind of object")
    p.add_argument("objects", nargs="+")

    p = sub.add_parser("wait", help="wait for containers to stop; print their exit codes")
    p.add_argument("containers", nargs="+")

    sub.add_parser("version", help="show versions")
    sub.add_parser("info", help="show system-wide information")

    p = sub.add_parser("save", help="save images to a tar archive (docker-archive + OCI)")
    p.add_argument("-o", "--output", default="", help="write to a file, not stdout")
    p.add_argument("images", nargs="+")

    p = sub.add_parser("load", help="load images from a tar archive")
    p.add_argument("-i", "--input", default="", help="read from a file, not stdin")
    p.add_argument("-q", "--quiet", action="store_true")

    p = sub.add_parser("image", help="manage images")
    image_sub = p.add_subparsers(dest="image_verb", metavar="COMMAND", parser_class=Parser)
    image_sub.required = True
    q = image_sub.add_parser("prune", help="remove unused images")
    q.add_argument("-a", "--all", action="store_true",
                   help="remove all images not used by a container, not only dangling ones")
    q.add_argument("-f", "--force", action="store_true", help="do not prompt")

    p = sub.add_parser("builder", help="manage builds")
    builder_sub = p.add_subparsers(dest="builder_verb", metavar="COMMAND", parser_class=Parser)
    builder_sub.required = True
    q = builder_sub.add_parser("prune", help="remove the build cache")
    q.add_argument("-a", "--all", action="store_true",
                   help="remove all build cache, not only what no tagged image uses")
    q.add_argument("-f", "--force", action="store_true", help="do not prompt")

    p = sub.add_parser("system", help="manage the engine")
    system_sub = p.add_subparsers(dest="system_verb", metavar="COMMAND", parser_class=Parser)
    system_sub.required = True
    q = system_sub.add_parser("df", help="show disk usage")
    q.add_argument("-v", "--verbose", action="store_true")
    q = system_sub.add_parser("check", help="verify the image store (blobs, snapshots, "
                              "records) and that the services agree on the containers")
    q.add_argument("--repair", action="store_true",
                   help="remove containers only some of the services know (crash leftovers)")
    p = sub.add_parser("tag", help="create a tag TARGET that refers to SOURCE")
    p.add_argument("source")
    p.add_argument("target")

    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("reference")

    p = sub.add_parser("login", help="log in to a registry")
    p.add_argument("-u", "--username", default="")
    p.add_argument("-p", "--password", default=None)
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("server", nargs="?", default="")

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-d", "--detach", action="store_true",
                   help="run the command in the background")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user", default="")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = sub.add_parser("attach", help="attach to a running container's output and stdin")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    p.add_argument("--detach-keys", default="", help="detach sequence (ctrl-p,ctrl-q)")
    p.add_argument("--sig-proxy", action=BoolFlag,
                   help="forward received signals to the container (not with a tty)")
    p.add_argument("container")

    p = sub.add_parser("logout", help="log out from a registry")
    p.add_argument("server", nargs="?", default="")
    _volume_parser(sub)

    p = sub.add_parser("port", help="list a container's published ports")
    p.add_argument("container")
    p.add_argument("private_port", nargs="?", default="")

    p = sub.add_parser("network", help="manage networks")
    net_sub = p.add_subparsers(dest="network_verb", metavar="COMMAND", parser_class=Parser)
    net_sub.required = True
    q = net_sub.add_parser("create", help="create a network")
    q.add_argument("--subnet", default="")
    q.add_argument("-d", "--driver", default="bridge", choices=["bridge"])
    q.add_argument("name")
    q = net_sub.add_parser("ls", help="list networks")
    q.add_argument("-q", "--quiet", action="store_true")
    q = net_sub.add_parser("inspect", help="show networks as JSON")
    q.add_argument("networks", nargs="+")
    q = net_sub.add_parser("rm", help="remove networks")
    q.add_argument("networks", nargs="+")
    q = net_sub.add_parser("connect", help="connect a running container to a network")
    q.add_argument("--alias", action="append", default=[])
    q.add_argument("--link", action="append", default=[], help="CONTAINER[:ALIAS]")
    q.add_argument("network")
    q.add_argument("container")
    q = net_sub.add_parser("disconnect", help="disconnect a container from a network")
    q.add_argument("network")
    q.add_argument("container")

    p = sub.add_parser("export", help="export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", default="", help="write to a file, not stdout")
    p.add_argument("container")

    p = sub.add_parser("import", help="create an image from a root filesystem tar")
    p.add_argument("-m", "--message", default="", help="commit message for the image")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="apply a Dockerfile instruction to the image's config")
    p.add_argument("file", help="tar file (plain, gzip or zstd), or - for stdin")
    p.add_argument("reference", nargs="?", default="", help="REPOSITORY[:TAG]")

    p = sub.add_parser("commit", help="create a new image from a container's changes")
    p.add_argument("-a", "--author", default="")
    p.add_argument("-m", "--message", default="")
    p.add_argument("-p", "--pause", action=BoolFlag,
                   help="pause the container during the commit (default true)")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="apply a Dockerfile instruction to the image's config")
    p.add_argument("container")
    p.add_argument("reference", nargs="?", default="", help="REPOSITORY[:TAG]")

    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], help="name:tag (repeatable)")
    p.add_argument("-f", "--file", default="", help="the Dockerfile (default PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], help="NAME=VALUE")
    p.add_argument("--target", default="", help="the stage to build")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached steps")
    p.add_argument("--pull", action="store_true", help="always pull the FROM images")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE for the image")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("--iidfile", default="", help="write the image ID to this file")
    p.add_argument("--network", default="", help="network for RUN steps")
    p.add_argument("--platform", default="", help="only the host's platform for now")
    # Intermediate containers are always removed: docker's --rm/--force-rm are accepted.
    p.add_argument("--rm", action=BoolFlag, help=argparse.SUPPRESS)
    p.add_argument("--force-rm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("path", help="context directory, or - for stdin")
    return parser


def _volume_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("volume", help="manage volumes")
    vsub = p.add_subparsers(dest="volume_verb", metavar="COMMAND", parser_class=Parser)
    vsub.required = True
    q = vsub.add_parser("create", help="create a volume")
    q.add_argument("-d", "--driver", default="local", choices=["local"])
    q.add_argument("-l", "--label", action="append", default=[])
    q.add_argument("name", nargs="?", default="")
    q = vsub.add_parser("ls", aliases=["list"], help="list volumes")
    q.add_argument("-q", "--quiet", action="store_true")
    q = vsub.add_parser("inspect", help="show volumes as JSON")
    q.add_argument("volumes", nargs="+")
    q = vsub.add_parser("rm", aliases=["remove"], help="remove volumes")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("volumes", nargs="+")
    q = vsub.add_parser("prune", help="remove unused volumes")
    q.add_argument("-a", "--all", action="store_true",
                   help="remove all unused volumes, not only anonymous ones")
    q.add_argument("-f", "--force", action="store_true", help="do not prompt")
