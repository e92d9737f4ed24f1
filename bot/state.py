"""What the bot remembers besides its queue: installations and policy overrides."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flujo.bot.evaluate import Override

SCHEMA = """
CREATE TABLE IF NOT EXISTS installations (
    id INTEGER PRIMARY KEY,
    account TEXT,
    suspended INTEGER NOT NULL DEFAULT 0,
    repositories TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS overrides (
    repo TEXT NOT NULL,
    pull INTEGER NOT NULL,
    policy TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (repo, pull, policy)
);
CREATE TABLE IF NOT EXISTS checked (
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    overrides TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (repo, sha, overrides)
);
"""


class BotState:
    """SQLite tables beside the queue's, written off the event loop."""

    def __init__(self, path: str | Path) -> None:
        from flujo.bot.sqlite_queue import connect

        self._db = connect(Path(path))
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        await asyncio.to_thread(self._run, sql, params)

    # -- installations -------------------------------------------------------------------

    async def save_installation(
        self, installation_id: int, account: str | None, repositories: list[str] | None = None
    ) -> None:
        await self._write(
            "INSERT INTO installations (id, account, repositories, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET account = excluded.account, suspended = 0,"
            " repositories = CASE WHEN ? THEN excluded.repositories ELSE repositories END,"
            " updated_at = excluded.updated_at",
            (
                installation_id,
                account,
                json.dumps(sorted(repositories or [])),
                time.time(),
                repositories is not None,
            ),
        )

    async def remove_installation(self, installation_id: int) -> None:
        await self._write("DELETE FROM installations WHERE id = ?", (installation_id,))

    async def suspend(self, installation_id: int, suspended: bool) -> None:
        await self._write(
            "UPDATE installations SET suspended = ?, updated_at = ? WHERE id = ?",
            (int(suspended), time.time(), installation_id),
        )

    async def change_repositories(
        self, installation_id: int, added: list[str], removed: list[str]
    ) -> None:
        def change() -> None:
            with self._lock:
                row = self._db.execute(
                    "SELECT repositories FROM installations WHERE id = ?", (installation_id,)
                ).fetchone()
                repos = set(json.loads(row[0])) if row else set()
                repos = (repos | set(added)) - set(removed)
                self._db.execute(
                    "INSERT INTO installations (id, repositories, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET repositories = excluded.repositories,"
                    " updated_at = excluded.updated_at",
                    (installation_id, json.dumps(sorted(repos)), time.time()),
                )

        await asyncio.to_thread(change)

    def installations(self) -> list[dict[str, Any]]:
        rows = self._run(
            "SELECT id, account, suspended, repositories FROM installations ORDER BY id"
        )
        return [
            {"id": r[0], "account": r[1], "suspended": bool(r[2]), "repositories": json.loads(r[3])}
            for r in rows
        ]

    # -- commits already checked ---------------------------------------------------------

    async def was_checked(self, repo: str, sha: str, overrides: str) -> bool:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT 1 FROM checked WHERE repo = ? AND sha = ? AND overrides = ?",
            (repo, sha, overrides),
        )
        return bool(rows)

    async def mark_checked(self, repo: str, sha: str, overrides: str) -> None:
        await self._write(
            "INSERT OR REPLACE INTO checked VALUES (?, ?, ?, ?)",
            (repo, sha, overrides, time.time()),
        )

    # -- overrides -----------------------------------------------------------------------

    async def record_override(self, repo: str, pull: int, policy: str, by: str, at: str) -> None:
        await self._write(
            "INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?, ?)", (repo, pull, policy, by, at)
        )

    async def remove_override(self, repo: str, pull: int, policy: str) -> None:
        await self._write(
            "DELETE FROM overrides WHERE repo = ? AND pull = ? AND policy = ?",
            (repo, pull, policy),
        )

    def overrides(self, repo: str, labels: Mapping[str, int]) -> dict[str, Override]:
        """Overrides for labels present now (who and when, as recorded from label events)."""
        found = {}
        for policy, pull in labels.items():
            rows = self._run(
                "SELECT by, at FROM overrides WHERE repo = ? AND pull = ? AND policy = ?",
                (repo, pull, policy),
            )
            by, at = rows[0] if rows else ("a maintainer", "an unrecorded time")
            found[policy] = Override(policy, by, at)
        return found
