"""Two engines sharing one registry service (TCP, blob + manifest cache on): the first
pull of the ~200 MB, 5-layer random image goes upstream, the second engine's pull of the
same image comes from the cache. Upstream is the real docker-registry behind a counting TCP
proxy, so the bytes each pull took from it are measured, not inferred.

Each round: a new registry service with an empty cache and two fresh engines (started and
removed outside the timing). Times are in the printed table; upstream bytes per pull are in
the result's meta (`first_upstream_bytes`, `second_upstream_bytes`) and a second table.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest

from engine import launcher
from tests.bench import images
from tests.bench.harness import Contender, Result, Settings, emit, run_rounds, timed
from tests.bench.sides import MARKS
from tests.integration.registry.conftest import registry_service_with
from tests.support.counting_proxy import CountingProxy
from tests.support.engine import Engine
from tests.support.images import push_layout
from tests.support.registry import LocalRegistry, free_port

pytestmark = MARKS

SERVICES = tuple(s for s in launcher.ORDER if s != "registry")


class Round:
    """One registry service + proxy shared by two fresh engines; all set up untimed."""

    def __init__(self, registry: LocalRegistry, path: str) -> None:
        self.registry, self.path = registry, path
        self.stack = contextlib.ExitStack()
        self.proxy: CountingProxy | None = None
        self.extra = ""
        self.engine: Engine | None = None
        self.bytes: dict[str, list[int]] = {"first": [], "second": []}

    def open(self) -> None:
        tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="mu-shc-")))
        self.proxy = self.stack.enter_context(CountingProxy(self.registry.host))
        address = self.stack.enter_context(registry_service_with(
            tmp, "cache_max_bytes = 1000000000\n", f"tcp://127.0.0.1:{free_port()}"))
        self.extra = f'[addresses]\nregistry = "{address}"\n'

    def new_engine(self) -> None:
        self.engine = Engine(extra_config=self.extra, services=SERVICES)
        self.engine.start()

    def pull(self, which: str) -> None:
        assert self.engine is not None and self.proxy is not None
        before = self.proxy.downstream_bytes
        self.engine.cli("pull", f"{self.proxy.host}/{self.path}", timeout=600)
        self.bytes[which].append(self.proxy.downstream_bytes - before)

    def close_engine(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            engine.close()

    def close(self) -> None:
        self.close_engine()
        self.stack.close()


def test_second_engine_through_the_shared_cache(settings: Settings, registry: LocalRegistry,
                                                request: pytest.FixtureRequest) -> None:
    layout = images.random_layout(layers=settings.scaled(5, 2), mib=settings.scaled(40, 4))
    path = f"bench/{layout.name.lower()}:1"
    push_layout(layout, f"{registry.host}/{path}", tag="1")
    rnd = Round(registry, path)
    request.addfinalizer(rnd.close)

    def first_setup() -> None:
        rnd.open()
        rnd.new_engine()

    def second_teardown() -> None:
        rnd.close()
        rnd.stack = contextlib.ExitStack()

    contenders = [
        Contender("first-engine", timed(lambda: rnd.pull("first"), first_setup,
                                        rnd.close_engine)),
        Contender("second-engine", timed(lambda: rnd.pull("second"), rnd.new_engine,
                                         second_teardown)),
    ]
    meta = {"image": layout.name, "layers": settings.scaled(5, 2),
            "round": "new registry service (empty cache) and two fresh engines"}
    result = run_rounds("shared-cache", contenders, pairs=settings.pairs,
                        warmup=settings.warmup, meta=meta)
    n = settings.pairs
    result.meta["first_upstream_bytes"] = rnd.bytes["first"][-n:]
    result.meta["second_upstream_bytes"] = rnd.bytes["second"][-n:]
    emit(result, settings)
    emit(Result(name="shared-cache-upstream-bytes", unit="B", subject="second-engine",
                samples={"second-engine": [float(b) for b in rnd.bytes["second"][-n:]],
                         "first-engine": [float(b) for b in rnd.bytes["first"][-n:]]},
                meta=meta), settings)
    # Only the tag's manifest (a few KiB with headers) may come from upstream.
    assert max(rnd.bytes["second"]) < 64 * 1024, rnd.bytes
