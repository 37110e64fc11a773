"""``run --rm --network none IMAGE true`` over mutual TLS (a tcp:// gateway) vs a unix
socket: what TLS costs a command end to end (handshake, encryption, the identity check).

Two engines side by side, alike but for the gateway's listener: the session's (unix
socket) and one whose gateway serves mTLS on a loopback port, reached by the CLI with a
client certificate (its lean client does the TLS itself). The first contender is TLS, so
the ratio reads "mTLS takes x times as long as the unix socket".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import MARKS, run_quiet
from tests.support.engine import CLI, Engine
from tests.support.pki import Pki
from tests.support.registry import free_port

pytestmark = MARKS


@pytest.fixture(scope="module")
def tls_engine(settings: Settings, tmp_path_factory: pytest.TempPathFactory,
               busybox_ref: str) -> Iterator[Engine]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    gateway = pki.issue("gateway-bench", ips=["127.0.0.1"])
    extra = (f'[addresses]\ngateway = "tcp://127.0.0.1:{free_port()}"\n'
             f'[tls.gateway]\nca = "{gateway.ca}"\ncert = "{gateway.cert}"\n'
             f'key = "{gateway.key}"\n[authz]\ngateway = ["client-*"]\n')
    engine = Engine(default_runtime=settings.runtime, extra_config=extra)
    client = pki.issue("client-bench", ips=[], kind="client")
    engine.env["MUELLE_CERT_PATH"] = str(Path(client.cert).parent)
    with engine:
        engine.cli("pull", busybox_ref)
        yield engine


def test_run_rm_over_mtls_vs_unix_socket(settings: Settings, tls_engine: Engine,
                                         muelle_engine: Engine, muelle_busybox: str) -> None:
    argv = [CLI, "run", "--rm", "--network", "none", muelle_busybox, "true"]
    contenders = [
        Contender("mtls", timed(lambda: run_quiet(argv, env=tls_engine.env))),
        Contender("unix", timed(lambda: run_quiet(argv, env=muelle_engine.env))),
    ]
    result = run_rounds("run-rm-mtls", contenders, pairs=settings.pairs,
                        warmup=settings.warmup,
                        meta={"command": "run --rm --network none IMAGE true",
                              "mtls": "tcp://127.0.0.1 gateway, ECDSA P-256, TLS 1.3"})
    emit(result, settings)
