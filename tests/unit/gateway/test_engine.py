"""The Engine core against in-process fakes of the image store and the shim."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.gateway.engine import Engine
from services.gateway.records import Records
from tests.unit.gateway.fakes import IMAGE_ID, FakeImages, FakeShim
from vocab.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)


@pytest.fixture
def images() -> FakeImages:
    return FakeImages()


@pytest.fixture
def runtime() -> FakeShim:
    return FakeShim()


@pytest.fixture
def engine(tmp_path: Path, images: FakeImages, runtime: FakeShim) -> Iterator[Engine]:
    eng = Engine(Records(tmp_path / "gw"), images, runtime)
    yield eng
    eng.records.close()


def req(**fields: object) -> engine_pb2.CreateContainerRequest:
    cmd = fields.pop("cmd", None)
    fields.setdefault("image", "busybox")
    r = engine_pb2.CreateContainerRequest(**fields)  # type: ignore[arg-type]
    if cmd is not None:
        r.cmd.values.extend(cmd)  # type: ignore[arg-type]
    return r


def eventually(check: Callable[[], bool]) -> None:
    """Poll a condition that another thread makes true (generous bound, no timing asserts)."""
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_create_merges_and_hands_the_shim_a_spec(engine: Engine, images: FakeImages,
                                                 runtime: FakeShim) -> None:
    reply = engine.create(req(name="web", cmd=["echo", "hi"], env=["A=1"], memory=64 << 20,
                              nano_cpus=500_000_000, runtime="runc", cpuset_cpus="0-1",
                              cpuset_mems="0"))
    cid = reply.id
    c = runtime.containers[cid]
    assert list(c["spec"].args) == ["echo", "hi"]
    assert f"HOSTNAME={cid[:12]}" in c["spec"].env and "A=1" in c["spec"].env
    assert c["spec"].hostname == cid[:12] and c["spec"].network_mode == ""
    assert c["spec"].resources.memory_limit == 64 << 20
    assert list(c["spec"].network_aliases) == ["web"]  # peers resolve it by name
    assert c["spec"].resources.cpu_quota == 50_000
    assert (c["spec"].resources.cpuset_cpus, c["spec"].resources.cpuset_mems) == ("0-1", "0")
    assert c["runtime"] == "runc" and c["rootfs"][0].type == "overlay"
    assert cid in images.rootfs
    assert engine.records.lookup("web").id == cid
    assert engine.inspect("web").bundle == f"/bundles/{cid}"


def test_create_of_missing_image_changes_nothing(engine: Engine, images: FakeImages,
                                                 runtime: FakeShim) -> None:
    with pytest.raises(NotFound, match="No such image: nope"):
        engine.create(req(image="nope", name="xx"))
    assert engine.records.all(include_unready=True) == []
    assert images.rootfs == set() and runtime.calls == []


def test_create_rolls_back_when_the_shim_fails(engine: Engine, images: FakeImages,
                                               runtime: FakeShim) -> None:
    runtime.fail_create = FailedPrecondition("exec: \"nope\": executable file not found")
    with pytest.raises(FailedPrecondition, match="executable file not found"):
        engine.create(req(name="web", cmd=["nope"]))
    assert images.rootfs == set() and "RemoveRootfs" in images.calls
    assert engine.records.all(include_unready=True) == []
    runtime.fail_create = None
    engine.create(req(name="web", cmd=["true"]))  # the name is free again


def test_create_rolls_back_when_the_rootfs_fails(engine: Engine, images: FakeImages,
                                                 runtime: FakeShim) -> None:
    images.fail_prepare = Unavailable("imagestore unavailable")
    with pytest.raises(Unavailable):
        engine.create(req(name="web", cmd=["true"]))
    assert runtime.calls == [] and engine.records.all(include_unready=True) == []


def test_name_clash_is_refused_before_any_work(engine: Engine, images: FakeImages) -> None:
    first = engine.create(req(name="web", cmd=["true"])).id
    images.calls.clear()
    with pytest.raises(AlreadyExists, match=f'"/web" is already in use by container "{first}"'):
        engine.create(req(name="web", cmd=["true"]))
    assert images.calls == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"network_mode": "container:"}, "network"),
    ({"ports": [types_pb2.NetworkPort(container_port=0)]}, "invalid port"),
    ({"ports": [types_pb2.NetworkPort(container_port=80, protocol="sctp")]}, "protocol"),
    ({"memory": 1024}, "Minimum memory"),
    ({"memory_swap": 1 << 30}, "Memory limit"),
    ({"stop_signal": "SIGNOPE"}, "invalid signal"),
    ({"name": "-bad"}, "Invalid container name"),
    ({"security_opt": ["bogus"]}, "security-opt"),
    ({"group_add": ["wheel"]}, "numeric"),
    ({"cpuset_cpus": "3-1"}, "Invalid value 3-1 for cpuset cpus"),
    ({"cpuset_mems": "x"}, "Invalid value x for cpuset mems"),
])
def test_bad_options_are_refused_and_change_nothing(engine: Engine, runtime: FakeShim,
                                                    fields: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        engine.create(req(cmd=["true"], **fields))
    assert engine.records.all(include_unready=True) == [] and runtime.calls == []


def test_generated_name_and_security_options(engine: Engine, runtime: FakeShim) -> None:
    reply = engine.create(req(cmd=["true"], security_opt=["no-new-privileges"],
                              group_add=["10"], cap_add=["NET_ADMIN"]))
    spec = runtime.containers[reply.id]["spec"]
    assert spec.no_new_privileges and list(spec.additional_gids) == [10]
    assert "_" in engine.inspect(reply.id).name


def test_attach_streams_output_then_exit(engine: Engine, runtime: FakeShim) -> None:
    engine.create(req(name="job", cmd=["sh"]))

    def script(c: str) -> None:
        runtime.emit(c, b"one\n")
        runtime.emit(c, b"oops\n", "stderr")
        runtime.exit(c, 3)

    runtime.on_start = script
    events = list(engine.attach("job", start=True))
    assert [e.WhichOneof("event") for e in events] == ["output", "output", "exit"]
    assert events[0].output.data == b"one\n" and events[1].output.stream == "stderr"
    assert events[-1].exit.exit_code == 3
    assert runtime.calls.index("Start") < runtime.calls.index("Logs")
    assert engine.records.lookup("job")  # kept without auto-remove


def test_attach_auto_remove_removes_before_the_exit_event(engine: Engine, images: FakeImages,
                                                         runtime: FakeShim) -> None:
    cid = engine.create(req(name="tmp", cmd=["sh"], auto_remove=True)).id

    def script(c: str) -> None:
        runtime.emit(c, b"hi\n")
        runtime.exit(c, 0)

    runtime.on_start = script
    seen_at_exit = None
    for event in engine.attach(cid, start=True):
        if event.HasField("exit"):
            seen_at_exit = (cid in runtime.containers, cid in images.rootfs,
                            engine.records.get(cid))
    assert seen_at_exit == (False, False, None)


def test_attach_auto_remove_takes_the_exit_status_from_the_delete(
        engine: Engine, runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["sh"], auto_remove=True)).id
    runtime.on_start = lambda c: runtime.exit(c, 7)
    events = list(engine.attach(cid, start=True))
    assert events[-1].exit.exit_code == 7
    assert "Wait" not in runtime.calls and "State" not in runtime.calls
    assert runtime.calls.count("Delete force=False") == 1


def test_an_older_shim_still_starts_and_removes(engine: Engine, runtime: FakeShim) -> None:
    """A shim without unless_running or DeleteResponse.status (another release)."""
    runtime.old = True
    cid = engine.create(req(cmd=["sleep"])).id
    engine.start(cid)
    engine.start(cid)  # still a no-op for a running container
    rm_cid = engine.create(req(cmd=["sh"], auto_remove=True)).id
    runtime.on_start = lambda c: runtime.exit(c, 7)
    exit_event = list(engine.attach(rm_cid, start=True))[-1].exit
    assert exit_event.exit_code == 255 and "older than the gateway" in exit_event.error
    assert engine.records.get(rm_cid) is None


def test_attach_to_running_skips_earlier_output_unless_logs(engine: Engine,
                                                            runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["sh"])).id
    engine.start(cid)
    runtime.emit(cid, b"before\n")
    time.sleep(0.001)  # the monitor's clock must move on between the two entries
    got: list[bytes] = []

    def consume() -> None:
        for event in engine.attach(cid):
            if event.HasField("output"):
                got.append(event.output.data)

    t = threading.Thread(target=consume)
    t.start()
    eventually(lambda: runtime.calls.count("Logs") == 1)
    runtime.emit(cid, b"after\n")
    runtime.exit(cid, 0)
    t.join(10)
    assert got == [b"after\n"]
    # Stopped now: as dockerd, the logs first, then the attach waits for the next run.
    attached = engine.attach(cid, logs=True)
    assert [next(attached).output.data for _ in range(2)] == [b"before\n", b"after\n"]
    waiting = threading.Thread(target=lambda: next(attached, None), daemon=True)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive()
    engine.start(cid)
    runtime.emit(cid, b"again\n")
    waiting.join(10)
    assert not waiting.is_alive()


def test_an_attach_counts_the_next_run_from_what_its_caller_saw(engine: Engine,
                                                               runtime: FakeShim) -> None:
    """The Docker API answers its client (101) before the gateway looks: a run that began,
    or ended, in between is the next one, not a reason to wait for another (which hung
    `docker start -a`)."""
    cid = engine.create(req(cmd=["sh"])).id
    engine.start(cid)
    runtime.exit(cid, 0)
    seen = runtime.State(shim_pb2.StateRequest(id=cid)).finished_at
    time.sleep(0.001)
    engine.start(cid)  # the client's start, before our attach arrives
    runtime.emit(cid, b"second run\n")
    runtime.exit(cid, 3)
    events = list(engine.attach(cid, after_finished_at=seen))
    assert [e.output.data for e in events if e.HasField("output")] == [b"second run\n"]
    assert events[-1].exit.exit_code == 3
    assert engine.wait(cid, "next-exit", after_finished_at=seen).exit_code == 3


def test_an_attach_whose_call_ended_already_does_not_wait(engine: Engine,
                                                        runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["sh"])).id
    engine.start(cid)
    runtime.exit(cid, 0)
    got: list[engine_pb2.AttachEvent] = []
    done = threading.Thread(target=lambda: got.extend(engine.attach(
        cid, on_cancel=lambda callback: False)), daemon=True)
    done.start()
    done.join(10)
    assert not done.is_alive()  # a stopped container: it would have waited for a run


def test_attach_start_failure_with_auto_remove_removes(engine: Engine,
                                                       runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["nope"], auto_remove=True)).id
    runtime.fail_start = FailedPrecondition("exec: \"nope\": executable file not found")
    with pytest.raises(FailedPrecondition):
        list(engine.attach(cid, start=True))
    assert engine.records.get(cid) is None and cid not in runtime.containers


def test_detached_auto_remove(engine: Engine, images: FakeImages,
                              runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["sleep"], auto_remove=True)).id
    engine.start(cid)
    assert engine.records.get(cid) is not None
    runtime.exit(cid, 0)
    eventually(lambda: engine.records.get(cid) is None)
    assert cid not in runtime.containers and cid not in images.rootfs


def test_client_leaving_attach_hands_removal_to_a_watcher(engine: Engine,
                                                          runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["sleep"], auto_remove=True)).id
    runtime.on_start = lambda c: runtime.emit(c, b"x\n")
    stream: Any = engine.attach(cid, start=True)
    assert next(stream).output.data == b"x\n"
    stream.close()  # what grpc does when the client cancels
    assert engine.records.get(cid) is not None
    runtime.exit(cid, 0)
    eventually(lambda: engine.records.get(cid) is None)


def test_restore_finishes_auto_removes_and_half_creates(tmp_path: Path, images: FakeImages,
                                                        runtime: FakeShim) -> None:
    eng = Engine(Records(tmp_path / "gw"), images, runtime)
    done = eng.create(req(cmd=["true"], auto_remove=True)).id
    runtime.containers[done].update(status="stopped")
    keep = eng.create(req(cmd=["true"])).id
    half = eng.create(req(cmd=["true"])).id
    eng.records._db.execute("UPDATE containers SET ready = 0 WHERE id = ?", (half,))
    eng.records.close()
    again = Engine(Records(tmp_path / "gw"), images, runtime)
    try:
        again.restore()
        assert [r.id for r in again.records.all(include_unready=True)] == [keep]
        assert set(runtime.containers) == {keep} and images.rootfs == {keep}
    finally:
        again.records.close()


def test_remove_running_needs_force(engine: Engine, images: FakeImages,
                                    runtime: FakeShim) -> None:
    cid = engine.create(req(name="web", cmd=["sleep"])).id
    engine.start("web")
    with pytest.raises(FailedPrecondition, match="container is running"):
        engine.remove("web")
    assert engine.records.get(cid) is not None and cid in runtime.containers
    assert engine.remove("web", force=True) == cid
    assert "Delete force=True" in runtime.calls
    assert engine.records.get(cid) is None and cid not in images.rootfs
    with pytest.raises(NotFound, match="No such container: web"):
        engine.inspect("web")


def test_stop_kill_wait(engine: Engine, runtime: FakeShim) -> None:
    cid = engine.create(req(name="web", cmd=["sleep"], stop_signal="SIGQUIT",
                            stop_timeout=3)).id
    # Created: the shim is told all the same (a restart is "created" for a moment, and a
    # restart policy must hear of the stop); it leaves a never-started one created.
    engine.stop("web")
    assert "Stop SIGQUIT 3" in runtime.calls
    assert runtime.containers[cid]["status"] == "created"
    runtime.calls.clear()
    with pytest.raises(FailedPrecondition, match="is not running"):
        engine.kill("web")
    engine.start("web")
    engine.stop("web")
    assert "Stop SIGQUIT 3" in runtime.calls
    assert engine.wait(cid).exit_code == 143
    engine.start("web")
    engine.stop("web", timeout=0)
    assert "Stop SIGQUIT 0" in runtime.calls
    engine.start("web")
    with pytest.raises(InvalidArgument):
        engine.kill("web", "SIGBOGUS")
    engine.kill("web", "HUP")
    assert "Kill HUP" in runtime.calls


def test_list_and_status_text(engine: Engine, runtime: FakeShim) -> None:
    a = engine.create(req(name="aa", cmd=["sleep", "9"])).id
    b = engine.create(req(name="bb", cmd=["true"])).id
    c = engine.create(req(name="cc", cmd=["true"])).id
    engine.start(a)
    engine.start(b)
    runtime.exit(b, 7)
    running = engine.list().containers
    assert [x.name for x in running] == ["aa"]
    assert running[0].state == "running" and running[0].status.startswith("Up ")
    assert running[0].command == "sleep 9"
    every = {x.id: x for x in engine.list(all=True).containers}
    assert every[b].state == "exited" and every[b].status.startswith("Exited (7) ")
    assert every[b].status.endswith(" ago")
    assert every[c].state == "created" and every[c].status == "Created"


def test_list_summaries_carry_every_column(engine: Engine, runtime: FakeShim) -> None:
    """What ps and --format read of each row: labels, ports, networks, mounts (no
    tmpfs), endpoints; none of them for a container with none."""
    a = engine.create(req(name="aa", cmd=["sleep", "9"], labels={"k": "v"})).id
    b = engine.create(req(name="bb", cmd=["sleep", "9"])).id
    engine.start(a)
    engine.start(b)
    endpoint = types_pb2.NetworkEndpoint(network="front", ip_address="10.0.0.2")
    runtime.containers[a]["listed"] = {
        "network_mode": "bridge", "networks": [endpoint],
        "ports": [types_pb2.NetworkPort(container_port=80, host_port=8080)],
        "volume_mounts": [types_pb2.VolumeMount(name="data", type="volume"),
                          types_pb2.VolumeMount(source="/src", type="bind"),
                          types_pb2.VolumeMount(source="", type="tmpfs")]}
    runtime.containers[b]["listed"] = {"network_mode": "none"}
    rows = {x.name: x for x in engine.list().containers}
    assert dict(rows["aa"].labels) == {"k": "v"}
    assert [(p.container_port, p.host_port) for p in rows["aa"].ports] == [(80, 8080)]
    assert list(rows["aa"].networks) == ["front"] and list(rows["aa"].mounts) == \
        ["data", "/src"]
    assert list(rows["aa"].network_endpoints) == [endpoint]
    assert rows["aa"].network_mode == "bridge"
    assert (dict(rows["bb"].labels), list(rows["bb"].ports), list(rows["bb"].networks),
            list(rows["bb"].mounts), list(rows["bb"].network_endpoints),
            rows["bb"].network_mode) == ({}, [], ["none"], [], [], "none")


def test_inspect_detail(engine: Engine) -> None:
    cid = engine.create(req(name="web", cmd=["echo", "hi"], labels={"k": "v"},
                            auto_remove=False)).id
    d = engine.inspect(cid[:6])
    assert d.id == cid and d.name == "web" and d.image_id == IMAGE_ID
    assert list(d.args) == ["echo", "hi"] and d.state.status == "created"
    assert d.HasField("cmd") and not d.HasField("entrypoint")
    assert dict(d.labels) == {"k": "v"} and d.stop_timeout == 10
    assert d.config.name == "web" and d.working_dir == "/"


def test_remove_image_in_use_needs_force(engine: Engine, images: FakeImages) -> None:
    engine.create(req(cmd=["true"]))
    with pytest.raises(FailedPrecondition, match="is using its referenced image"):
        engine.remove_image("busybox", force=False)
    assert "Remove" not in images.calls
    assert engine.remove_image("busybox", force=True).deleted == [IMAGE_ID]


def test_logs_with_timestamps(engine: Engine, runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["true"])).id
    engine.start(cid)
    runtime.emit(cid, b"a\n")
    runtime.exit(cid, 0)
    entries = list(engine.logs(engine_pb2.ContainerLogsRequest(container=cid,
                                                                timestamps=True)))
    assert entries[0].data == entries[0].time.encode() + b" a\n"


def test_pull_passes_the_stream_through(engine: Engine) -> None:
    kinds = [e.WhichOneof("event") for e in engine.pull("busybox")]
    assert kinds == ["status", "layer", "result"]


def test_version_reports_components(engine: Engine) -> None:
    def broken() -> str:
        raise Unavailable("shim at unix:///x: connection refused")

    engine.probes = {"imagestore": lambda: "0.1.0 (serving)", "shim": broken}
    reply = engine.version()
    assert reply.components["gateway"] == reply.version
    assert reply.components["imagestore"] == "0.1.0 (serving)"
    assert "connection refused" in reply.components["shim"]


def test_namespace_modes_dns_and_sysctls_reach_the_shim(engine: Engine,
                                                        runtime: FakeShim) -> None:
    peer = engine.create(req(name="peer")).id
    cid = engine.create(req(ipc_mode="container:peer", pid_mode="host", dns=["10.0.0.2"],
                            sysctls={"net.ipv4.ip_forward": "1"})).id
    spec = runtime.containers[cid]["spec"]
    assert (spec.ipc_mode, spec.pid_mode) == (f"container:{peer}", "host")
    assert list(spec.dns) == ["10.0.0.2"] and dict(spec.sysctls) == {"net.ipv4.ip_forward": "1"}


@pytest.mark.parametrize("bad", [
    {"ipc_mode": "elsewhere"}, {"pid_mode": "container:"}, {"dns": ["not-an-ip"]},
    {"sysctls": {"kernel.hostname": "x"}},
    {"sysctls": {"net.ipv4.ip_forward": "1"}, "network_mode": "host"},
    {"dns": ["10.0.0.2"], "network_mode": "container:x"},
])
def test_bad_namespace_dns_and_sysctl_options(engine: Engine, bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        engine.create(req(**bad))


def test_bind_propagation(engine: Engine, runtime: FakeShim, tmp_path: Path) -> None:
    mount = types_pb2.VolumeMount(type="bind", source=str(tmp_path), target="/d",
                                   propagation="rslave")
    cid = engine.create(req(mounts=[mount])).id
    assert runtime.containers[cid]["spec"].volume_mounts[0].propagation == "rslave"
    # rshared goes to the shim, which knows the runtime (runc and crun give it).
    mount.propagation = "rshared"
    cid = engine.create(req(mounts=[mount])).id
    assert runtime.containers[cid]["spec"].volume_mounts[0].propagation == "rshared"
    mount.propagation = "sideways"
    with pytest.raises(InvalidArgument, match="bind-propagation"):
        engine.create(req(mounts=[mount]))


def test_wait_removed_answers_after_the_auto_remove_with_the_exit_status(
        engine: Engine, runtime: FakeShim) -> None:
    """docker run --rm: wait?condition=removed is asked before start; the attach stream
    removes the container (the shim's Delete gives the status) and the wait still answers
    with the exit code."""
    cid = engine.create(req(cmd=["sh"], auto_remove=True)).id
    got: list[engine_pb2.WaitContainerResponse] = []
    waiter = threading.Thread(target=lambda: got.append(engine.wait(cid, "removed")))
    waiter.start()
    eventually(lambda: "Wait" in runtime.calls)
    runtime.on_start = lambda c: runtime.exit(c, 7)
    assert list(engine.attach(cid, start=True))[-1].exit.exit_code == 7
    waiter.join(10)
    assert [g.exit_code for g in got] == [7]
    assert engine.records.get(cid) is None


def test_wait_next_exit_of_a_created_container_waits_for_its_run(
        engine: Engine, runtime: FakeShim) -> None:
    cid = engine.create(req(cmd=["sh"])).id
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(engine.wait(cid, "next-exit")
                                                        .exit_code))
    waiter.start()
    eventually(lambda: "Wait" in runtime.calls)
    assert got == []
    engine.start(cid)
    runtime.exit(cid, 3)
    waiter.join(10)
    assert got == [3]
    with pytest.raises(InvalidArgument, match="invalid condition"):
        engine.wait(cid, "sometime")


def test_a_cancelled_wait_lets_go_of_its_worker(engine: Engine, runtime: FakeShim) -> None:
    """docker run -d hangs up its wait after start: the gateway's worker must not stay
    in the shim's Wait until the container exits (64 such containers stalled it)."""
    cid = engine.create(req(cmd=["sleep"])).id
    engine.start(cid)
    gone = threading.Event()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            engine.wait(cid, "next-exit", cancelled=gone.is_set)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    eventually(lambda: "Wait" in runtime.calls)
    gone.set()
    waiter.join(10)
    assert not waiter.is_alive(), "the wait still holds its worker"
    assert outcome and "went away" in str(outcome[0])
    runtime.exit(cid, 0)
