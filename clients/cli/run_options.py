"""The options of `run` and `create` (docker's names), written once for two readers:
argparse (parser.py), and quick.py, which records them to parse a plain `run` without
importing argparse (~10 ms of every start with `re` and `enum`, which it needs)."""

from __future__ import annotations

from clients.cli.units import int32, int64

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REMAINDER = "..."  # argparse.REMAINDER: every word after the image is the command


def container_options(p: Any, verb: str, bool_flag: Any) -> None:
    """Add the options of ``verb`` (run or create) to ``p``: an argparse parser, with
    ``bool_flag`` the BoolFlag action, or quick.py's recorder, with its marker."""
    if verb == "run":
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("--sig-proxy", action=bool_flag,
                       help="forward received signals to the container (not with -t)")
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("--name", default="")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    p.add_argument("-h", "--hostname", default="")
    p.add_argument("--entrypoint", default=None)
    p.add_argument("-m", "--memory", default="")
    p.add_argument("--memory-swap", default="")
    p.add_argument("--pids-limit", type=int64, default=0)
    p.add_argument("--cpus", default="")
    p.add_argument("-c", "--cpu-shares", type=int64, default=0)
    p.add_argument("--cpuset-cpus", default="", help='CPUs the container may use ("0-2,4")')
    p.add_argument("--cpuset-mems", default="", help="memory nodes (NUMA) it may use")
    p.add_argument("--runtime", default="")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--stop-signal", default="")
    p.add_argument("--stop-timeout", type=int32, default=None)
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--security-opt", action="append", default=[])
    p.add_argument("--userns", default="", help='"host": no user namespace of its own')
    p.add_argument("--uidmap", action="append", default=[],
                   help="user namespace uid range CONTAINER:HOST:SIZE")
    p.add_argument("--gidmap", action="append", default=[],
                   help="gid range CONTAINER:HOST:SIZE (default: as --uidmap)")
    p.add_argument("--restart", default="", help="restart policy: no, on-failure[:N], "
                   "always, unless-stopped")
    p.add_argument("--log-opt", action="append", default=[],
                   help="log driver option: max-size=10m, max-file=3")
    p.add_argument("--init", action="store_true",
                   help="run an init inside the container that forwards signals and reaps")
    p.add_argument("--network", "--net", default="")
    p.add_argument("--group-add", action="append", default=[])
    p.add_argument("-v", "--volume", action="append", default=[],
                   help="bind mount or volume: [SRC:]DST[:ro]")
    p.add_argument("--mount", action="append", default=[],
                   help="type=bind|volume|tmpfs,source=..,target=..,readonly")
    p.add_argument("--tmpfs", action="append", default=[], help="tmpfs: PATH[:OPTIONS]")
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--network-alias", action="append", default=[])
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("image")
    p.add_argument("command", nargs=REMAINDER)
