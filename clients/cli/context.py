"""What every command gets: the gateway address, the output streams, the environment."""

from __future__ import annotations

import _thread

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any


class Context:
    # A plain class: dataclasses would pull in `inspect` and slow every CLI start.
    def __init__(self, host: str, out: IO[str], err: IO[str],
                 environ: Mapping[str, str]) -> None:
        self.host = host
        self.out = out
        self.err = err
        self.environ = environ
        self._clients: dict[int, Any] = {}

    def client(self) -> Any:
        """The SDK client, created on first use; lean: it speaks gRPC without grpcio.

        One per thread (commands that act on many containers at once call from several):
        a lean connection reads replies under one lock, so calls sharing it would wait for
        each other's replies (a `stop` for its whole timeout) before even being sent."""
        ident = _thread.get_ident()
        client = self._clients.get(ident)
        if client is None:
            from clients.sdk.client import Client

            client = self._clients[ident] = Client(self.host, self.environ, lean=True)
        return client

    def close(self) -> None:
        for client in list(self._clients.values()):
            client.close()

    def isatty(self, stream: IO[str] | None = None) -> bool:
        """Whether ``stream`` (default: our stdout) is a terminal."""
        try:
            return (self.out if stream is None else stream).isatty()
        except (AttributeError, ValueError):
            return False

    def write_bytes(self, stream: str, data: bytes) -> None:
        """Container output, byte for byte, to our stdout or stderr."""
        target = self.err if stream == "stderr" else self.out
        buffer = getattr(target, "buffer", None)
        if buffer is not None:
            target.flush()
            buffer.write(data)
            buffer.flush()
        else:
            target.write(data.decode(errors="replace"))
            target.flush()

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()
