"""commit/import --change applied to a config, as dockerd's BuildFromConfig (the compat
tests hold the results to a private dockerd's; these pin the rules without one)."""

from __future__ import annotations

import pytest

from services.builder.changes import apply_changes, merge_commit
from vocab.errors import InvalidArgument

BASE = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/srv",
        "Labels": {"keep": "me"}}


def test_changes_expand_against_the_configs_env_in_turn() -> None:
    out = apply_changes(BASE, ["ENV B=$A-x", "ENV C=${B}y", "WORKDIR $A", "LABEL l=$C"])
    assert out["Env"] == ["PATH=/bin", "A=1", "B=1-x", "C=1-xy"]
    assert out["WorkingDir"] == "/srv/1"
    assert out["Labels"] == {"keep": "me", "l": "1-xy"}


def test_an_entrypoint_drops_the_cmd_unless_a_change_set_one() -> None:
    assert "Cmd" not in apply_changes(BASE, ["ENTRYPOINT [\"/bin/echo\"]"])
    out = apply_changes(BASE, ["CMD [\"hi\"]", "ENTRYPOINT [\"/bin/echo\"]"])
    assert (out["Entrypoint"], out["Cmd"]) == (["/bin/echo"], ["hi"])
    assert apply_changes(BASE, ["ENTRYPOINT echo $A"])["Entrypoint"] == [
        "/bin/sh", "-c", "echo $A"]  # never expanded, as in a build


def test_no_changes_return_the_config_itself() -> None:
    assert apply_changes(BASE, []) is BASE
    assert apply_changes(BASE, ["", "  "]) is BASE


@pytest.mark.parametrize(("change", "message"), [
    ("RUN true", "run is not a valid change command"),
    ("ENV A=2\nCOPY a b", "copy is not a valid change command"),
    ("SHELL [\"sh\"]", "shell is not a valid change command"),
    ("STOPSIGNAL 9", "stopsignal is not a valid change command"),
    ("ENV", "ENV requires at least one argument"),
    ("EXPOSE 80/xyz", "Invalid proto: xyz"),
])
def test_a_bad_change_is_refused_in_dockerds_words_and_nothing_changes(
        change: str, message: str) -> None:
    before = repr(BASE)
    with pytest.raises(InvalidArgument) as err:
        apply_changes(BASE, ["LABEL first=1", change])
    assert err.value.message == message
    assert repr(BASE) == before


def test_a_commit_takes_back_what_its_changes_left_empty() -> None:
    """dockerd's merge() after the changes: the container's healthcheck fields a
    HEALTHCHECK change leaves out, its CMD and ENTRYPOINT when ENTRYPOINT [] empties them."""
    container = {**BASE, "Entrypoint": ["/init"],
                 "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 2}}
    out = merge_commit(apply_changes(container, ["HEALTHCHECK CMD false"]), container)
    assert out["Healthcheck"] == {"Test": ["CMD-SHELL", "false"], "Interval": 5, "Retries": 2}
    out = merge_commit(apply_changes(container, ["ENTRYPOINT []"]), container)
    assert (out["Entrypoint"], out["Cmd"]) == (["/init"], ["sh"])
    out = merge_commit(apply_changes(container, ["ENTRYPOINT [\"/x\"]"]), container)
    assert (out["Entrypoint"], "Cmd" in out) == (["/x"], False)
