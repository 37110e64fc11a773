"""Docker's merge of image config and request (SPECS.md §5 items 1-6)."""

from __future__ import annotations

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.gateway.merge import merge
from vocab.errors import InvalidArgument
from vocab.platform import DEFAULT_PATH

CID = "abcdef0123456789" + "0" * 48
NIL = None


def _image(entrypoint: list[str] | None = None, cmd: list[str] | None = None,
           **fields: object) -> types_pb2.ImageConfig:
    img = types_pb2.ImageConfig(**fields)  # type: ignore[arg-type]
    if entrypoint is not None:
        img.entrypoint.values.extend(entrypoint)
        img.entrypoint.SetInParent()
    if cmd is not None:
        img.cmd.values.extend(cmd)
        img.cmd.SetInParent()
    return img


def _request(entrypoint: list[str] | None = None, cmd: list[str] | None = None,
             **fields: object) -> engine_pb2.CreateContainerRequest:
    req = engine_pb2.CreateContainerRequest(image="img", **fields)  # type: ignore[arg-type]
    if entrypoint is not None:
        req.entrypoint.SetInParent()
        req.entrypoint.values.extend(entrypoint)
    if cmd is not None:
        req.cmd.SetInParent()
        req.cmd.values.extend(cmd)
    return req


@pytest.mark.parametrize(("user_ep", "user_cmd", "argv"), [
    (NIL, NIL, ["e", "c"]),
    (NIL, ["y"], ["e", "y"]),
    ([""], NIL, None),
    ([""], ["y"], ["y"]),
    (["x"], NIL, ["x"]),
    (["x"], ["y"], ["x", "y"]),
    ([], NIL, ["c"]),
])
def test_entrypoint_cmd_matrix(user_ep: list[str] | None, user_cmd: list[str] | None,
                               argv: list[str] | None) -> None:
    image = _image(entrypoint=["e"], cmd=["c"])
    req = _request(entrypoint=user_ep, cmd=user_cmd)
    if argv is None:
        with pytest.raises(InvalidArgument, match="no command specified"):
            merge(image, req, CID)
    else:
        assert merge(image, req, CID).args == argv


def test_empty_but_present_cmd_takes_image_cmd() -> None:
    # moby: an empty user Cmd (len 0) is replaced by the image Cmd.
    assert merge(_image(cmd=["c"]), _request(cmd=[]), CID).args == ["c"]


def test_no_command_anywhere() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        merge(_image(), _request(), CID)


def test_entrypoint_reset_is_not_kept() -> None:
    merged = merge(_image(entrypoint=["e"], cmd=["c"]), _request(entrypoint=[""], cmd=["y"]),
                   CID)
    assert merged.entrypoint is None and merged.cmd == ["y"]


def test_image_entrypoint_with_args() -> None:
    merged = merge(_image(entrypoint=["/bin/sh", "-c"], cmd=["echo hi"]), _request(), CID)
    assert merged.args == ["/bin/sh", "-c", "echo hi"]


def test_env_user_wins_by_key_and_defaults_added() -> None:
    image = _image(cmd=["c"], env=["A=image", "B=image", "PATH=/image/bin"])
    merged = merge(image, _request(env=["A=user", "C=user"]), CID)
    assert merged.env == ["PATH=/image/bin", f"HOSTNAME={CID[:12]}", "A=user", "C=user",
                          "B=image"]


def test_env_without_user_values_is_the_image_env() -> None:
    merged = merge(_image(cmd=["c"], env=["A=1"]), _request(), CID)
    assert merged.env == [f"PATH={DEFAULT_PATH}", f"HOSTNAME={CID[:12]}", "A=1"]


def test_env_user_hostname_override_and_explicit_hostname() -> None:
    merged = merge(_image(cmd=["c"]), _request(hostname="boxy", env=["HOSTNAME=mine"]), CID)
    assert merged.hostname == "boxy"
    assert "HOSTNAME=mine" in merged.env and "HOSTNAME=boxy" not in merged.env


def test_env_key_without_value_unsets() -> None:
    merged = merge(_image(cmd=["c"], env=["A=1"]), _request(env=["A"]), CID)
    assert not any(e.startswith("A") for e in merged.env)


def test_env_with_empty_key_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        merge(_image(cmd=["c"]), _request(env=["=x"]), CID)


@pytest.mark.parametrize(("image_wd", "user_wd", "want"), [
    ("", "", "/"), ("/srv", "", "/srv"), ("/srv", "/tmp/work", "/tmp/work"),
])
def test_working_dir(image_wd: str, user_wd: str, want: str) -> None:
    merged = merge(_image(cmd=["c"], working_dir=image_wd), _request(working_dir=user_wd), CID)
    assert merged.working_dir == want


def test_relative_working_dir_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="absolute"):
        merge(_image(cmd=["c"]), _request(working_dir="rel"), CID)


@pytest.mark.parametrize(("image_user", "user", "want"), [
    ("", "", ""), ("app", "", "app"), ("app", "1000:1000", "1000:1000"),
])
def test_user(image_user: str, user: str, want: str) -> None:
    assert merge(_image(cmd=["c"], user=image_user), _request(user=user), CID).user == want


def test_stop_signal_and_labels() -> None:
    image = _image(cmd=["c"], stop_signal="SIGQUIT", labels={"a": "image", "b": "image"})
    merged = merge(image, _request(labels={"a": "user"}), CID)
    assert merged.stop_signal == "SIGQUIT"
    assert merged.labels == {"a": "user", "b": "image"}
    assert merge(_image(cmd=["c"]), _request(), CID).stop_signal == "SIGTERM"
    assert merge(image, _request(stop_signal="SIGUSR1"), CID).stop_signal == "SIGUSR1"


def test_hostname_defaults_to_short_id() -> None:
    assert merge(_image(cmd=["c"]), _request(), CID).hostname == CID[:12]
