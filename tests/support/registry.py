"""A real OCI registry (Debian's docker-registry, the CNCF distribution registry) on a
free loopback port, with its storage in a temp dir. Stopped and wiped on close()."""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from pathlib import Path

import httpx

from tests.support import processes

REGISTRY_BIN = "/usr/bin/docker-registry"


# A test run killed with SIGKILL cannot clean up: the registry then goes with it
# (PR_SET_PDEATHSIG, set by util-linux's setpriv right before its exec). Not a preexec_fn:
# that forks the whole test process, and with gRPC's threads running, gRPC's fork
# handlers broke the child ("epoll_wait error: Bad file descriptor", registry exited).
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    """A line of an htpasswd file (bcrypt, the fewest rounds: the registry pays them on
    every request) for the registry's ``auth: htpasswd``."""
    # glibc's crypt (libxcrypt on Debian 12) does bcrypt; htpasswd is not installed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n"


class LocalRegistry:
    """``with LocalRegistry(tmp) as reg: reg.host -> "127.0.0.1:PORT"``."""

    def __init__(self, workdir: Path, extra_config: str = "",
                 tls: tuple[Path, Path] | None = None, client_ca: Path | None = None) -> None:
        """``tls``: (certificate, key) to serve HTTPS with; ``client_ca``: also demand a
        client certificate signed by it."""
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.extra_config = extra_config
        self.client_ca = client_ca
        if tls:
            self.extra_config += (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
                                  + (f"    clientcas:\n      - {client_ca}\n"
                                     if client_ca else ""))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalRegistry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.workdir / 'data'}\n"
            "  delete:\n    enabled: true\n"
            "http:\n"
            f"  addr: {self.host}\n"
            + self.extra_config
        )
        with open(self.workdir / "registry.log", "wb") as log:
            self.proc = subprocess.Popen([*DIE_WITH_PARENT, REGISTRY_BIN, "serve", str(config)],
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_text = (self.workdir / "registry.log").read_text()
                raise RuntimeError(f"registry exited: {log_text}")
            try:
                if self.client_ca:  # no client certificate here: listening is enough
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                if httpx.get(f"{self.url}/v2/", timeout=1,
                             verify=False).status_code in (200, 401):
                    return self
            except (httpx.HTTPError, OSError):
                time.sleep(0.05)
        self.close()
        raise RuntimeError("registry did not come up")

    def close(self) -> None:
        if self.proc:
            processes.stop(self.proc, grace=5)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
