"""The Docker API's HTTP edge with a plain HTTP client: version prefixes, ping headers,
Docker-shaped errors for bad input, and an engine that keeps serving afterwards."""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any

import pytest

from tests.support.engine import Engine
from tests.support.images import Entry, Layer


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def request(engine: Engine, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = UnixHTTPConnection(engine.docker_host.removeprefix("unix://"))
    try:
        conn.request(method, path, body=body, headers={
            **({"Content-Type": "application/json"} if body is not None else {}),
            **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def message(body: bytes) -> Any:
    return json.loads(body)["message"]


def test_ping_head_and_get_carry_the_version_headers(docker_engine: Engine) -> None:
    status, headers, body = request(docker_engine, "HEAD", "/_ping")
    assert status == 200 and body == b""
    assert headers["api-version"] == "1.41"
    assert headers["ostype"] == "linux"
    assert headers["docker-experimental"] == "false"
    status, headers, body = request(docker_engine, "GET", "/v1.24/_ping")
    assert (status, body) == (200, b"OK")


def test_version_is_unversioned_and_prefixed(docker_engine: Engine) -> None:
    for path in ("/version", "/v1.41/version", "/v1.30/version"):
        status, headers, body = request(docker_engine, "GET", path)
        doc = json.loads(body)
        assert status == 200
        assert doc["ApiVersion"] == "1.41" and doc["MinAPIVersion"] == "1.24"
        assert doc["Components"][0]["Name"] == "Engine"
        assert headers["api-version"] == "1.41"


@pytest.mark.parametrize(("path", "status", "text"), [
    ("/v1.44/version", 400, "client version 1.44 is too new"),
    ("/v1.12/version", 400, "client version 1.12 is too old"),
    ("/v1.41/nonsense", 404, "page not found"),
    ("/containers/no-such/json", 404, "No such container: no-such"),
    ("/images/no/such:image/json", 404, "No such image"),
    ("/exec/0123/json", 404, "No such exec instance: 0123"),
])
def test_errors_are_docker_shaped(docker_engine: Engine, path: str, status: int,
                                  text: str) -> None:
    got, headers, body = request(docker_engine, "GET", path)
    assert got == status
    assert text in message(body)
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(("body", "text"), [
    (b"{not json", "invalid JSON"),
    (b'{"Image": 5}', "Config.Image is required"),
    (b'["a list"]', "must be an object"),
    (b'{"Image": "x", "Env": "A=1", "HostConfig": {"Memory": "lots"}}', "Memory must be"),
    (b'{"Image": "x", "HostConfig": {"BlkioWeight": 10}}',
     "HostConfig.BlkioWeight is not supported"),
    (b'{"Image": "x", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}',
     "invalid restart policy"),
    (b'{"Image": "x", "Env": ["A=\\udc80"]}', "unpaired UTF-16 surrogate"),
    (b'{"Image": "x", "HostConfig": {"Memory": 1180591620717411303424}}',
     "Memory 1180591620717411303424 is out of range"),
])
def test_bad_create_bodies_are_400_and_create_nothing(docker_engine: Engine, body: bytes,
                                                      text: str) -> None:
    status, _, reply = request(docker_engine, "POST", "/v1.41/containers/create", body)
    assert status == 400
    assert text in message(reply)
    _, _, listed = request(docker_engine, "GET", "/containers/json?all=1")
    assert json.loads(listed) == []


def test_a_huge_body_is_refused_and_the_engine_keeps_serving(docker_engine: Engine) -> None:
    status, _, reply = request(docker_engine, "POST", "/containers/create",
                               b"x" * (10 * 1024 * 1024))
    assert status == 413
    assert "too large" in message(reply)
    assert request(docker_engine, "GET", "/_ping")[0] == 200


def test_a_client_that_hangs_up_mid_request_does_not_stop_the_server(
        docker_engine: Engine) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(docker_engine.docker_host.removeprefix("unix://"))
        sock.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"Ima")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(docker_engine.docker_host.removeprefix("unix://"))
        sock.sendall(b"GARBAGE\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    assert request(docker_engine, "GET", "/_ping")[0] == 200


def test_bad_filters_are_400(docker_engine: Engine) -> None:
    status, _, body = request(docker_engine, "GET", "/containers/json?filters=%7Bnope")
    assert status == 400 and "invalid filters" in message(body)
    status, _, body = request(docker_engine, "GET",
                              '/containers/json?filters={"colour":["red"]}'.replace('"', "%22"))
    assert status == 400 and "invalid filter 'colour'" in message(body)


def test_build_of_an_empty_context_is_a_clear_400(docker_engine: Engine) -> None:
    status, _, body = request(docker_engine, "POST", "/v1.41/build", b"")
    assert status == 400 and message(body), body


def test_the_connection_of_a_wait_serves_the_next_request(docker_engine: Engine,
                                                          pulled: str) -> None:
    """Keep-alive as the CLI uses it: ping, create and wait share one connection."""
    conn = UnixHTTPConnection(docker_engine.docker_host.removeprefix("unix://"))
    try:
        body = json.dumps({"Image": pulled, "Cmd": ["true"]}).encode()
        conn.request("POST", "/v1.41/containers/create", body=body,
                     headers={"Content-Type": "application/json"})
        created = conn.getresponse()
        assert created.status == 201
        cid = json.loads(created.read())["Id"]
        _, _, started = request(docker_engine, "POST", f"/v1.41/containers/{cid}/start")
        conn.request("POST", f"/v1.41/containers/{cid}/wait")
        waited = conn.getresponse()
        assert json.loads(waited.read()) == {"StatusCode": 0, "Error": None}
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
    finally:
        conn.close()
    assert request(docker_engine, "DELETE", f"/containers/{cid}")[0] == 204


def test_waits_that_hang_up_do_not_exhaust_the_engine(docker_engine: Engine,
                                                      pulled: str) -> None:
    """docker run -d opens a wait and hangs up after start. Each such wait held a gateway
    worker until its container exited: 64 running containers stalled the engine."""
    body = json.dumps({"Image": pulled, "Cmd": ["sleep", "60"]}).encode()
    status, _, reply = request(docker_engine, "POST", "/containers/create", body)
    assert status == 201
    cid = json.loads(reply)["Id"]
    try:
        assert request(docker_engine, "POST", f"/containers/{cid}/start")[0] == 204
        for _ in range(70):  # more than the gateway's 64 workers
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(30)
                sock.connect(docker_engine.docker_host.removeprefix("unix://"))
                sock.sendall(f"POST /v1.41/containers/{cid}/wait?condition=next-exit "
                             "HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n".encode())
                assert sock.recv(12) == b"HTTP/1.1 200"  # the head
                # An inspect answered after it: the gateway (FIFO workers, one channel)
                # has begun the wait; then hang up, as the CLI does after start.
                assert request(docker_engine, "GET", f"/containers/{cid}/json")[0] == 200
        status, _, listed = request(docker_engine, "GET", "/containers/json")
        assert status == 200 and cid in listed.decode()
    finally:
        request(docker_engine, "DELETE", f"/containers/{cid}?force=1")


def test_an_error_answering_head_keeps_the_connection(docker_engine: Engine) -> None:
    """docker cp asks HEAD .../archive first and reuses the connection for its PUT."""
    conn = UnixHTTPConnection(docker_engine.docker_host.removeprefix("unix://"))
    try:
        conn.request("HEAD", "/v1.41/containers/nosuch/archive?path=/x")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 404
        conn.request("GET", "/_ping")
        again = conn.getresponse()
        assert (again.status, again.read()) == (200, b"OK")
    finally:
        conn.close()


@pytest.mark.parametrize(("path", "text"), [
    ("/v1.41/build?platform=windows/amd64", "muelle builds linux images only"),
    ("/v1.41/images/create?fromSrc=-&repo=early&changes=RUN%20true",
     "run is not a valid change command"),
])
def test_an_upload_refused_before_its_end_gets_the_refusal(docker_engine: Engine,
                                                           path: str, text: str) -> None:
    """Refused on its first message while 32 MiB are still to come: the answer is the
    refusal (400), not grpc's "Internal error from Core" (500) of a write to a call the
    gateway had ended, nor a reset of the client's connection mid-body."""
    body = Layer([Entry("Dockerfile", data=b"FROM scratch\n"),
                  Entry("big", data=os.urandom(32 << 20))]).tar()
    status, _, answer = request(docker_engine, "POST", path, body,
                                {"Content-Type": "application/x-tar"})
    assert (status, text in message(answer)) == (400, True), answer
