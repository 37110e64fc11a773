"""A Docker API server that costs nothing: it answers every request with bytes recorded
from a real dockerd, from memory.

The docker CLI against it takes the CLI's own time (start, connect, parse, format) and
nothing of a daemon's. That is the floor any daemon can reach for the same command, and
what a ``muelle/docker`` target has to be judged against: if the replay already needs more
than half of dockerd's time, ``<= 0.5x dockerd`` is out of reach for every server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# One process of its own (not a thread of the benchmark) so that it never competes with
# the timing loop for the GIL. Requests are read up to the end of their head; the CLI's
# GET/HEAD requests of this benchmark have no body.
_SERVER = r"""
import asyncio, json, sys
path, answers = sys.argv[1], json.load(open(sys.argv[2]))
def frame(status, headers, body, head_only):
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target = head.split(b" ", 2)[:2]
            path_only = target.decode().split("?", 1)[0].rsplit("/", 1)[-1]
            a = answers.get(path_only) or answers["*"]
            writer.write(frame(a["status"], a["headers"], a["body"].encode("latin-1"),
                               method == b"HEAD"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_unix_server(handle, path)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def record(socket_path: str, target: str) -> dict[str, object]:
    """Status, headers and body of dockerd's answer to GET ``target`` (via curl)."""
    done = subprocess.run(["curl", "-sS", "-i", "--unix-socket", socket_path,
                           f"http://docker{target}"], capture_output=True, check=True,
                          timeout=60)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 1)[1]
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]
               if not line.lower().startswith(("content-length", "date:", "transfer-encoding"))]
    return {"status": status, "headers": headers, "body": body.decode("latin-1")}


class Replay:
    """The server process; ``host`` is the DOCKER_HOST to point a client at."""

    def __init__(self, directory: Path, answers: dict[str, dict[str, object]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "replay.sock"
        self.socket.unlink(missing_ok=True)
        table = directory / "answers.json"
        table.write_text(json.dumps(answers))
        self.proc = subprocess.Popen([sys.executable, "-S", "-c", _SERVER, str(self.socket),
                                      str(table)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the replay server did not start")
        self.host = f"unix://{self.socket}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.socket.unlink(missing_ok=True)

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

