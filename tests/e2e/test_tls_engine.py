"""A whole engine whose gateway serves mutual TLS, as `make up` starts it: four processes
or one (muelle-engine), and the start refused with one clear line when misconfigured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.pki import Pki
from tests.support.registry import free_port


def _tls_config(pki: Pki, authz: str = '["client-*"]') -> str:
    gateway = pki.issue("gateway-local", ips=["127.0.0.1"])
    return (f'[addresses]\ngateway = "tcp://127.0.0.1:{free_port()}"\n'
            f'[tls.gateway]\nca = "{gateway.ca}"\ncert = "{gateway.cert}"\n'
            f'key = "{gateway.key}"\n[authz]\ngateway = {authz}\n')


def test_the_combined_engine_serves_mtls(tmp_path: Path, busybox_ref: str) -> None:
    pki = Pki(tmp_path)
    engine = Engine(extra_config=_tls_config(pki), combined=True)
    engine.env["MUELLE_CERT_PATH"] = str(Path(pki.issue("client-me", ips=[]).cert).parent)
    with engine:
        engine.cli("pull", busybox_ref)
        ran = engine.cli("run", "--rm", "--network", "none", busybox_ref, "echo", "combined")
        assert ran.stdout == "combined\n"
        log = (engine.run / "engine.log").read_text()
        assert '"identity": "client-me"' in log


@pytest.mark.parametrize("combined", [False, True], ids=["processes", "combined"])
def test_a_tls_gateway_without_authz_refuses_to_start(tmp_path: Path,
                                                      combined: bool) -> None:
    engine = Engine(extra_config=_tls_config(Pki(tmp_path), authz="[]"),
                    services=("gateway",), combined=combined)
    try:
        module = "engine.combined" if combined else "services.gateway.main"
        argv = [sys.executable, "-m", module, "--config", str(engine.config_file)]
        if combined:
            argv += ["--services", "gateway"]
        proc = subprocess.run(argv, env=engine.env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1
        assert "[authz].gateway is empty" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        engine.close()
