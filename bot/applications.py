"""What the bot remembers of each suggestion it may apply by itself: tier, mode, state, the
SHAs it verified and merged, and every decision it took (one line each, also shown on
the pull request). A table of the bot's records (`records.py`: beside the queue's, on
SQLite or PostgreSQL), so a restart forgets nothing.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from flujo.bot.records import Records, write

State = Literal[
    "proposed",
    "baking",
    "waiting",
    "merged",
    "watching",
    "kept",
    "reverted",
    "blocked",
    "closed",
]


@dataclass(frozen=True)
class Application:
    """One suggestion pull request under auto-apply."""

    repo: str
    number: int
    installation: int
    branch: str
    spec: str
    suggestion: str
    patch: list[dict[str, Any]]
    tier: str
    mode: str
    reason: str
    state: State
    base_sha: str
    """The default branch's head the suggestion was made on."""
    spec_before: str = ""
    """spec_sha256 of the spec before the change (the watch's baseline)."""
    spec_after: str = ""
    heads: tuple[str, ...] = ()
    """Every head SHA the bot saw on the pull request (older ones make checks stale)."""
    waiting_since: float = 0.0
    merged_sha: str | None = None
    merged_at: float | None = None
    automatic: bool = False
    """Merged by the bot (a revert is then merged automatically too)."""
    revert_of: int | None = None
    """For a revert: the pull request it undoes."""
    bake: dict[str, Any] | None = None
    """For `stage`: the bake-in's tally (`flujo.learn.bake.BakeTally`, as JSON)."""
    baked: bool = False
    """The bake-in passed: the change may merge although its tier is `stage`."""
    log: tuple[str, ...] = field(default=())

    def with_line(self, line: str) -> Application:
        return replace(self, log=(*self.log, line))


class Applications(Records):
    """The `applications` table of the bot's records (a SQLite path or a PostgreSQL URL)."""

    async def get(self, repo: str, number: int) -> Application | None:
        rows = await self._read(
            "SELECT record FROM applications WHERE repo = ? AND number = ?", (repo, number)
        )
        return _load(rows[0][0]) if rows else None

    async def save(self, app: Application, now: float, merged_day: str | None = None) -> None:
        record = json.dumps(_dump(app))

        def upsert() -> None:
            write(
                self._db,
                "INSERT INTO applications VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (repo, number)"
                " DO UPDATE SET record = excluded.record, state = excluded.state,"
                " merged_day = COALESCE(excluded.merged_day, applications.merged_day),"
                " updated_at = excluded.updated_at",
                (app.repo, app.number, record, app.state, merged_day, now),
            )

        await asyncio.to_thread(upsert)

    async def merged_on(self, repo: str, day: str) -> int:
        """Automatic merges on `repo` on `day` (the daily cap counts these)."""
        rows = await self._read(
            "SELECT COUNT(*) FROM applications WHERE repo = ? AND merged_day = ?", (repo, day)
        )
        return int(rows[0][0])

    async def all(self, states: tuple[str, ...] = ()) -> list[Application]:
        rows = await self._read("SELECT record, state FROM applications ORDER BY updated_at DESC")
        return [_load(r) for r, state in rows if not states or state in states]


def _dump(app: Application) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(app)
    data["heads"], data["log"] = list(app.heads), list(app.log)
    return data


def _load(text: str) -> Application:
    data = json.loads(text)
    data["heads"], data["log"] = tuple(data["heads"]), tuple(data["log"])
    return Application(**data)
