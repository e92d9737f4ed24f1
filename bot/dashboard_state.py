"""What the dashboard issue shows that the bot remembers itself: which issue it is, the
suggestions waiting (and why) and the last check failures. Tables of the bot's records
(`bot/records.py`: the SQLite file or the PostgreSQL database), written off the event loop;
readers return frozen records."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.bot.records import Records

if TYPE_CHECKING:
    from flujo.bot.forge import CheckOutput

KEEP_FAILURES = 20
"""Check failures remembered per repository (the newest)."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A verified suggestion the bot did not propose (yet), and why: the open pull request
    limit, the agreement floor, or any other rule that holds suggestions back."""

    suggestion: str
    spec: str
    title: str
    reason: str
    patch: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DashboardIssue:
    installation: int
    number: int | None
    """None until the bot opened it."""
    enabled: bool


@dataclass(frozen=True, slots=True)
class CheckFailure:
    name: str
    sha: str
    title: str
    at: float


class Dashboards(Records):
    """The dashboard's tables."""

    # -- the issue -----------------------------------------------------------------------

    async def issue(self, repo: str) -> DashboardIssue | None:
        rows = await self._read(
            "SELECT installation, number, enabled FROM dashboards WHERE repo = ?", (repo,)
        )
        if not rows:
            return None
        installation, number, enabled = rows[0]
        return DashboardIssue(int(installation), number, bool(enabled))

    async def save_issue(
        self, repo: str, installation: int, number: int | None, enabled: bool
    ) -> None:
        await self._write(
            "INSERT INTO dashboards VALUES (?, ?, ?, ?, ?) ON CONFLICT (repo) DO UPDATE SET"
            " installation = excluded.installation, number = COALESCE(excluded.number,"
            " dashboards.number), enabled = excluded.enabled, updated_at = excluded.updated_at",
            (repo, installation, number, int(enabled), time.time()),
        )

    # -- suggestions waiting -------------------------------------------------------------

    async def replace_waiting(self, repo: str, items: list[Waiting]) -> None:
        """What a whole suggestion cycle left waiting (the earlier list is replaced)."""

        def write() -> None:
            now = time.time()
            rows = [
                (repo, w.suggestion, w.spec, w.title, w.reason, json.dumps(w.patch), now)
                for w in items
            ]
            with self._db.transaction() as db:
                db.execute("DELETE FROM dashboard_waiting WHERE repo = ?", (repo,))
                db.executemany("INSERT INTO dashboard_waiting VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

        await asyncio.to_thread(write)

    async def remove_waiting(self, repo: str, suggestions: Iterable[str]) -> None:
        for suggestion in suggestions:
            await self._write(
                "DELETE FROM dashboard_waiting WHERE repo = ? AND suggestion = ?",
                (repo, suggestion),
            )

    async def waiting(self, repo: str) -> list[Waiting]:
        rows = await self._read(
            "SELECT suggestion, spec, title, reason, patch FROM dashboard_waiting WHERE repo = ?"
            " ORDER BY at DESC, spec, suggestion",
            (repo,),
        )
        return [Waiting(s, spec, t, r, json.loads(p)) for s, spec, t, r, p in rows]

    # -- check failures ------------------------------------------------------------------

    async def record_checks(self, repo: str, sha: str, outputs: list[CheckOutput]) -> None:
        """Remember the checks of `sha` that failed (a later pass of the same check on the
        same commit, e.g. after an approval, clears it). One transaction per commit."""
        failed = [(repo, sha, o.name, o.title, time.time()) for o in outputs if o.blocks_merge]
        passed = [(repo, sha, o.name) for o in outputs if not o.blocks_merge]

        def record() -> None:
            with self._db.transaction() as db:
                if (
                    not failed
                    and not db.execute(
                        "SELECT 1 FROM check_failures WHERE repo = ? AND sha = ? LIMIT 1",
                        (repo, sha),
                    ).fetchone()
                ):
                    return  # the usual case: nothing failed, nothing to clear: no write
                for row in failed:
                    db.execute(
                        "INSERT INTO check_failures VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (repo, sha, name) DO UPDATE SET title = excluded.title,"
                        " at = excluded.at",
                        row,
                    )
                if passed:
                    db.executemany(
                        "DELETE FROM check_failures WHERE repo = ? AND sha = ? AND name = ?",
                        passed,
                    )
                db.execute(
                    "DELETE FROM check_failures WHERE repo = ? AND at < (SELECT MIN(at) FROM"
                    " (SELECT at FROM check_failures WHERE repo = ? ORDER BY at DESC LIMIT ?)"
                    " AS newest)",
                    (repo, repo, KEEP_FAILURES),
                )

        await asyncio.to_thread(record)

    async def check_failures(self, repo: str) -> list[CheckFailure]:
        rows = await self._read(
            "SELECT name, sha, title, at FROM check_failures WHERE repo = ? ORDER BY at DESC",
            (repo,),
        )
        return [CheckFailure(n, s, t, float(a)) for n, s, t, a in rows]
