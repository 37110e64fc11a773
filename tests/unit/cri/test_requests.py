"""The engine.v1 request the CRI makes for a container config."""

from __future__ import annotations

from k8s.cri.v1 import api_pb2

from services.cri.containers import engine_request


def test_an_images_healthcheck_is_not_run_for_kubernetes() -> None:
    sandbox = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name="pod", namespace="ns", uid="u1"))
    config = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c"),
                                     image=api_pb2.ImageSpec(image="busybox"))
    req = engine_request("s" * 64, sandbox, config)
    assert list(req.healthcheck.test) == ["NONE"]
