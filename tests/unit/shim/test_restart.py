"""Restart policies: Docker's syntax and decisions, and the supervisor's loop."""

from __future__ import annotations

import threading
import time

import pytest

from services.core.restart_policy import Policy, parse
from services.shim import restart
from vocab.errors import InvalidArgument


def test_parse() -> None:
    assert parse("") == Policy("no") and parse("always") == Policy("always")
    assert parse("on-failure:3") == Policy("on-failure", 3)
    assert parse("on-failure:3").text() == "on-failure:3" and parse("no").text() == "no"
    for bad, text in (("sometimes", "invalid restart policy"),
                      ("always:2", "maximum retry count cannot be used"),
                      ("on-failure:x", "must be a number")):
        with pytest.raises(InvalidArgument, match=text):
            parse(bad)


def test_decisions() -> None:
    assert not Policy("no").wants_restart(1, 0, False)
    assert Policy("always").wants_restart(0, 100, False)
    assert not Policy("always").wants_restart(1, 0, True)  # stopped by hand
    assert Policy("unless-stopped").wants_restart(0, 0, False)
    assert not Policy("on-failure").wants_restart(0, 0, False)
    assert Policy("on-failure", 2).wants_restart(1, 1, False)
    assert not Policy("on-failure", 2).wants_restart(1, 2, False)


def test_supervisor_restarts_until_the_policy_says_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restart, "FIRST_DELAY", 0.001)
    restarts: list[str] = []
    done = threading.Event()

    def wait_stopped(cid: str, cancelled: object) -> bool:
        if len(restarts) == 3:
            done.set()
        return True

    hooks = restart.Hooks(wait_stopped=wait_stopped, exit_code=lambda cid: 1,
                          started_at=lambda cid: time.time(),
                          manually_stopped=lambda cid: False,
                          restarts=lambda cid: len(restarts), restart=restarts.append)
    restart.Supervisor(hooks).watch("c" * 64, Policy("on-failure", 3))
    assert done.wait(5)
    time.sleep(0.05)
    assert len(restarts) == 3  # and no more
