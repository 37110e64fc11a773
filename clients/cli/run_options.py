"""The options of `run` and `create` (docker's names), written once for two readers:
argparse (parser.py), and quick.py, which records them to parse a plain `run` without
importing argparse (~10 ms of every start with `re` and `enum`, which it needs)."""

from __future__ import annotations

from clients.cli.units import duration, int32, int64

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REMAINDER = "..."  # argparse.REMAINDER: every word after the image is the command


def container_options(p: Any, verb: str, bool_flag: Any) -> None:
    """Add the options of ``verb`` (run or create) to ``p``: an argparse parser, with
    ``bool_flag`` the BoolFlag action, or quick.py's recorder, with its marker."""
    if verb == "run":
        p.add_argument("-d", "--detach", action="store_true",
                       help="run the container in the background and print its ID")
        p.add_argument("--sig-proxy", action=bool_flag,
                       help="forward received signals to the container (not with -t)")
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("--name", default="", help="assign a name to the container")
    p.add_argument("--pull", default="missing",
                   help='pull the image before creating: "missing" (default), "always", "never"')
    p.add_argument("--platform", default="",
                   help='platform of the image, "os/arch[/variant]" (pulls it if missing)')
    p.add_argument("-e", "--env", action="append", default=[],
                   help="set an environment variable: KEY=VALUE, or KEY to take ours")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("-u", "--user", default="", help="user: NAME|UID[:GROUP|GID]")
    p.add_argument("-h", "--hostname", default="", help="container host name")
    p.add_argument("--entrypoint", default=None,
                   help='override the image\'s entrypoint ("" resets it)')
    p.add_argument("-m", "--memory", default="", help="memory limit (e.g. 64m, 1g)")
    p.add_argument("--memory-swap", default="",
                   help="memory plus swap limit; -1: unlimited swap")
    p.add_argument("--pids-limit", type=int64, default=0,
                   help="maximum number of processes (0: no limit)")
    p.add_argument("--cpus", default="", help="number of CPUs it may use (e.g. 1.5)")
    p.add_argument("-c", "--cpu-shares", type=int64, default=0,
                   help="CPU shares (relative weight)")
    p.add_argument("--cpuset-cpus", default="", help='CPUs the container may use ("0-2,4")')
    p.add_argument("--cpuset-mems", default="", help="memory nodes (NUMA) it may use")
    p.add_argument("--runtime", default="",
                   help="OCI runtime: muelle (the engine's default), runc, crun")
    p.add_argument("-l", "--label", action="append", default=[],
                   help="set a label: KEY=VALUE")
    p.add_argument("--stop-signal", default="",
                   help="signal that stops the container (default: the image's, else SIGTERM)")
    p.add_argument("--stop-timeout", type=int32, default=None,
                   help="seconds to wait after the stop signal before SIGKILL (default 10)")
    p.add_argument("--read-only", action="store_true",
                   help="mount the root filesystem and /etc/hosts, hostname, resolv.conf "
                        "read-only")
    p.add_argument("--cap-add", action="append", default=[], help="add a Linux capability")
    p.add_argument("--cap-drop", action="append", default=[],
                   help="drop a Linux capability (ALL: every one)")
    p.add_argument("--privileged", action="store_true",
                   help="every capability, the host's devices, no seccomp or masked paths")
    p.add_argument("--security-opt", action="append", default=[],
                   help="no-new-privileges, seccomp=unconfined|PROFILE.json")
    p.add_argument("--userns", default="", help='"host": no user namespace of its own')
    p.add_argument("--uidmap", action="append", default=[],
                   help="user namespace uid range CONTAINER:HOST:SIZE")
    p.add_argument("--gidmap", action="append", default=[],
                   help="gid range CONTAINER:HOST:SIZE (default: as --uidmap)")
    p.add_argument("--add-host", action="append", default=[],
                   help="add a line to /etc/hosts: NAME:IP (IP host-gateway: the host)")
    p.add_argument("--ulimit", action="append", default=[],
                   help="resource limit: NAME=SOFT[:HARD] (e.g. nofile=1024:2048)")
    p.add_argument("--shm-size", default="", help="size of /dev/shm (e.g. 128m; default 64m)")
    p.add_argument("--device", action="append", default=[],
                   help="give it a host device: HOST[:CONTAINER][:rwm]")
    p.add_argument("--oom-score-adj", type=int32, default=0,
                   help="OOM killer preference of its processes, -1000 to 1000")
    p.add_argument("--restart", default="", help="restart policy: no, on-failure[:N], "
                   "always, unless-stopped")
    p.add_argument("--log-opt", action="append", default=[],
                   help="log driver option: max-size=10m, max-file=3")
    p.add_argument("--health-cmd", default="", help="command to run to check health")
    p.add_argument("--health-interval", type=duration, default=0,
                   help="time between running the check (ms|s|m|h) (default 0s: 30s)")
    p.add_argument("--health-timeout", type=duration, default=0,
                   help="maximum time to allow one check to run (default 0s: 30s)")
    p.add_argument("--health-start-period", type=duration, default=0,
                   help="start period for the container to initialize before starting "
                        "health-retries countdown (default 0s)")
    p.add_argument("--health-start-interval", type=duration, default=0,
                   help="time between running the check during the start period "
                        "(default 0s: 5s)")
    p.add_argument("--health-retries", type=int32, default=0,
                   help="consecutive failures needed to report unhealthy (default 0: 3)")
    p.add_argument("--no-healthcheck", action="store_true",
                   help="disable any container-specified HEALTHCHECK")
    p.add_argument("--init", action="store_true",
                   help="run an init inside the container that forwards signals and reaps")
    p.add_argument("--network", "--net", default="",
                   help="network: bridge (default), none, host, container:NAME, or a "
                        "network's name")
    p.add_argument("--group-add", action="append", default=[],
                   help="add a supplementary group")
    p.add_argument("-v", "--volume", action="append", default=[],
                   help="bind mount or volume: [SRC:]DST[:ro]")
    p.add_argument("--mount", action="append", default=[],
                   help="type=bind|volume|tmpfs,source=..,target=..,readonly")
    p.add_argument("--tmpfs", action="append", default=[], help="tmpfs: PATH[:OPTIONS]")
    p.add_argument("--memory-reservation", default="",
                   help="memory soft limit (e.g. 64m)")
    p.add_argument("--memory-swappiness", type=int, default=None,
                   help="swap tendency 0-100 (default: the host's)")
    p.add_argument("--oom-kill-disable", action="store_true",
                   help="do not OOM-kill at the memory limit (cgroup v1)")
    p.add_argument("--device-cgroup-rule", action="append", default=[],
                   help="allow device nodes made later: 'c 1:3 rwm'")
    p.add_argument("--link", action="append", default=[],
                   help="name another container by an alias: CONTAINER[:ALIAS] (user "
                        "networks)")
    p.add_argument("--volumes-from", action="append", default=[],
                   help="the volumes of a container: CONTAINER[:ro|:rw]")
    p.add_argument("-p", "--publish", action="append", default=[],
                   help="publish a port: [IP:][HOST:]CONTAINER[/PROTO]")
    p.add_argument("--expose", action="append", default=[],
                   help="expose a port or a range: PORT[-PORT][/PROTO]")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every exposed port on a random host port")
    p.add_argument("--network-alias", action="append", default=[],
                   help="another name of the container on its network")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="keep stdin open (attached: send ours)")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("image", help="the image to run (pulled when missing)")
    p.add_argument("command", nargs=REMAINDER, help="command and arguments (default: the "
                   "image's)")
