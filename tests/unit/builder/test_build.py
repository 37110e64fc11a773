"""The builder's step semantics over a recording fake backend (no engine): config
changes per instruction, ARG scoping, ENTRYPOINT/CMD interplay, ONBUILD triggers, the
cache, and the errors a bad Dockerfile or context gets."""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import io
import re
import tarfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from services.builder.build import Builder, Options, RunFailed
from services.builder.cache import Cache
from vocab.errors import FailedPrecondition, InvalidArgument, NotFound, Unimplemented


class FakeBackend:
    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {
            "sha256:base": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "sha256:trigger": {"Env": ["PATH=/bin"], "OnBuild": ["ENV FROM_TRIGGER=1"]},
        }
        self.calls: list[tuple[str, Any]] = []
        self.platforms: list[str] = []
        self.run_exit = 0

    def _new(self, config: dict[str, Any], what: str) -> str:
        image_id = "sha256:" + hashlib.sha256(f"{len(self.images)}{what}".encode()).hexdigest()
        self.images[image_id] = copy.deepcopy(config)
        return image_id

    def base_image(self, ref: str, pull: bool, platform: str = ""
                   ) -> Generator[str, None, tuple[str, dict[str, Any]]]:
        self.calls.append(("base", ref))
        self.platforms.append(platform)
        key = {"busybox": "sha256:base", "trig": "sha256:trigger"}.get(ref)
        if key is None:
            raise NotFound(f"No such image: {ref}")
        yield from ()
        return key, copy.deepcopy(self.images[key])

    def add_files(self, parent: str, config: dict[str, Any], created_by: str, dest: str = "",
                  single_name: str = "", chown: str = "", chmod: str = "",
                  tar: IO[bytes] | None = None) -> str:
        names = []
        if tar is not None:
            with tarfile.open(fileobj=tar, mode="r|") as t:
                names = [m.name for m in t]
        self.calls.append(("add", (created_by, dest, single_name, chown, names)))
        return self._new(config, created_by)

    def run(self, parent: str, config: dict[str, Any], cmd: list[str], env: list[str],
            created_by: str, network: str
            ) -> Generator[tuple[str, str], None, tuple[int, str]]:
        self.calls.append(("run", (cmd, env, created_by)))
        yield "container", "c" * 64
        yield "output", "ran\n"
        if self.run_exit:
            return self.run_exit, ""
        return 0, self._new(config, created_by)

    def read_files(self, image: str, path: str, out: IO[bytes]) -> None:
        raise NotFound(path)

    def exists(self, image_id: str) -> bool:
        return image_id in self.images

    def tag(self, image_id: str, name: str) -> None:
        self.calls.append(("tag", (image_id, name)))


def build(tmp_path: Path, dockerfile: str, backend: FakeBackend | None = None,
          **options: Any) -> tuple[str, str, FakeBackend]:
    backend = backend or FakeBackend()
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    builder = Builder(backend, Cache(tmp_path / "cache.json"), str(ctx), dockerfile,
                      Options(**options))
    steps = builder.build()
    out = []
    while True:
        try:
            out.append(next(steps))
        except StopIteration as done:
            return "".join(out), str(done.value), backend


def config_of(backend: FakeBackend, image_id: str) -> dict[str, Any]:
    return backend.images[image_id]


def test_entrypoint_resets_an_inherited_cmd(tmp_path: Path) -> None:
    _, iid, be = build(tmp_path, 'FROM busybox\nENTRYPOINT ["top"]\n')
    assert config_of(be, iid).get("Cmd") is None
    _, iid, be = build(tmp_path, 'FROM busybox\nCMD ["-b"]\nENTRYPOINT ["top"]\n')
    assert config_of(be, iid)["Cmd"] == ["-b"]
    _, iid, be = build(tmp_path, "FROM busybox\nENTRYPOINT top -b\n")
    assert config_of(be, iid)["Entrypoint"] == ["/bin/sh", "-c", "top -b"]


def test_arg_scoping_and_env_precedence(tmp_path: Path) -> None:
    df = ("ARG V=meta\nARG IMG=busybox\nFROM $IMG\nARG V\nARG W=$V-w\nENV E=$W X=$UNDECLARED\n"
          "FROM busybox\nENV AFTER=${V:-unset}\nARG V=second\nENV V=env\nRUN echo $V\n")
    out, iid, be = build(tmp_path, df, build_args={"W": "cli", "NOPE": "1"})
    # stage 1: `ARG V` inherits the value before FROM; --build-arg W wins over the default
    first = [v for v in be.images.values() if "E=cli" in v.get("Env", [])]
    assert first and "X=" in first[0]["Env"]
    cfg = config_of(be, iid)
    assert "AFTER=unset" in cfg["Env"] and "V=env" in cfg["Env"]
    run = [c for c in be.calls if c[0] == "run"][0][1]
    assert run[2] == "/bin/sh -c echo $V"  # V is ENV now: no build arg shown
    assert "[Warning] One or more build-args [NOPE] were not consumed" in out


def test_run_shows_build_args_in_history_and_env(tmp_path: Path) -> None:
    _, _, be = build(tmp_path, "FROM busybox\nARG A\nARG B=2\nRUN true\n", build_args={"A": "1"})
    cmd, env, created_by = [c for c in be.calls if c[0] == "run"][0][1]
    assert cmd == ["/bin/sh", "-c", "true"] and created_by == "|2 A=1 B=2 /bin/sh -c true"
    assert env == ["PATH=/bin", "A=1", "B=2"]


def test_output_and_cache(tmp_path: Path) -> None:
    df = "FROM busybox\nENV A=1\nRUN echo hi\n"
    out, iid, be = build(tmp_path, df, tags=["demo:1"])
    lines = out.splitlines()
    assert lines[:3] == ["Step 1/3 : FROM busybox", " ---> base", "Step 2/3 : ENV A=1"]
    assert re.fullmatch(" ---> [0-9a-f]{12}", lines[3])
    assert lines[4:8] == ["Step 3/3 : RUN echo hi", f" ---> Running in {'c' * 12}", "ran",
                          f"Removing intermediate container {'c' * 12}"]
    assert out.endswith(f"Successfully built {iid[7:19]}\nSuccessfully tagged demo:1\n")
    again, iid2, _ = build(tmp_path, df, be)
    assert again.count(" ---> Using cache") == 2 and iid2 == iid
    fresh, iid3, _ = build(tmp_path, df, be, no_cache=True)
    assert "Using cache" not in fresh and iid3 != iid


def test_copy_content_is_in_the_cache_key(tmp_path: Path) -> None:
    df = "FROM busybox\nCOPY a.txt /\n"
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "a.txt").write_text("one")
    _, first, be = build(tmp_path, df)
    _, second, _ = build(tmp_path, df, be)
    assert second == first
    (tmp_path / "ctx" / "a.txt").write_text("two")
    out, third, _ = build(tmp_path, df, be)
    assert third != first and "Using cache" not in out
    adds = [c[1] for c in be.calls if c[0] == "add"]
    assert adds[-1][1:] == ("/", "a.txt", "", ["a.txt"])


def test_onbuild_is_stored_and_triggered(tmp_path: Path) -> None:
    _, iid, be = build(tmp_path, "FROM busybox\nONBUILD RUN make\n")
    assert config_of(be, iid)["OnBuild"] == ["RUN make"]
    out, iid, be = build(tmp_path, "FROM trig\nLABEL a=b\n")
    assert "# Executing 1 build trigger\n" in out
    cfg = config_of(be, iid)
    assert "FROM_TRIGGER=1" in cfg["Env"] and "OnBuild" not in cfg


def test_metadata_instructions(tmp_path: Path) -> None:
    df = ("FROM busybox\nWORKDIR /a\nWORKDIR b\nUSER 1:2\nEXPOSE 80 90-91/udp\nVOLUME /v\n"
          "LABEL k=v\nSTOPSIGNAL 9\nSHELL [\"/bin/bash\", \"-c\"]\nCMD run me\n"
          "HEALTHCHECK --interval=1m30s --start-period=500ms CMD curl x\n")
    _, iid, be = build(tmp_path, df)
    cfg = config_of(be, iid)
    assert cfg["WorkingDir"] == "/a/b" and cfg["User"] == "1:2"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "90/udp", "91/udp"}
    assert cfg["Volumes"] == {"/v": {}} and cfg["Labels"] == {"k": "v"}
    assert cfg["Cmd"] == ["/bin/bash", "-c", "run me"] and cfg["StopSignal"] == "9"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "curl x"], "Interval": 90 * 10**9,
                                  "StartPeriod": 500 * 10**6}


def test_bad_builds(tmp_path: Path) -> None:
    with pytest.raises(RunFailed, match="'/bin/sh -c false' returned a non-zero code: 2"):
        be = FakeBackend()
        be.run_exit = 2
        build(tmp_path, "FROM busybox\nRUN false\n", be)
    with pytest.raises(InvalidArgument, match="failed to reach build target nope"):
        build(tmp_path, "FROM busybox\n", target="nope")
    with pytest.raises(NotFound, match="file not found in build context"):
        build(tmp_path, "FROM busybox\nCOPY missing /\n")
    with pytest.raises(InvalidArgument, match="outside the build context"):
        build(tmp_path, "FROM busybox\nCOPY ../x /\n")
    with pytest.raises(InvalidArgument, match="source can't be a URL for COPY"):
        build(tmp_path, "FROM busybox\nCOPY http://127.0.0.1:9/x /\n")
    with pytest.raises(Unimplemented, match="URLs together with local files"):
        build(tmp_path, "FROM busybox\nADD http://127.0.0.1:9/x local /d/\n")
    with pytest.raises(InvalidArgument, match="Invalid signal"):
        build(tmp_path, "FROM busybox\nSTOPSIGNAL SIGNOPE\n")
    with pytest.raises(InvalidArgument, match="FROM must come first"):
        build(tmp_path, "ENV A=1\nFROM busybox\n")
    with pytest.raises(InvalidArgument, match="No image was generated"):
        build(tmp_path, "FROM scratch\n")


def test_symlinks_never_lead_out_of_the_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "dir").mkdir(parents=True)
    (ctx / "dir" / "passwd").symlink_to("/etc/passwd")
    (ctx / "top").symlink_to("../../../etc/passwd")
    _, _, be = build(tmp_path, "FROM busybox\nCOPY dir /d/\n")
    assert [c[1][4] for c in be.calls if c[0] == "add"][-1] == [".", "passwd"]
    # a named source is followed, but inside the context: /etc/passwd is not in it
    with pytest.raises(NotFound, match="file not found in build context"):
        build(tmp_path, "FROM busybox\nCOPY top /x\n")


def test_label_flags_are_steps_of_their_own(tmp_path: Path) -> None:
    labels = {"b": 'say "$HOME" \\ now', "a": "x y"}
    out, iid, be = build(tmp_path, "FROM busybox\n", labels=labels)
    assert "Step 2/3 : LABEL a=x y\n" in out and "Step 3/3 : LABEL b=" in out
    assert config_of(be, iid)["Labels"] == labels


def test_proxy_args_reach_run_but_not_the_history(tmp_path: Path) -> None:
    out, _, be = build(tmp_path, "FROM busybox\nRUN true\n",
                       build_args={"HTTP_PROXY": "http://proxy:3128", "no_proxy": "x"})
    _, env, created_by = [c for c in be.calls if c[0] == "run"][0][1]
    assert env == ["PATH=/bin", "HTTP_PROXY=http://proxy:3128", "no_proxy=x"]
    assert created_by == "/bin/sh -c true" and "Warning" not in out


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server of tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "tool.tar").write_bytes(b"not extracted")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_add_of_a_url(tmp_path: Path, web: str) -> None:
    _, _, be = build(tmp_path, f"FROM busybox\nADD {web}/tool.tar /opt/\n"
                               f"ADD {web}/tool.tar /renamed\n")
    adds = [c[1] for c in be.calls if c[0] == "add"]
    # fetched, named by the URL, never extracted (its tar holds the one file)
    assert adds[0][1:] == ("/opt/", "tool.tar", "", ["tool.tar"])
    assert adds[1][1:] == ("/renamed", "tool.tar", "", ["tool.tar"])
    assert adds[0][0].startswith("/bin/sh -c #(nop) ADD file:")
    with pytest.raises(InvalidArgument, match="status 404"):
        build(tmp_path, f"FROM busybox\nADD {web}/missing /x\n")


def test_platforms_of_from_and_of_the_build(tmp_path: Path) -> None:
    df = ("ARG P=linux/arm64\nFROM --platform=$P busybox AS a\nFROM busybox AS b\n"
          "FROM a\nENV X=1\n")
    _, _, be = build(tmp_path, df)
    assert be.platforms == ["linux/arm64", ""]
    _, _, be = build(tmp_path, df, platform="linux/amd64")
    assert be.platforms == ["linux/arm64", "linux/amd64"]
    be = FakeBackend()  # COPY --from=IMAGE takes the build's platform
    with pytest.raises(NotFound):
        build(tmp_path, "FROM scratch\nCOPY --from=busybox /x /x\n", be,
              platform="linux/amd64")
    assert be.platforms == ["linux/amd64"]
    with pytest.raises(InvalidArgument, match="line 1.*unknown operating system"):
        build(tmp_path, "FROM --platform=linux/a/b/c busybox\n")
    with pytest.raises(InvalidArgument, match="FROM scratch for linux/s390x"):
        build(tmp_path, "FROM --platform=linux/s390x scratch\n")


def test_run_in_a_stage_of_a_foreign_platform_is_refused_clearly(tmp_path: Path) -> None:
    from services.builder import build as buildmod
    from vocab.platform import host_arch

    foreign = "linux/s390x" if host_arch()[0] != "s390x" else "linux/amd64"
    if buildmod._can_execute(foreign):
        pytest.skip(f"this host has an emulator for {foreign}")
    with pytest.raises(FailedPrecondition, match=f"RUN in a {foreign} stage.*no emulator"):
        build(tmp_path, f"FROM --platform={foreign} busybox\nRUN true\n")
    _, _, be = build(tmp_path, f"FROM --platform={foreign} busybox\nENV A=1\n")
    assert be.platforms == [foreign]


class FilesBackend(FakeBackend):
    """read_files of a small tree: /out/{a.txt,b.txt,c.log,sub/d.txt}, /one/{only}."""

    TREE = {"/out": ["a.txt", "b.txt", "c.log", "sub/", "sub/d.txt"], "/one": ["only"],
            "/etc": ["passwd"]}

    def read_files(self, image: str, path: str, out: IO[bytes]) -> None:
        names = self.TREE.get(path)
        if names is None:
            raise NotFound(path)
        with tarfile.open(fileobj=out, mode="w|") as tar:
            for name in [".", *names]:
                info = tarfile.TarInfo(name.rstrip("/"))
                if name == "." or name.endswith("/"):
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.size = len(name)
                    tar.addfile(info, io.BytesIO(name.encode()))


def _added(be: FakeBackend) -> list[Any]:
    return [c[1] for c in be.calls if c[0] == "add"]


def test_copy_from_with_wildcards(tmp_path: Path) -> None:
    be = FilesBackend()
    build(tmp_path, "FROM busybox\nCOPY --from=busybox /out/*.txt /dest/\n", be)
    created_by, dest, single, _, names = _added(be)[-1]
    assert (dest, single, sorted(names)) == ("/dest/", "", ["a.txt", "b.txt"])
    assert " multi:" in created_by
    be = FilesBackend()  # one match: a file copied by its name; "?" and a dir matched
    build(tmp_path, "FROM busybox\nCOPY --from=busybox /out/a.tx? /x\n"
                    "COPY --from=busybox /out/s* /s/\n", be)
    assert _added(be)[-2][1:3] == ("/x", "a.txt")
    assert sorted(_added(be)[-1][4]) == [".", "d.txt"]
    be = FilesBackend()  # a directory holding one file is still a directory
    build(tmp_path, "FROM busybox\nCOPY --from=busybox /one /one-copy\n", be)
    assert _added(be)[-1][1:3] == ("/one-copy", "")
    with pytest.raises(NotFound, match="no source files were specified: /out/\\*.md"):
        build(tmp_path, "FROM busybox\nCOPY --from=busybox /out/*.md /d/\n", FilesBackend())
    with pytest.raises(NotFound, match="nothing in --from=busybox"):
        build(tmp_path, "FROM busybox\nCOPY --from=busybox /nope/* /d/\n", FilesBackend())


class MeetingBackend(FilesBackend):
    """Each RUN waits until another RUN is in progress at the same time (a barrier of
    two, bounded): built one after the other, the first RUN would wait in vain."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=30)
        self.events: list[str] = []

    def run(self, parent: str, config: dict[str, Any], cmd: list[str], env: list[str],
            created_by: str, network: str
            ) -> Generator[tuple[str, str], None, tuple[int, str]]:
        self.events.append(f"run {cmd[-1]}")
        if cmd[-1].startswith("meet"):
            self.barrier.wait()  # BrokenBarrierError if no other RUN comes
            self.events.append(f"met {cmd[-1]}")
        return (yield from super().run(parent, config, cmd, env, created_by, network))


def test_independent_stages_build_at_once_and_print_in_order(tmp_path: Path) -> None:
    be = MeetingBackend()
    df = ("FROM busybox AS a\nRUN meet-a\nFROM busybox AS b\nRUN meet-b\n"
          "FROM a\nCOPY --from=b /etc /etc-b\nRUN after\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    builder = Builder(be, Cache(tmp_path / "cache.json"), str(ctx), df, Options())
    stage_events: list[tuple[int, str]] = []
    builder.on_stage = lambda index, event: stage_events.append((index, event))
    steps = builder.build()
    out = []
    with pytest.raises(StopIteration):
        while True:
            out.append(next(steps))
    # Both RUNs were in progress together: each passed the barrier only with the other.
    assert sorted(be.events[:4]) == ["met meet-a", "met meet-b", "run meet-a", "run meet-b"]
    assert be.events[-1] == "run after"
    # The third stage waited for a (FROM a) and b (COPY --from=b) to end.
    assert (2, "wait 0") in stage_events and (2, "wait 1") in stage_events
    # The output is the sequential one: steps numbered in order, each stage's together.
    steps_shown = [ln.split(" :")[0] for ln in out if ln.startswith("Step ")]
    assert steps_shown == [f"Step {i}/7" for i in range(1, 8)]
    text = "".join(out)
    assert text.index("RUN meet-a") < text.index("Step 3/7") < text.index("RUN meet-b")


def test_a_failing_stage_stops_the_stages_that_need_it(tmp_path: Path) -> None:
    be = FakeBackend()
    be.run_exit = 4
    df = "FROM busybox AS a\nRUN fail\nFROM a\nRUN never\nFROM busybox\nCOPY --from=0 / /\n"
    with pytest.raises(RunFailed, match="returned a non-zero code: 4"):
        build(tmp_path, df, be)
    assert [c[1][0] for c in be.calls if c[0] == "run"] == [["/bin/sh", "-c", "fail"]]


def test_cache_ancestors_follow_parents_back_to_the_base(tmp_path: Path) -> None:
    """What an image prune keeps for the images that stay: every step they were built
    from, through several builds; not the steps of a dangling leaf alone."""
    cache = Cache(tmp_path / "cache.json")
    cache.put("k1", "s1", "base")
    cache.put("k2", "s2", "s1")
    cache.put("k3", "final", "s2")
    cache.put("k4", "old-final", "s2")  # a rebuild's old last step: s2's other child
    cache.put("k5", "lone", "s9")
    cache.put("k6", "s9", "")  # a step with no recorded parent (an older cache file's)
    assert cache.ancestors({"final"}) == {"s2", "s1", "base"}
    assert cache.ancestors({"old-final", "s1"}) == {"s2", "s1", "base"}
    assert cache.ancestors({"lone"}) == {"s9"}
    assert cache.ancestors(set()) == set()


def test_cache_lookups_see_every_write(tmp_path: Path) -> None:
    """Lookups reuse the parsed file until it changes: this process's writes, another
    Cache object's on the same file, or the file replaced behind its back."""
    import json

    a, b = Cache(tmp_path / "cache.json"), Cache(tmp_path / "cache.json")
    assert a.get("k") is None
    a.put("k", "sha256:1")
    assert b.get("k") == "sha256:1"
    b.forget({"k"})
    assert a.get("k") is None
    (tmp_path / "other.json").write_text(json.dumps({"k": "sha256:2", "pad": "x" * 100}))
    (tmp_path / "other.json").replace(tmp_path / "cache.json")
    assert a.get("k") == "sha256:2" and b.items()["k"] == "sha256:2"
