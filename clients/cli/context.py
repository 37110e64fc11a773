"""What every command gets: the gateway address, the output streams, the environment."""

from __future__ import annotations

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
        self._client: Any = None

    def client(self) -> Any:
        """The SDK client, created on first use; lean: it speaks gRPC without grpcio."""
        if self._client is None:
            from clients.sdk.client import Client

            self._client = Client(self.host, self.environ, lean=True)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

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
