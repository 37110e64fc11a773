"""A Dockerfile build with the classic builder's semantics, over a Backend that stores
images and runs containers (the gateway's, through the image store's and the shim's
contracts). Output is what `docker build` prints with DOCKER_BUILDKIT=0.

Each instruction makes one image: RUN through a container that is committed (no layer
when it wrote nothing), COPY/ADD/WORKDIR through the image store's AddFiles, the others
as a new config with an "empty_layer" history entry. A step is taken from the cache when
its key (parent image, history text with build args and content hash, config) matches
and the image is still stored. Stages run at once, each in its own thread (BuildKit does
this, the classic builder does not): a stage waits only where it names an earlier one
(FROM, COPY --from); the output is still printed stage after stage, exactly as a sequential
run prints it. `--target` stops after the named stage.
"""

from __future__ import annotations

import copy
import os
import posixpath
import queue
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from services.builder import config as cfgmod
from services.builder import instructions, remote
from services.builder.cache import Cache, step_key
from services.builder.context import (
    Source,
    Sources,
    find_sources,
    is_archive,
    member_filter,
)
from services.builder.dockerfile import Dockerfile, Instruction, parse, split_words
from services.builder.shlex import Lexer
from services.builder.tree import Tree
from vocab import platform as platforms
from vocab import reference
from vocab.errors import (
    Cancelled,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unimplemented,
)

Output = Generator[str, None, Any]


class RunFailed(FailedPrecondition):
    def __init__(self, command: str, exit_code: int) -> None:
        super().__init__(f"The command '{command}' returned a non-zero code: {exit_code}")
        self.command = command
        self.exit_code = exit_code


class Backend(Protocol):
    def base_image(self, ref: str, pull: bool, platform: str = ""
                   ) -> Generator[str, None, tuple[str, dict[str, Any]]]:
        """Progress lines while pulling; returns (image ID, its "config" object).
        ``platform`` ("linux/arm64"): that variant, pulled from the registry's index when
        the stored image is another; NotFound when the registry has no such variant."""

    def add_files(self, parent: str, config: dict[str, Any], created_by: str, dest: str = "",
                  single_name: str = "", chown: str = "", chmod: str = "",
                  tar: IO[bytes] | None = None) -> str:
        """The image store's AddFiles; returns the new image ID."""

    def run(self, parent: str, config: dict[str, Any], cmd: list[str], env: list[str],
            created_by: str, network: str) -> Generator[tuple[str, str], None, tuple[int, str]]:
        """Runs ``cmd`` in a container of ``parent``: yields ("container", id) once, then
        ("output", text); returns (exit code, committed image ID or "" on failure)."""

    def read_files(self, image: str, path: str, out: IO[bytes]) -> None:
        """Writes the tar of ``path`` in ``image`` (the image store's ReadFiles)."""

    def exists(self, image_id: str) -> bool: ...

    def tag(self, image_id: str, name: str) -> None: ...


@dataclass
class Options:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str = ""
    platform: str = ""  # `--platform`: every stage's unless its FROM names one


@dataclass
class Stage:
    index: int
    name: str
    platform: str = ""  # "" for the host's
    image_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _stages(df: Dockerfile) -> tuple[list[Instruction], list[list[Instruction]]]:
    meta: list[Instruction] = []
    stages: list[list[Instruction]] = []
    for ins in df.instructions:
        if ins.cmd == "FROM":
            stages.append([ins])
        elif not stages:
            if ins.cmd != "ARG":
                raise ins.error("no build stage in current context (FROM must come first)")
            meta.append(ins)
        else:
            stages[-1].append(ins)
    if not stages:
        raise InvalidArgument("the Dockerfile has no FROM instruction (is it empty?)")
    return meta, stages


class Builder:
    def __init__(self, backend: Backend, cache: Cache, context: Tree | str, dockerfile: str,
                 options: Options, cancelled: Callable[[], bool] = lambda: False) -> None:
        """``context``: the build context's index (tree.py), or a directory holding it."""
        self.backend = backend
        self.cache = cache
        self.context = context if isinstance(context, Tree) else Tree.from_dir(context)
        self.options = options
        self.cancelled = cancelled
        for tag in options.tags:
            if reference.parse(tag).digest:
                raise InvalidArgument(f"refusing to create a tag with a digest reference: {tag}")
        self.df = parse(dockerfile)
        self.lex = Lexer(self.df.escape)
        self.meta, self.stage_lines = _stages(self.df)
        self.used_args: set[str] = set()
        self._names = [self._stage_name(s[0]).lower() for s in self.stage_lines]
        self.stages: list[Stage | None] = [None] * len(self.stage_lines)  # as each FROM runs
        self._done = [threading.Event() for _ in self.stage_lines]  # a stage ended
        self._failed: tuple[int, BaseException] | None = None  # the first stage that failed
        self._abort = threading.Event()  # stop the other stages (a failure, the client)
        self._slots = threading.Semaphore(MAX_PARALLEL_STAGES)
        self._meta_values: dict[str, str] = {}
        self.on_stage: Callable[[int, str], None] = lambda index, event: None  # for tests

    # ------------------------------------------------------------------ the whole build

    def build(self) -> Output:
        """Yields output text; returns the built image's ID."""
        last = len(self.stage_lines) - 1
        if self.options.target:
            names = [self._stage_name(s[0]).lower() for s in self.stage_lines]
            if self.options.target.lower() not in names:
                raise InvalidArgument(f"failed to reach build target {self.options.target} "
                                      "in Dockerfile")
            last = names.index(self.options.target.lower())
        todo = [list(s) for s in self.stage_lines[: last + 1]]
        if self.options.labels:
            # As the classic builder: one more LABEL step a label, shown as given.
            esc = self.df.escape
            for k, v in sorted(self.options.labels.items()):
                text = f"{_quote(k, esc)}={_quote(v, esc)}"
                todo[-1].append(Instruction("LABEL", 0, f"LABEL {k}={v}", text))
        self._meta_values = self._meta_args()
        total = len(self.meta) + sum(len(s) for s in todo)
        n = 0
        for ins in self.meta:
            n += 1
            yield f"Step {n}/{total} : {ins.original}\n"
        # Every stage runs in its own thread, so stages that don't depend on each other
        # build at once (a stage waits only where it names an earlier one: FROM, COPY
        # --from). Their output is shown stage after stage, as the classic builder's
        # sequential run prints it; a later stage's output waits in its queue meanwhile.
        queues: list[queue.Queue[tuple[str, Any]]] = [queue.Queue() for _ in todo]
        threads = []
        for index, lines in enumerate(todo):
            t = threading.Thread(target=self._pump, name=f"build-stage-{index}", daemon=True,
                                 args=(index, lines, n, total, queues[index]))
            threads.append(t)
            n += len(lines)
        try:
            for t in threads:
                t.start()
            for index in range(len(todo)):
                while True:
                    kind, value = queues[index].get()
                    if kind == "text":
                        yield value
                    elif kind == "done":
                        break
                    elif self._failed is None or self._failed[0] == index:
                        raise value
                    else:
                        yield from self._raise_first(queues)
        finally:
            self._abort.set()
            for t in threads:
                if t.is_alive():
                    t.join()
        final = self.stages[len(todo) - 1]
        assert final is not None
        if not final.image_id:
            raise InvalidArgument("No image was generated. Is your Dockerfile empty?")
        unused = sorted(set(self.options.build_args) - self.used_args - _PREDEFINED)
        if unused:
            yield (f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                   "consumed\n")
        yield f"Successfully built {short(final.image_id)}\n"
        for tag in self.options.tags:
            self.backend.tag(final.image_id, tag)
            yield f"Successfully tagged {_display(tag)}\n"
        return final.image_id

    def _pump(self, index: int, lines: list[Instruction], n: int, total: int,
              out: queue.Queue[tuple[str, Any]]) -> None:
        """One stage's steps, in this thread; its output into ``out``."""
        self.on_stage(index, "start")
        try:
            with self._slots:
                steps = self._run_stage(index, lines, n, total)
                while True:
                    try:
                        out.put(("text", next(steps)))
                    except StopIteration:
                        break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            if self._failed is None and not isinstance(exc, _StageGone):
                self._failed = (index, exc)
            self._abort.set()
            out.put(("error", exc))
        else:
            out.put(("done", None))
        finally:
            self._done[index].set()
            self.on_stage(index, "end")

    def _run_stage(self, index: int, lines: list[Instruction], n: int, total: int) -> Output:
        stage: Stage | None = None
        for ins in lines:
            if self.cancelled():
                raise Cancelled("the build was cancelled")
            if self._abort.is_set():
                raise _StageGone()
            n += 1
            yield f"Step {n}/{total} : {ins.original}\n"
            if ins.cmd == "FROM":
                stage = yield from self._from(ins, index)
            else:
                assert stage is not None
                yield from self._dispatch(stage, ins)
            assert stage is not None
            yield f" ---> {short(stage.image_id)}\n"

    def _raise_first(self, queues: list[queue.Queue[tuple[str, Any]]]) -> Output:
        """The stage that failed first: its output to the end, then its error (the other
        stages were stopped because of it)."""
        assert self._failed is not None
        index, exc = self._failed
        while True:
            kind, value = queues[index].get()
            if kind == "text":
                yield value
            elif kind == "error":
                raise exc

    def _meta_args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for ins in self.meta:
            for name, default in self._arg_pairs(ins, values):
                if name in self.options.build_args:
                    values[name] = self.options.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = default
        return values

    def _arg_pairs(self, ins: Instruction, env: dict[str, str]
                   ) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for word in _split_arg(ins):
            name, eq, value = word.partition("=")
            if not name:
                raise ins.error("ARG names can not be blank")
            out.append((name, self.lex.word(value, env) if eq else None))
        return out

    @staticmethod
    def _stage_name(ins: Instruction) -> str:
        words = ins.rest.split()
        return words[2] if len(words) == 3 and words[1].lower() == "as" else ""

    # ------------------------------------------------------------------ instructions

    def _from(self, ins: Instruction, index: int) -> Output:
        meta_args = self._meta_values
        words = ins.rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise ins.error("FROM requires either one or three arguments")
        plat = self.lex.word(ins.flags.get("platform", ""), meta_args) or self.options.platform
        if plat:
            try:
                platforms.parse(plat)
            except ValueError as exc:
                raise ins.error(f"FROM --platform: {exc}") from None
        image = self.lex.word(words[0], meta_args)
        if not image:
            raise ins.error("base name (" + words[0] + ") should not be blank")
        name = words[2].lower() if len(words) == 3 else ""
        stage = Stage(index=index, name=name, platform=plat)
        earlier = self._stage(image, index)
        if earlier is not None:
            stage.image_id, stage.config = earlier.image_id, copy.deepcopy(earlier.config)
            stage.platform = earlier.platform
        elif image.lower() != "scratch":
            stage.image_id, stage.config = yield from self.backend.base_image(
                image, self.options.pull, plat)
        elif plat and not _is_host(plat):
            raise ins.error(f"FROM scratch for {plat}: a platform other than the host's "
                            "needs a base image with that platform (not supported yet)")
        cfgmod.default_path(stage.config)
        self.stages[index] = stage
        triggers = list(stage.config.pop("OnBuild", None) or [])
        if triggers:
            yield f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n"
            for text in triggers:
                trigger = parse(str(text)).instructions[0]
                if trigger.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
                    raise ins.error(f"{trigger.cmd} isn't allowed as an ONBUILD trigger")
                yield from self._dispatch(stage, trigger)
        return stage

    def _stage(self, name: str, before: int) -> Stage | None:
        """The earlier stage ``name`` (its AS name or index) names, once it has ended (the
        caller's build slot is given up meanwhile); None when it names an image."""
        found = next((i for i in range(before) if self._names[i] == name.lower()), None)
        if found is None and name.isdigit() and int(name) < before:
            found = int(name)
        if found is None:
            return None
        self.on_stage(before, f"wait {found}")
        self._slots.release()
        try:
            self._done[found].wait()
        finally:
            self._slots.acquire()
        stage = self.stages[found]
        if stage is None or not self._done[found].is_set() or (
                self._failed is not None and self._failed[0] == found):
            raise _StageGone()
        return stage

    def _dispatch(self, stage: Stage, ins: Instruction) -> Output:
        change = instructions.CONFIG_ONLY.get(ins.cmd)
        if change is not None:  # a new config, no layer
            text = change(stage, ins, self.lex)
            yield from self._commit_config(stage, self._nop(stage, text))
            return
        handler = getattr(self, "_i_" + ins.cmd.lower())
        yield from handler(stage, ins)

    def _nop(self, stage: Stage, text: str, workdir: bool = False) -> str:
        sh = " ".join(cfgmod.shell(stage.config))
        return f"{sh} #(nop) {text}" if workdir else f"{sh} #(nop)  {text}"

    def _commit_config(self, stage: Stage, created_by: str) -> Output:
        """A metadata-only step: a new config, no layer."""
        yield from self._cached_or(stage, created_by, "", _at_once(
            lambda: self.backend.add_files(stage.image_id, stage.config, created_by)))

    def _cached_or(self, stage: Stage, created_by: str, extra: str,
                   make: Callable[[], Output]) -> Output:
        """The cached image of this step, or the one ``make`` yields output for and
        returns (then remembered)."""
        key = step_key(stage.image_id, created_by, stage.config, extra)
        if not self.options.no_cache:
            hit = self.cache.get(key)
            if hit and self.backend.exists(hit):
                yield " ---> Using cache\n"
                stage.image_id = hit
                return
        parent = stage.image_id
        stage.image_id = yield from make()
        self.cache.put(key, stage.image_id, parent)

    def _i_arg(self, stage: Stage, ins: Instruction) -> Output:
        parts = []
        for name, default in self._arg_pairs(ins, instructions.variables(stage)):
            if name in self.options.build_args:
                value: str | None = self.options.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                value = default
            else:
                value = self._meta_values.get(name)
            stage.args[name] = value
            parts.append(name if default is None else f"{name}={default}")
        yield from self._commit_config(stage, self._nop(stage, "ARG " + " ".join(parts)))

    def _i_workdir(self, stage: Stage, ins: Instruction) -> Output:
        instructions.workdir(stage, ins, self.lex)
        path = stage.config["WorkingDir"]
        created_by = self._nop(stage, f"WORKDIR {path}", workdir=True)
        with tempfile.TemporaryFile() as empty:
            Sources(Tree()).write(empty)

            def make() -> str:
                empty.seek(0)
                return self.backend.add_files(stage.image_id, stage.config, created_by,
                                              dest=path, tar=empty)

            yield from self._cached_or(stage, created_by, "", _at_once(make))

    def _i_run(self, stage: Stage, ins: Instruction) -> Output:
        cmd = instructions.command(stage, ins)
        env = cfgmod.env_map(stage.config)
        args = sorted((k, v) for k, v in stage.args.items() if v is not None and k not in env)
        arg_env = [f"{k}={v}" for k, v in args]
        # Proxy args reach RUN without an ARG line and stay out of the history (and so
        # out of the cache key), as Docker's predefined args do.
        proxies = [f"{k}={v}" for k, v in sorted(self.options.build_args.items())
                   if k in _PREDEFINED and k not in stage.args and k not in env]
        shown = " ".join(cmd)
        created_by = (f"|{len(args)} {' '.join(arg_env)} {shown}" if args else shown)
        if not stage.image_id:
            raise ins.error("RUN needs a base image with a shell (the stage is FROM scratch "
                            "with nothing in it)")
        if stage.platform and not _can_execute(stage.platform):
            host = platforms.name("linux", *platforms.host_arch())
            raise FailedPrecondition(
                f"RUN in a {stage.platform} stage: this {host} host cannot execute its "
                "programs (muelle runs no emulator; COPY, ADD and metadata steps work)")

        def make() -> Output:
            runner = self.backend.run(stage.image_id, stage.config, cmd,
                                      [*(stage.config.get("Env") or []), *arg_env,
                                       *proxies],
                                      created_by, self.options.network_mode)
            cid = ""
            try:
                while True:
                    kind, text = next(runner)
                    if kind == "container":
                        cid = text
                        yield f" ---> Running in {cid[:12]}\n"
                    else:
                        yield text
            except StopIteration as done:
                code, image_id = done.value
            if cid:
                yield f"Removing intermediate container {cid[:12]}\n"
            if code != 0:
                raise RunFailed(shown, code)
            return image_id

        yield from self._cached_or(stage, created_by, "RUN", make)

    def _i_copy(self, stage: Stage, ins: Instruction) -> Output:
        yield from self._copy(stage, ins, add=False)

    def _i_add(self, stage: Stage, ins: Instruction) -> Output:
        yield from self._copy(stage, ins, add=True)

    def _copy(self, stage: Stage, ins: Instruction, add: bool) -> Output:
        words = instructions.words_of(stage, ins, self.lex)
        if len(words) < 2:
            raise ins.error(f"{ins.cmd} requires at least two arguments")
        patterns, dest = words[:-1], words[-1]
        written = dest  # history shows the destination as written
        env = instructions.variables(stage)
        chown = self.lex.word(ins.flags.get("chown", ""), env)
        chmod = ins.flags.get("chmod", "")
        if not dest.startswith("/"):
            trailing = dest.endswith("/") or dest in (".", "")
            dest = posixpath.join(stage.config.get("WorkingDir") or "/", dest)
            dest = posixpath.normpath(dest) + ("/" if trailing else "")
            dest = dest.replace("//", "/")
        urls = [p for p in patterns if remote.is_url(p)]
        if urls and not add:
            raise ins.error("source can't be a URL for COPY")
        if urls and len(urls) != len(patterns):
            raise Unimplemented("ADD of URLs together with local files is not supported yet")
        from_ref = ins.flags.get("from", "")
        scratch = tempfile.mkdtemp(prefix="copy-from-") if from_ref or urls else ""
        try:
            tree, sources, extra = self.context, [], ""
            if from_ref:
                tree, sources, extra = yield from self._from_sources(ins, from_ref, patterns,
                                                                    scratch, stage.index)
            elif urls:
                for i, url in enumerate(urls):
                    os.mkdir(os.path.join(scratch, str(i)))
                    name = remote.fetch(url, os.path.join(scratch, str(i)))
                    sources.append(Source(f"{i}/{name}", False))
                tree = Tree.from_dir(scratch)
            else:
                for pattern in patterns:
                    sources.extend(find_sources(tree, pattern, ins.cmd))
            archives = {s.rel for s in sources if add and not from_ref and not urls
                        and not s.is_dir and is_archive(tree, s.rel)}
            single = len(sources) == 1 and not sources[0].is_dir and not archives
            if len(sources) > 1 and not dest.endswith("/"):
                dest += "/"  # several sources: dest is a directory
            # The cache is answered from the index; the sources' bytes are read (and the
            # layer's tar written) only when it misses.
            copied = Sources(tree)
            for s in sources:
                if s.is_dir:
                    copied.add_dir(s.rel)
                elif s.rel in archives:
                    copied.add_archive(s.rel)
                else:
                    copied.add_file(s.rel, s.basename)
            kind = ("dir" if len(sources) == 1 and sources[0].is_dir else
                    "file" if len(sources) == 1 else "multi")
            # Docker's history text, down to its missing blank after --chown=X.
            flags = f"--chown={chown}" if chown else ""
            created_by = f"{' '.join(cfgmod.shell(stage.config))} #(nop) {ins.cmd} " \
                         f"{flags}{kind}:{copied.digest()} in {written} "

            def make() -> str:
                with tempfile.TemporaryFile() as tarf:
                    copied.write(tarf)
                    tarf.seek(0)
                    return self.backend.add_files(
                        stage.image_id, stage.config, created_by, dest=dest,
                        single_name=sources[0].basename if single else "",
                        chown=chown, chmod=chmod, tar=tarf)

            yield from self._cached_or(stage, created_by, f"{chown}\0{chmod}\0{extra}",
                                       _at_once(make))
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

    def _read_into(self, image_id: str, path: str, dest: str) -> bool:
        """``path`` of the image extracted into ``dest``; whether it is a directory
        (ReadFiles sends a directory as a "." entry and its contents)."""
        names: list[str] = []

        def keep(member: tarfile.TarInfo, where: str) -> tarfile.TarInfo | None:
            names.append(member.name)
            return member_filter(member, where)

        with tempfile.TemporaryFile() as f:
            self.backend.read_files(image_id, path, f)
            f.seek(0)
            with tarfile.open(fileobj=f, mode="r|") as tar:
                tar.extractall(dest, filter=keep)
        return "." in names or "./" in names

    def _from_sources(self, ins: Instruction, from_ref: str, patterns: list[str],
                      scratch: str, current: int) -> Output:
        """COPY --from: each source path read out of the stage's or image's filesystem
        into ``scratch``; returns (its tree, sources, the source image ID for the cache)."""
        earlier = self._stage(from_ref, current)
        if earlier is not None:
            image_id = earlier.image_id
        else:
            image_id, _ = yield from self.backend.base_image(from_ref, self.options.pull,
                                                             self.options.platform)
        if not image_id:
            raise ins.error(f"COPY --from={from_ref}: the stage has no files (FROM scratch)")
        sources: list[Source] = []
        for i, pattern in enumerate(patterns):
            sub = os.path.join(scratch, str(i))
            os.mkdir(sub)
            path = posixpath.normpath("/" + pattern.lstrip("/"))
            base, rest = _wildcard_split(path)
            try:
                is_dir = self._read_into(image_id, base, sub)
            except NotFound:
                if not rest:
                    raise
                is_dir = False
            if rest:
                # A wildcard: matched inside the (wildcard-free) directory read out.
                if not is_dir:
                    raise NotFound(f"COPY failed: no source files were specified: "
                                   f"{pattern} matches nothing in --from={from_ref}")
                try:
                    found = find_sources(Tree.from_dir(sub), rest, "COPY")
                except NotFound:
                    raise NotFound(f"COPY failed: no source files were specified: {pattern} "
                                   f"matches nothing in --from={from_ref}") from None
                sources.extend(Source(f"{i}/{s.rel}" if s.rel else str(i), s.is_dir, s.name)
                               for s in found)
            elif is_dir:
                sources.append(Source(str(i), True))
            else:
                # A symlink's target was read out: it is copied under the link's name.
                sources.append(Source(f"{i}/{os.listdir(sub)[0]}", False,
                                      posixpath.basename(path)))
        return Tree.from_dir(scratch), sources, image_id


# Stages building at once, at most (each may run a RUN container).
MAX_PARALLEL_STAGES = 4


class _StageGone(Cancelled):
    """A stage stopped because another failed (or the one it needs did)."""

    def __init__(self) -> None:
        super().__init__("the build stopped: another stage failed")


# Proxy args are usable without an ARG line (Docker's predefined args).
_PREDEFINED = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
               "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}


def _wildcard_split(path: str) -> tuple[str, str]:
    """"/out/*.txt" -> ("/out", "*.txt"): the leading components without wildcards, and
    the rest ("" when there is no wildcard)."""
    parts = path.strip("/").split("/")
    for n, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return "/" + "/".join(parts[:n]), "/".join(parts[n:])
    return path, ""


def _is_host(plat: str) -> bool:
    return platforms.same(platforms.parse(plat), ("linux", *platforms.host_arch()))


# binfmt_misc handler names (qemu-user's) of the architectures an emulator could run.
_QEMU = {"arm64": "aarch64", "arm": "arm", "386": "i386", "amd64": "x86_64",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def _can_execute(plat: str) -> bool:
    """Whether this host runs ``plat``'s programs: its own, or one a registered binfmt_misc
    emulator handles (qemu-user-static's ``qemu-<arch>`` entries)."""
    if _is_host(plat):
        return True
    arch = platforms.parse(plat)[1]
    entry = f"/proc/sys/fs/binfmt_misc/qemu-{_QEMU.get(arch, arch)}"
    try:
        with open(entry) as f:
            return f.readline().strip() == "enabled"
    except OSError:
        return False


def _split_arg(ins: Instruction) -> list[str]:
    return split_words(ins.rest)


def _quote(text: str, escape: str) -> str:
    """``text`` in double quotes that the lexer reads back unchanged."""
    text = text.replace(escape, escape * 2).replace('"', escape + '"').replace("$", escape + "$")
    return f'"{text}"'


def _at_once(fn: Callable[[], str]) -> Callable[[], Output]:
    """A step maker that prints nothing (every step but RUN)."""
    def make() -> Output:
        yield from ()
        return fn()
    return make


def _display(tag: str) -> str:
    ref = reference.parse(tag)
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:{ref.tag or 'latest'}"

