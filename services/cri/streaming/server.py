"""The CRI streaming server: Exec, Attach and PortForward return a URL here, and the client
(kubelet's proxy, crictl, critest) upgrades an HTTP request on it to SPDY/3.1 and speaks
Kubernetes' remotecommand (v4.channel.k8s.io) or portforward.k8s.io protocol, as with
containerd's stream server. Each URL names a one-time token that expires after a minute.

Exec and Attach go to the engine (engine.v1 ExecContainer / AttachContainerStream);
PortForward connects to the pod's address (the shim's bridge reaches it from this host; a
host-network pod's ports are the host's).
"""

from __future__ import annotations

import contextlib
import json
import queue
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core.logging import get_logger
from services.cri.streaming.spdy import Connection, Stream
from vocab.errors import InvalidArgument, MuelleError

TOKEN_TTL = 60.0
STREAM_WAIT = 30.0  # how long the client may take to open its streams
REMOTECOMMAND = "v4.channel.k8s.io"
PORTFORWARD = "portforward.k8s.io"
_HEADER_LIMIT = 64 * 1024


@dataclass
class Session:
    """What a token stands for."""
    kind: str  # "exec", "attach", "portforward"
    container: str = ""
    cmd: tuple[str, ...] = ()
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    stdin_once: bool = False  # attach: the container's config (what the end of stdin means)
    address: str = ""  # portforward: the pod's IP (127.0.0.1 on the host's network)


class StreamServer:
    def __init__(self, engine: engine_pb2_grpc.EngineStub, address: str) -> None:
        self.engine = engine
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgument(f"cri.stream_address {address!r}: want host:port")
        self._sessions: dict[str, tuple[Session, float]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host.strip("[]"), int(port)), Handler)
        bound_host, bound_port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{bound_port}" if host not in ("0.0.0.0", "") \
            else f"http://{socket.gethostname()}:{bound_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="cri-streaming", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url_for(self, session: Session) -> str:
        token = secrets.token_urlsafe(16)
        now = time.monotonic()
        with self._lock:
            for old in [t for t, (_, exp) in self._sessions.items() if exp < now]:
                del self._sessions[old]
            self._sessions[token] = (session, now + TOKEN_TTL)
        return f"{self.base_url}/{session.kind}/{token}"

    def _take(self, kind: str, token: str) -> Session | None:
        with self._lock:
            found = self._sessions.pop(token, None)
        if found is None or found[1] < time.monotonic() or found[0].kind != kind:
            return None
        return found[0]

    # -- HTTP, then SPDY
    def _handle(self, sock: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk or len(data) > _HEADER_LIMIT:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).extend(
                v.strip() for v in value.split(","))
        path = parts[1] if len(parts) > 2 else ""
        _, kind, token = (path.split("?")[0].split("/") + ["", "", ""])[:3]
        session = self._take(kind, token)
        if session is None:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        want = PORTFORWARD if kind == "portforward" else REMOTECOMMAND
        offered = headers.get("x-stream-protocol-version", [])
        upgrade = [u.lower() for u in headers.get("upgrade", [])]
        if want not in offered or "spdy/3.1" not in upgrade:
            body = f"want Upgrade: SPDY/3.1 and X-Stream-Protocol-Version: {want}".encode()
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            return
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                      f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {want}\r\n\r\n"
                      ).encode())
        conn = Connection(sock, rest)
        reader = threading.Thread(target=conn.serve, name=f"cri-spdy-{kind}", daemon=True)
        reader.start()
        log = get_logger(container=session.container[:12], stream=kind)
        try:
            if kind == "portforward":
                self._portforward(conn, session)
            else:
                self._remotecommand(conn, session)
        except (MuelleError, OSError, TimeoutError, EOFError) as exc:
            log.warning("streaming session ended", error=str(exc))
        finally:
            conn.close()
            reader.join(5)

    def _remotecommand(self, conn: Connection, s: Session) -> None:
        want = {"error"} | ({"stdin"} if s.stdin else set()) | \
            ({"stdout"} if s.stdout else set()) | \
            ({"stderr"} if s.stderr and not s.tty else set()) | \
            ({"resize"} if s.tty else set())
        streams: dict[str, Stream] = {}
        deadline = time.monotonic() + STREAM_WAIT
        while not want <= set(streams):
            stream = conn.accept(max(0.0, deadline - time.monotonic()))
            streams[stream.headers.get("streamtype", "")] = stream
        inputs: queue.Queue[Any] = queue.Queue()
        done = threading.Event()
        if "stdin" in streams:
            _pump(streams["stdin"], lambda chunk: inputs.put(("stdin", chunk)), done)
        if "resize" in streams:
            _resizes(streams["resize"], lambda size: inputs.put(("resize", size)), done)
        exit_code, error = (self._exec if s.kind == "exec" else self._attach)(
            s, inputs, streams)
        done.set()
        inputs.put(None)
        status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        if error or exit_code:
            status = {"metadata": {}, "status": "Failure",
                      "message": error or f"command terminated with non-zero exit code: "
                                          f"exit code {exit_code}",
                      "reason": "InternalError" if error else "NonZeroExitCode"}
            if not error:
                status["details"] = {"causes": [{"reason": "ExitCode",
                                                 "message": str(exit_code)}]}
        streams["error"].write(json.dumps(status).encode())
        for name in ("stdout", "stderr", "error"):
            if name in streams:
                streams[name].close()

    def _exec(self, s: Session, inputs: queue.Queue[Any],
              streams: dict[str, Stream]) -> tuple[int, str]:
        start = types_pb2.ExecStart(container=s.container, cmd=list(s.cmd),
                                              tty=s.tty, interactive=s.stdin)

        def messages() -> Iterator[types_pb2.ExecInput]:
            yield types_pb2.ExecInput(start=start)
            for item in iter(inputs.get, None):
                kind, value = item
                if kind == "stdin" and value is None:
                    yield types_pb2.ExecInput(close_stdin=True)
                elif kind == "stdin":
                    yield types_pb2.ExecInput(stdin=value)
                else:
                    yield types_pb2.ExecInput(resize=types_pb2.ConsoleSize(
                        rows=value[1], cols=value[0]))

        if not s.stdin:
            inputs.put(("stdin", None))
        call = self.engine.ExecContainer(messages())
        _cancel_when_closed(streams["error"].conn, call)
        code, error = -1, ""
        for event in call:
            if event.HasField("output"):
                _write(streams, event.output, s.tty)
            elif event.HasField("exit"):
                code, error = event.exit.exit_code, event.exit.error
        return code, error

    def _attach(self, s: Session, inputs: queue.Queue[Any],
                streams: dict[str, Stream]) -> tuple[int, str]:
        start = engine_pb2.AttachContainerRequest(container=s.container, stdin=s.stdin)

        def messages() -> Iterator[engine_pb2.AttachContainerInput]:
            yield engine_pb2.AttachContainerInput(start=start)
            for item in iter(inputs.get, None):
                kind, value = item
                if kind == "stdin" and value is None:
                    # containerd's rule: with stdin_once (and no tty) the end of the
                    # client's stdin closes the container's, and the output runs to its
                    # exit; otherwise it is a detach (the engine ends the output stream
                    # when the input ends without close_stdin), the container runs on.
                    if s.stdin_once and not s.tty:
                        yield engine_pb2.AttachContainerInput(close_stdin=True)
                    return
                elif kind == "stdin":
                    yield engine_pb2.AttachContainerInput(stdin=value)
                else:
                    yield engine_pb2.AttachContainerInput(resize=types_pb2.ConsoleSize(
                        rows=value[1], cols=value[0]))

        call = self.engine.AttachContainerStream(messages())
        _cancel_when_closed(streams["error"].conn, call)
        for event in call:
            if event.HasField("output"):
                _write(streams, event.output, s.tty)
            elif event.HasField("exit"):
                break  # the container stopped: attach is over (no exit code to report)
        return 0, ""

    def _portforward(self, conn: Connection, s: Session) -> None:
        pairs: dict[str, dict[str, Stream]] = {}
        while True:
            try:
                stream = conn.accept(3600)
            except (EOFError, TimeoutError):
                return
            pair = pairs.setdefault(stream.headers.get("requestid", ""), {})
            pair[stream.headers.get("streamtype", "")] = stream
            if "data" in pair and "error" in pair:
                del pairs[stream.headers.get("requestid", "")]
                threading.Thread(target=_forward, args=(s.address, pair), daemon=True,
                                 name="cri-portforward").start()


def _write(streams: dict[str, Stream], entry: types_pb2.LogEntry, tty: bool) -> None:
    name = "stdout" if tty or entry.stream != "stderr" else "stderr"
    if name in streams:
        streams[name].write(entry.data)


def _pump(stream: Stream, put: Callable[[bytes | None], None], done: threading.Event) -> None:
    def run() -> None:
        while not done.is_set():
            chunk = stream.read()
            put(chunk)
            if chunk is None:
                return
    threading.Thread(target=run, daemon=True, name="cri-stdin").start()


def _resizes(stream: Stream, put: Callable[[tuple[int, int]], None],
             done: threading.Event) -> None:
    """The resize stream: JSON objects {"Width": w, "Height": h}, one after another."""
    def run() -> None:
        decoder, buf = json.JSONDecoder(), ""
        while not done.is_set():
            chunk = stream.read()
            if chunk is None:
                return
            buf += chunk.decode(errors="replace")
            while buf.strip():
                try:
                    size, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                if isinstance(size, dict):
                    put((int(size.get("Width", 0)), int(size.get("Height", 0))))
    threading.Thread(target=run, daemon=True, name="cri-resize").start()


def _cancel_when_closed(conn: Connection, call: Any) -> None:
    """The client went away: end the engine call (the exec'd process is killed)."""
    def run() -> None:
        while not conn.closed:
            time.sleep(0.2)
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            cancel()
    threading.Thread(target=run, daemon=True, name="cri-stream-watch").start()


def _forward(address: str, pair: dict[str, Stream]) -> None:
    data, error = pair["data"], pair["error"]
    port = data.headers.get("port", "")
    try:
        if not port.isdigit():
            raise OSError(f"invalid port {port!r}")
        sock = socket.create_connection((address, int(port)), timeout=10)
    except OSError as exc:
        error.write(f"cannot connect to {address}:{port}: {exc}".encode())
        error.close()
        data.close()
        return
    sock.settimeout(None)

    def upstream() -> None:
        while True:
            chunk = data.read()
            if chunk is None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                return
            try:
                sock.sendall(chunk)
            except OSError:
                return

    up = threading.Thread(target=upstream, daemon=True, name="cri-portforward-up")
    up.start()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data.write(chunk)
    except OSError:
        pass
    finally:
        data.close()
        error.close()
        up.join(5)
        sock.close()
