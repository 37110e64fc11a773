"""`muelle pull` output: a line per layer like docker pull, redrawn in place on a tty."""

from __future__ import annotations

from clients.cli.units import human_size

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

PROGRESS_PHASES = ("Downloading", "Extracting", "Pushing")


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def layer_text(layer: Any, with_bytes: bool) -> str:
    text = f"{short(layer.digest)}: {layer.phase}"
    if with_bytes and layer.phase in PROGRESS_PHASES and layer.total > 0:
        text += f"  {human_size(layer.current)}/{human_size(layer.total)}"
    return text


class PullPrinter:
    """Feed it PullProgress messages; it writes what `docker pull` would."""

    def __init__(self, out: IO[str], tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.lines: list[str] = []  # keys, in the order they were first printed
        self.phase: dict[str, str] = {}
        self.printed_status: set[str] = set()

    def feed(self, event: Any) -> None:
        kind = event.WhichOneof("event")
        if kind == "status":
            self._status(event.status)
        elif kind == "layer":
            self._layer(event.layer)
        elif kind == "result":
            self._result(event.result)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _status(self, text: str) -> None:
        self.printed_status.add(text.split(":", 1)[0])
        self.lines.append(f"status:{len(self.lines)}")
        self._write(text + "\n")

    def _layer(self, layer: Any) -> None:
        key = layer.digest
        if not self.tty:
            if self.phase.get(key) != layer.phase:
                self.phase[key] = layer.phase
                self._write(layer_text(layer, with_bytes=False) + "\n")
            return
        text = layer_text(layer, with_bytes=True)
        if key not in self.lines:
            self.lines.append(key)
            self._write(text + "\n")
            return
        # Up to the layer's line, clear it, rewrite it, back down to the bottom.
        up = len(self.lines) - self.lines.index(key)
        down = f"\x1b[{up - 1}B" if up > 1 else ""
        self._write(f"\x1b[{up}A\r\x1b[2K{text}\n{down}")

    def _result(self, result: Any) -> None:
        if "Digest" not in self.printed_status and result.digest:
            self._write(f"Digest: {result.digest}\n")
        if "Status" not in self.printed_status:
            # Imported only here: the engine sends its own Status line, and vocab.reference
            # (dataclasses, inspect, hashlib: ~10 ms, ~15 read from a cold disk) would
            # otherwise stand between a pull's last message and the CLI's exit.
            from vocab.reference import parse

            try:
                name = parse(result.reference).familiar
            except Exception:  # noqa: BLE001 - only cosmetic
                name = result.reference
            what = "Image is up to date for" if result.up_to_date \
                else "Downloaded newer image for"
            self._write(f"Status: {what} {name}\n")
        self._write(f"{result.reference}\n")


class PushPrinter(PullPrinter):
    """`docker push` output: the same layer lines; the digest line comes as a status."""

    def _result(self, result: Any) -> None:
        pass
