from __future__ import annotations

from services.core.cancel import Cancel


def test_callbacks_run_once_when_set_and_at_once_after() -> None:
    cancel = Cancel()
    calls: list[str] = []
    cancel.on_set(lambda: calls.append("a"))
    forget = cancel.on_set(lambda: calls.append("forgotten"))
    forget()
    assert not cancel.is_set() and calls == []
    cancel.set()
    cancel.set()
    assert cancel.is_set() and calls == ["a"]
    cancel.on_set(lambda: calls.append("late"))
    assert calls == ["a", "late"]
