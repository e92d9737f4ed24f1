"""Plugins' apply hooks: on_commit in order, on_rollback in reverse; a failure never stops
the others."""

from __future__ import annotations

from typing import Any

import pytest

from flujo.bot import apply_hooks
from flujo.bot.apply_hooks import ApplyEvent, installed_hooks, on_commit, on_rollback

EVENT = ApplyEvent("acme/flows", 3, "flujo/a.yml", "abc", "watch", "low", "f" * 40, "why")


class Hook:
    def __init__(self, name: str, seen: list[str], fail: bool = False) -> None:
        self.__name__ = name
        self.seen, self.fail = seen, fail

    def on_commit(self, event: ApplyEvent) -> None:
        self.seen.append(f"commit {self.__name__}")

    async def on_rollback(self, event: ApplyEvent) -> None:
        self.seen.append(f"rollback {self.__name__} #{event.number}")
        if self.fail:
            raise RuntimeError("the deploy API is down")


async def test_rollback_hooks_run_in_reverse_and_a_failure_does_not_stop_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    hooks = [Hook("first", seen), Hook("second", seen, fail=True), Hook("third", seen)]
    assert await on_commit(hooks, EVENT) == []
    failures = await on_rollback(hooks, EVENT)
    assert seen == [
        "commit first",
        "commit second",
        "commit third",
        "rollback third #3",
        "rollback second #3",
        "rollback first #3",
    ]
    assert failures == ["hook second.on_rollback failed: RuntimeError: the deploy API is down"]
    assert "the deploy API is down" in caplog.text


def test_hooks_come_from_the_entry_point_group_and_broken_ones_are_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Point:
        def __init__(self, name: str, target: Any) -> None:
            self.name, self.target = name, target

        def load(self) -> Any:
            if isinstance(self.target, Exception):
                raise self.target
            return self.target

    class Notify:
        def on_commit(self, event: ApplyEvent) -> None: ...

    groups: list[str] = []

    def entry_points(group: str) -> list[Point]:
        groups.append(group)
        return [Point("b-notify", Notify), Point("a-broken", ImportError("no module x"))]

    monkeypatch.setattr("importlib.metadata.entry_points", entry_points)
    hooks = installed_hooks()
    assert groups == [apply_hooks.ENTRY_POINT_GROUP] == ["flujo.apply_hooks"]
    assert [type(h).__name__ for h in hooks] == ["Notify"]
    assert "apply hook a-broken could not be loaded: no module x" in caplog.text
