"""What the dashboard issue shows that the bot remembers itself: which issue it is and the
last check failures. Tables of the bot's records (`bot/records.py`: the SQLite file or the
PostgreSQL database), written off the event loop; readers return frozen records. The
suggestions waiting it lists are the pacing's list (`BotState.waiting`), not a table here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flujo.bot.records import Records

if TYPE_CHECKING:
    from flujo.bot.forge import CheckOutput

KEEP_FAILURES = 20
"""Check failures remembered per repository (the newest)."""


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
