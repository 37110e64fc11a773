"""Container verbs: run, create, start, ps, logs, stop, kill, rm, wait."""

from __future__ import annotations

import os

from clients.cli.context import Context
from clients.cli.errors import RunFailed, daemon_message, engine_call
from clients.cli.mounts import parse_mount, parse_tmpfs
from clients.cli.units import (
    UsageError,
    ago,
    parse_bytes,
    parse_cpus,
    parse_env,
    parse_labels,
    table,
)

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator
    from typing import Any

    from vocab.errors import MuelleError


def build_request(args: argparse.Namespace, environ: Any) -> Any:
    """The CreateContainerRequest for run/create options (UsageError on bad values)."""
    from clients.sdk import lite

    if args.tty and args.interactive and not getattr(args, "detach", False) \
            and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    from clients.cli.network import parse_publish

    ports = [parse_publish(spec) for spec in args.publish]
    req = lite.engine.CreateContainerRequest(
        image=args.image, name=args.name, env=parse_env(args.env, environ),
        working_dir=args.workdir, user=args.user, hostname=args.hostname,
        memory=parse_bytes(args.memory) if args.memory else 0,
        memory_swap=parse_bytes(args.memory_swap, allow_unlimited=True)
        if args.memory_swap else 0,
        pids_limit=args.pids_limit, nano_cpus=parse_cpus(args.cpus) if args.cpus else 0,
        runtime=args.runtime, auto_remove=args.rm, labels=parse_labels(args.label),
        stop_signal=args.stop_signal, read_only=args.read_only, cap_add=args.cap_add,
        cap_drop=args.cap_drop, privileged=args.privileged,
        security_opt=[read_seccomp_file(o) for o in args.security_opt],
        network_mode=args.network, cpu_shares=args.cpu_shares, cpuset_cpus=args.cpuset_cpus,
        cpuset_mems=args.cpuset_mems, group_add=args.group_add,
        init=args.init, log_opts=parse_labels(args.log_opt), restart_policy=args.restart,
        binds=args.volume, volumes_from=args.volumes_from, links=args.link,
        mounts=[parse_mount(m) for m in args.mount], tmpfs=parse_tmpfs(args.tmpfs),
        ports=ports, publish_all=args.publish_all, network_aliases=args.network_alias,
        userns=args.userns, uid_maps=args.uidmap, gid_maps=args.gidmap,
        memory_reservation=parse_bytes(args.memory_reservation)
        if args.memory_reservation else 0,
        oom_kill_disable=args.oom_kill_disable,
        device_cgroup_rules=args.device_cgroup_rule, exposed_ports=args.expose)
    if args.memory_swappiness is not None:
        req.memory_swappiness = args.memory_swappiness
    if args.add_host or args.ulimit or args.device or args.shm_size or args.oom_score_adj:
        _host_options(req, args, lite)
    if args.platform:
        from clients.cli.images import parse_platform

        os_name, arch, variant = parse_platform(args.platform) or ("", "", "")
        req.platform.os, req.platform.architecture = os_name, arch
        req.platform.variant = variant
    if args.stop_timeout is not None:
        req.stop_timeout = args.stop_timeout
    health = _healthcheck(args)
    if health is not None:
        req.healthcheck.CopyFrom(health)
    if args.interactive:  # io: docker -i; attached run closes stdin at the client's EOF
        req.open_stdin = True
        req.stdin_once = not getattr(args, "detach", False)
    if args.tty:  # io: docker -t, sized like our terminal
        from clients.cli.terminal import size

        req.tty = True
        rows_cols = size()
        if rows_cols:
            req.console_size.rows, req.console_size.cols = rows_cols
    if args.command:
        req.cmd.values.extend(args.command)
    if args.entrypoint is not None:
        # docker: --entrypoint is one string, not split; "" resets the image's.
        req.entrypoint.values.append(args.entrypoint)
    return req


def _host_options(req: Any, args: argparse.Namespace, lite: Any) -> None:
    """--add-host, --ulimit, --device, --shm-size, --oom-score-adj (docker's forms; the
    engine checks them again, and what only the container's host can tell)."""
    from vocab import hostopts

    def parsed(flag: str, value: str, parse: Callable[[str], Any]) -> Any:
        try:
            return parse(value)
        except (ValueError, UsageError) as exc:
            raise UsageError(f'invalid argument "{value}" for "{flag}" flag: {exc}') from None

    for value in args.add_host:
        parsed("--add-host", value, hostopts.parse_extra_host)
        req.extra_hosts.append(value)
    for value in args.ulimit:
        name, soft, hard = parsed("--ulimit", value, hostopts.parse_ulimit)
        req.ulimits.append(lite.types.Ulimit(name=name, soft=soft, hard=hard))
    for value in args.device:
        host, container, mode = parsed("--device", value, hostopts.parse_device)
        req.devices.append(lite.types.DeviceMapping(
            path_on_host=host, path_in_container=container, cgroup_permissions=mode))
    if args.shm_size:
        req.shm_size = parsed("--shm-size", args.shm_size, parse_bytes)
    if args.oom_score_adj:
        parsed("--oom-score-adj", str(args.oom_score_adj),
               lambda v: hostopts.check_oom_score_adj(int(v)))
        req.oom_score_adj = args.oom_score_adj


_HEALTH_DURATIONS = (("interval", "interval_ns"), ("timeout", "timeout_ns"),
                     ("start_period", "start_period_ns"),
                     ("start_interval", "start_interval_ns"))


def _healthcheck(args: argparse.Namespace) -> Any:
    """The --health-* and --no-healthcheck options as docker's CLI reads them: None when
    none is given (the image's check applies); a negative duration is refused here."""
    from clients.sdk import lite

    given = bool(args.health_cmd or args.health_retries) or any(
        getattr(args, f"health_{name}") for name, _ in _HEALTH_DURATIONS)
    if args.no_healthcheck:
        if given:
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return lite.types.Healthcheck(test=["NONE"])
    if not given:
        return None
    if args.health_retries < 0:
        raise UsageError("--health-retries cannot be negative")
    out = lite.types.Healthcheck(retries=args.health_retries)
    if args.health_cmd:
        out.test.extend(["CMD-SHELL", args.health_cmd])
    for name, attr in _HEALTH_DURATIONS:
        value = getattr(args, f"health_{name}")
        if value < 0:
            raise UsageError(f"--health-{name.replace('_', '-')} cannot be negative")
        setattr(out, attr, value)
    return out


PULL_POLICIES = ("missing", "always", "never")


def _create(ctx: Context, args: argparse.Namespace) -> str:
    if args.pull not in PULL_POLICIES:
        raise UsageError(f"invalid pull option: '{args.pull}': must be one of \"always\", "
                         "\"missing\" or \"never\"")
    req = build_request(args, ctx.environ)
    reply = engine_call(lambda: _create_pulling(ctx, args, req))
    for warning in reply.warnings:
        ctx.error(f"WARNING: {warning}")
    return str(reply.id)


def _create_pulling(ctx: Context, args: argparse.Namespace, req: Any) -> Any:
    """Create, pulling the image first (--pull always) or when the engine has none that
    fits (--pull missing, the default): docker's "Unable to find image" then the pull's
    progress, both on stderr so that stdout keeps the container's ID or output."""
    from vocab.errors import NotFound

    client = ctx.client()
    if args.pull == "always":
        _pull(ctx, args)
        return client.create(args.image, request=req)
    try:
        return client.create(args.image, request=req)
    except NotFound as exc:
        missing = str(exc).startswith("No such image") or "does not match the specified " \
            "platform" in str(exc)
        if args.pull == "never" or not missing:
            raise
    ctx.error(f"Unable to find image '{_with_tag(args.image)}' locally")
    _pull(ctx, args)
    return client.create(args.image, request=req)


def _pull(ctx: Context, args: argparse.Namespace) -> None:
    # Imported here: images.py imports argparse, which a plain `run` never loads.
    from clients.cli.images import pull_image

    pull_image(ctx, args.image, args.platform, ctx.err)


def _with_tag(image: str) -> str:
    """The name docker prints: ":latest" added when the reference has no tag or digest."""
    return image if "@" in image or ":" in image.rpartition("/")[2] else f"{image}:latest"


def create(ctx: Context, args: argparse.Namespace) -> int:
    ctx.line(_create(ctx, args))
    return 0


def read_seccomp_file(opt: str) -> str:
    """`seccomp=FILE` becomes `seccomp=<its JSON>`: the engine may be on another host, so
    docker's CLI sends the profile itself, not its path."""
    key, sep, value = opt.replace("=", ":", 1).partition(":")
    if key != "seccomp" or not sep or value == "unconfined" or value.lstrip().startswith("{"):
        return opt
    try:
        with open(value) as f:
            return f"seccomp={f.read()}"
    except OSError as exc:
        raise UsageError(f"opening seccomp profile ({value}) failed: {exc.strerror}") from None


def run(ctx: Context, args: argparse.Namespace) -> int:
    cid = _create(ctx, args)
    client = ctx.client()
    if args.detach:
        try:
            engine_call(lambda: client.start(cid))
        except RunFailed:
            if args.rm:
                _quietly(lambda: client.remove(cid, force=True))
            raise
        ctx.line(cid)
        return 0
    from clients.cli.sigproxy import proxied

    with proxied(ctx.host, cid, enabled=args.sig_proxy and not args.tty):
        if args.interactive or args.tty:
            from clients.cli.attach import DEFAULT_DETACH_KEYS, attached, parse_detach_keys

            return attached(ctx, cid, start=True,
                            keys=parse_detach_keys(DEFAULT_DETACH_KEYS),
                            tty=args.tty, interactive=args.interactive)
        from clients.cli.output import attach_output

        return attach_output(ctx, cid, start=True)


def _quietly(fn: Callable[[], Any]) -> None:
    from vocab.errors import MuelleError

    try:  # noqa: SIM105 - contextlib costs every `run` ~4 ms to import
        fn()
    except MuelleError:
        pass


def _each(ctx: Context, names: list[str], fn: Callable[[str], Any],
          echo: bool = True, parallel: bool = False) -> int:
    """Apply ``fn`` to every name; an error is reported and the rest still run.

    ``parallel``: as the docker CLI's parallelOperation (stop, kill, pause, unpause, rm):
    up to PARALLEL calls at once, results printed in the order the names were given."""
    from vocab.errors import Unavailable

    outcomes: Iterator[tuple[Any, MuelleError | None]]
    if parallel and len(names) > 1:
        outcomes = _at_once(names, fn)
    else:
        outcomes = (_outcome(fn, name) for name in names)
    status = 0
    for name, (result, error) in zip(names, outcomes, strict=True):
        if isinstance(error, Unavailable):
            raise error
        if error is not None:
            ctx.error(daemon_message(str(error)))
            status = 1
            continue
        if echo:
            ctx.line(name if result is None else str(result))
    return status


PARALLEL = 50  # the docker CLI's defaultParallel


def _outcome(fn: Callable[[str], Any], name: str) -> tuple[Any, MuelleError | None]:
    from vocab.errors import MuelleError

    try:
        return fn(name), None
    except MuelleError as exc:
        return None, exc


def _at_once(names: list[str], fn: Callable[[str], Any]
             ) -> Iterator[tuple[Any, MuelleError | None]]:
    """Each name's (result, error) in order, the calls made from PARALLEL threads (the
    context gives each thread its own connection: Context.client). Daemon threads: a
    Ctrl-C leaves at once, as the docker CLI does, not after the calls under way (a
    stop's whole timeout)."""
    import _thread
    import threading

    results: list[tuple[Any, MuelleError | None] | None] = [None] * len(names)
    done = [threading.Event() for _ in names]
    todo = iter(range(len(names)))
    lock = _thread.allocate_lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            try:
                results[i] = _outcome(fn, names[i])
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                results[i] = (exc, None)
            done[i].set()

    for _ in range(min(PARALLEL, len(names))):
        threading.Thread(target=worker, daemon=True).start()
    for i in range(len(names)):
        done[i].wait()
        result = results[i]
        assert result is not None
        if isinstance(result[0], BaseException):
            raise result[0]
        yield result


def start(ctx: Context, args: argparse.Namespace) -> int:
    if args.attach:
        if len(args.containers) != 1:
            raise UsageError("you cannot start and attach multiple containers at once")
        from clients.cli.sigproxy import proxied

        config = ctx.client().inspect(args.containers[0]).config
        try:
            # docker start -a proxies signals whenever there is no tty (it has no flag)
            with proxied(ctx.host, args.containers[0], enabled=not config.tty):
                if getattr(args, "interactive", False):  # io: start -ai, stdin and its tty
                    from clients.cli.attach import (
                        DEFAULT_DETACH_KEYS,
                        attached,
                        parse_detach_keys,
                    )

                    return attached(ctx, args.containers[0], start=True,
                                    keys=parse_detach_keys(DEFAULT_DETACH_KEYS),
                                    tty=config.tty)
                from clients.cli.output import attach_output

                return attach_output(ctx, args.containers[0], start=True)
        except RunFailed as exc:
            ctx.error(daemon_message(str(exc)))
            return 1
    return _each(ctx, args.containers, ctx.client().start)


def stop(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, lambda c: ctx.client().stop(c, args.time),
                 parallel=True)


def pause(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, lambda c: ctx.client().pause(c),
                 parallel=True)


def unpause(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, lambda c: ctx.client().unpause(c),
                 parallel=True)


def restart(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, lambda c: ctx.client().restart(c, args.time))


def kill(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, lambda c: ctx.client().kill(c, args.signal),
                 parallel=True)


def rm(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers,
                 lambda c: (ctx.client().remove(c, force=args.force,
                                                volumes=args.volumes), None)[1],
                 parallel=True)


def wait(ctx: Context, args: argparse.Namespace) -> int:
    return _each(ctx, args.containers, lambda c: ctx.client().wait(c).exit_code)


def logs(ctx: Context, args: argparse.Namespace) -> int:
    if args.tail == "all":
        tail = 0
    else:
        try:
            tail = int(args.tail)
        except ValueError:
            raise UsageError(f"invalid --tail value {args.tail!r}") from None
        if tail < 0:
            tail = 0
        elif tail == 0:
            return 0  # docker: --tail 0 shows nothing
    stream = ctx.client().logs(args.container, follow=args.follow, tail=tail,
                               timestamps=args.timestamps, since=args.since)
    try:
        for entry in stream:
            ctx.write_bytes(entry.stream, entry.data)
    finally:
        stream.cancel()
    return 0


def _command(text: str, limit: int) -> str:
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return f'"{text}"'


PS_FILTERS = ("id", "name", "label", "status", "exited", "ancestor", "health")
PS_HEALTH = ("starting", "healthy", "unhealthy", "none")
PS_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}


def ps(ctx: Context, args: argparse.Namespace) -> int:
    filters: dict[str, list[str]] = {}
    if args.filter or args.format:  # the template engine (and json) only when asked for
        from clients.cli import formatting

        filters = formatting.parse_filters(args.filter, PS_FILTERS)
    for status in filters.get("status", []):
        if status not in PS_STATES:
            raise UsageError(f"invalid filter 'status={status}'")
    for health in filters.get("health", []):
        if health not in PS_HEALTH:  # docker's words
            raise UsageError(f"Unrecognised filter value for health: {health}")
    # docker: a status filter lists stopped containers without -a
    containers = ctx.client().containers(all=args.all or "status" in filters)
    if filters:  # the tests are closures per container: none made without a filter
        containers = [c for c in containers if formatting.matches(filters, _ps_tests(c))]
    if args.quiet:
        ctx.out.write("".join((c.id if args.no_trunc else c.id[:12]) + "\n"
                              for c in containers))
        return 0
    if args.format:
        ctx.out.write(formatting.render(
            args.format, [_ps_fields(c, args.no_trunc) for c in containers],
            {**PS_HEADERS, "Label": lambda *_: "LABEL"}))
        return 0
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for c in containers:
        rows.append([c.id if args.no_trunc else c.id[:12], c.image,
                     _command(c.command, 0 if args.no_trunc else 20), ago(c.created),
                     c.status, ports_text(c.ports), c.name])
    ctx.out.write(table(rows))
    return 0


def _ps_tests(c: Any) -> dict[str, Callable[[str], bool]]:
    import re

    from clients.cli.formatting import label_test

    def name(pattern: str) -> bool:
        try:
            return re.search(pattern, c.name) is not None
        except re.error:
            raise UsageError(f"invalid filter 'name={pattern}'") from None

    def exited(code: str) -> bool:
        if not code.lstrip("-").isdigit():
            raise UsageError(f"invalid filter 'exited={code}'")
        return bool(c.state == "exited" and c.status.startswith(f"Exited ({int(code)})"))

    return {
        "id": lambda v: c.id.startswith(v),
        "name": name,
        "label": label_test(dict(c.labels)),
        "status": lambda v: c.state == v,
        "exited": exited,
        "ancestor": lambda v: _same_image(c.image, c.image_id, v),
        "health": lambda v: (c.health or "none") == v,
    }


def _same_image(image: str, image_id: str, wanted: str) -> bool:
    """docker's ancestor=: the image by name (busybox is busybox:latest) or ID prefix."""
    from vocab.reference import parse

    hex_id = wanted.removeprefix("sha256:")
    if len(hex_id) >= 4 and image_id.removeprefix("sha256:").startswith(hex_id):
        return True
    try:
        return image == wanted or parse(image).canonical == parse(wanted).canonical
    except Exception:  # noqa: BLE001 - not a reference: no match by name
        return False


def _ps_fields(c: Any, no_trunc: bool) -> Any:
    from clients.cli.formatting import go_time, label_method, labels_text
    from clients.cli.gotemplate import Fields
    from vocab.timefmt import parse_seconds

    labels = dict(c.labels)
    created = parse_seconds(c.created)
    return Fields(
        ID=c.id if no_trunc else c.id[:12], Image=c.image,
        Command=_command(c.command, 0 if no_trunc else 20),
        CreatedAt=go_time(created) if created is not None else "",
        RunningFor=ago(c.created), Ports=ports_text(c.ports), State=c.state,
        Status=c.status, Size="", Names=c.name, Labels=labels_text(labels),
        Label=label_method(labels), Mounts=",".join(c.mounts),
        Networks=",".join(c.networks), LocalVolumes=str(sum(1 for m in c.mounts
                                                            if not m.startswith("/"))))


def ports_text(ports: Any) -> str:
    """docker ps's PORTS: "0.0.0.0:8080->80/tcp, 53/udp"."""
    out = []
    for p in ports:
        proto = p.protocol or "tcp"
        if p.host_port:
            out.append(f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{proto}")
        else:
            out.append(f"{p.container_port}/{proto}")
    return ", ".join(out)
