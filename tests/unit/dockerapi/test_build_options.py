"""POST /build's query -> BuildOptions, and the JSON lines of a build, without a server."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qs

import pytest
from muelle.engine.v1 import engine_pb2

from services.dockerapi.build import _Relay, build_options, registry_config
from services.dockerapi.errors import ApiError
from services.dockerapi.http import Request
from vocab.errors import FailedPrecondition, InvalidArgument

# What docker CLI 20.10 sends for `DOCKER_BUILDKIT=0 docker build -t a -t b:2 -f x/Df
# --build-arg A=1 --build-arg UNSET --target t --no-cache --pull --label l=v -q
# --network host --platform linux/amd64 .` (UNSET not in the environment).
CLI_QUERY = ("buildargs=%7B%22A%22%3A%221%22%2C%22UNSET%22%3Anull%7D&cachefrom=%5B%5D"
             "&cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0"
             "&dockerfile=x%2FDf&labels=%7B%22l%22%3A%22v%22%7D&memory=0&memswap=0"
             "&networkmode=host&nocache=1&platform=linux%2Famd64&pull=1&q=1&rm=1&shmsize=0"
             "&t=a&t=b%3A2&target=t&ulimits=null&version=1")


def _req(query: str, headers: dict[str, str] | None = None) -> Request:
    return Request("POST", "/build", parse_qs(query, keep_blank_values=True),
                   headers or {}, b"")


def test_cli_query_maps_onto_build_options() -> None:
    o = build_options(_req(CLI_QUERY))
    assert (o.dockerfile, list(o.tags), dict(o.build_args), o.target) == \
        ("x/Df", ["a", "b:2"], {"A": "1"}, "t")
    assert (o.no_cache, o.pull, dict(o.labels), o.network_mode, o.platform) == \
        (True, True, {"l": "v"}, "host", "linux/amd64")
    assert not o.quiet  # the Docker API holds the output back itself (shown on failure)


def test_docker_py_defaults_map_to_nothing() -> None:
    o = build_options(_req("t=x&q=False&nocache=False&rm=False&forcerm=False&pull=False"
                           "&networkmode=default"))
    assert (list(o.tags), o.no_cache, o.pull, o.network_mode) == (["x"], False, False, "")


@pytest.mark.parametrize(("query", "named"), [
    ("extrahosts=a%3A1.2.3.4", "extrahosts"),
    ("memory=1000", "memory"),
    ("shmsize=1", "shmsize"),
    ("squash=1", "squash"),
    ("ulimits=%5B%7B%22Name%22%3A%22nofile%22%7D%5D", "ulimits"),
    ("version=2", "DOCKER_BUILDKIT=0"),
    ("isolation=hyperv", "isolation"),
    ("buildargs=nope", "build args"),
    ("labels=%5B1%5D", "labels"),
    ("cachefrom=%5B", "cachefrom"),
])
def test_refused_options_name_themselves(query: str, named: str) -> None:
    with pytest.raises(ApiError) as err:
        build_options(_req(query))
    assert err.value.status == 400 and named in err.value.message


def test_remote_context_is_not_supported_yet() -> None:
    with pytest.raises(ApiError) as err:
        build_options(_req("remote=https%3A%2F%2Fexample.invalid%2Fc.tar"))
    assert err.value.status == 501


def test_registry_config_is_read_or_ignored() -> None:
    raw = json.dumps({"127.0.0.1:5000": {"username": "u", "password": "p"}}).encode()
    assert registry_config(base64.urlsafe_b64encode(raw).decode().rstrip("="))[
        "127.0.0.1:5000"]["username"] == "u"
    assert registry_config("e30=") == {} and registry_config("!!") == {}


class _Out:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.status = 0

    async def start_stream(self, status: int, content_type: str = "") -> None:
        self.status = status

    async def write(self, data: bytes) -> None:
        self.lines.append(json.loads(data))


def _events(*pairs: tuple[str, Any]) -> list[engine_pb2.BuildEvent]:
    out = []
    for kind, value in pairs:
        if kind == "run_failed":
            out.append(engine_pb2.BuildEvent(run_failed=engine_pb2.BuildRunFailure(
                command="/bin/sh -c x", exit_code=value)))
        else:
            out.append(engine_pb2.BuildEvent(**{kind: value}))
    return out


async def _relay(quiet: bool, aux: bool, events: list[engine_pb2.BuildEvent],
                 error: Exception | None = None) -> list[dict[str, Any]]:
    out = _Out()
    relay = _Relay(out, quiet, aux)  # type: ignore[arg-type]
    for e in events:
        await relay.event(e)
    if error is not None:
        await relay.failed(error)  # type: ignore[arg-type]
    return out.lines


OK = [("stream", "Step 1/1 : FROM x\n"), ("stream", " ---> abc\n"),
      ("stream", "Successfully built abc\n"), ("stream", "Successfully tagged x:latest\n"),
      ("image_id", "sha256:abc")]


def test_aux_comes_before_successfully_built_as_dockerd_sends_it() -> None:
    lines = asyncio.run(_relay(False, True, _events(*OK)))
    assert lines == [{"stream": "Step 1/1 : FROM x\n"}, {"stream": " ---> abc\n"},
                     {"aux": {"ID": "sha256:abc"}}, {"stream": "Successfully built abc\n"},
                     {"stream": "Successfully tagged x:latest\n"}]
    assert {"aux": {"ID": "sha256:abc"}} not in asyncio.run(_relay(False, False, _events(*OK)))
    assert asyncio.run(_relay(True, True, _events(*OK))) == [{"stream": "sha256:abc\n"}]


def test_a_failed_run_carries_its_exit_code_in_band() -> None:
    events = _events(("stream", "Step 1/2 : RUN x\n"), ("stream", "out\n"),
                     ("run_failed", 3))
    err = FailedPrecondition("The command '/bin/sh -c x' returned a non-zero code: 3")
    want = {"errorDetail": {"code": 3, "message": err.message}, "error": err.message}
    assert asyncio.run(_relay(False, True, events, err))[-1] == want
    # -q: the held output first, then the error (so the CLI can show it).
    quiet = asyncio.run(_relay(True, True, events, err))
    assert quiet == [{"stream": "Step 1/2 : RUN x\n"}, {"stream": "out\n"}, want]


def test_an_error_before_any_output_is_raised_for_an_error_response() -> None:
    with pytest.raises(InvalidArgument):
        asyncio.run(_relay(False, True, [], InvalidArgument("dockerfile parse error line 2")))
