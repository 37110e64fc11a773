"""Property-based fuzzing of the Docker API's JSON bodies (issue 19, "keep it fixed"):
whatever a client sends as a container create body or a filters parameter is turned into
an engine.v1 request or refused with a Docker-shaped error (ApiError) or a typed muelle
error, never another exception (which the edge would turn into a 500)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.dockerapi import filters
from services.dockerapi.create import create_request
from services.dockerapi.errors import ApiError
from tests.unit.fuzz.settings import FUZZ
from vocab.errors import MuelleError

_SCALAR = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | \
    st.floats(allow_nan=True) | st.text(max_size=20)
_JSON = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# The keys the docker CLI sends, each with any JSON value or a plausible one.
_CONFIG_KEYS = ["Image", "Cmd", "Entrypoint", "Env", "User", "Hostname", "Labels", "Tty",
                "StdinOnce", "Healthcheck", "ExposedPorts", "WorkingDir", "StopSignal",
                "NetworkingConfig"]
_HOST_KEYS = ["AutoRemove", "Binds", "CapAdd", "CapDrop", "ConsoleSize", "CpusetCpus",
              "CpusetMems", "GroupAdd", "Init", "LogConfig", "Mounts", "NetworkMode",
              "PortBindings", "Privileged", "PublishAllPorts", "RestartPolicy", "Runtime",
              "SecurityOpt", "Tmpfs", "UsernsMode", "Memory", "NanoCpus", "CpuShares",
              "PidsLimit", "Devices", "Dns", "ShmSize", "ReadonlyRootfs", "Ulimits",
              "ExtraHosts", "OomScoreAdj"]
_PLAUSIBLE = st.one_of(
    _JSON, st.just("busybox"), st.lists(st.text(max_size=12), max_size=3),
    st.dictionaries(st.sampled_from(["80/tcp", "x", "53/udp", "1/sctp"]),
                    st.lists(st.fixed_dictionaries({}, optional={
                        "HostIp": _SCALAR, "HostPort": _SCALAR}), max_size=2), max_size=2),
    st.fixed_dictionaries({}, optional={"Name": _SCALAR, "MaximumRetryCount": _SCALAR,
                                        "Type": _SCALAR, "Source": _SCALAR,
                                        "Target": _SCALAR, "Test": _JSON}))
_BODY = st.one_of(
    _JSON,
    st.builds(lambda config, host: {**config, "HostConfig": host},
              st.dictionaries(st.sampled_from(_CONFIG_KEYS), _PLAUSIBLE, max_size=6),
              st.one_of(_JSON, st.dictionaries(st.sampled_from(_HOST_KEYS), _PLAUSIBLE,
                                               max_size=8))))


@FUZZ
@given(_BODY, st.text(max_size=20))
def test_a_create_body_is_a_request_or_a_clear_refusal(body: Any, name: str) -> None:
    with contextlib.suppress(ApiError, MuelleError):
        create_request(body, name)


@FUZZ
@given(st.one_of(st.text(max_size=40), _JSON.map(json.dumps)))
def test_a_filters_parameter_is_parsed_or_refused(text: str) -> None:
    with contextlib.suppress(ApiError, MuelleError):
        filters.parse(text, ["name", "label", "status", "id"])
