"""Where the bot's own records live: the SQLite file beside the embedded queue
(`FLUJO_BOT_DB`), or the PostgreSQL database of the queue (`FLUJO_BOT_DATABASE_URL`), so that
bot processes on several machines share them.

Installations, approvals, telemetry tokens, proposals, evaluation spend, commits checked,
pacing (`state.py`), the dashboard issue (`dashboard_state.py`) and auto-apply records
(`applications.py`) are one set of tables with a
version, brought up to date by the same scheme as the run store's (`engine/store.py`):
statements in `_MIGRATIONS` take version N to N + 1 in one transaction, one process at a
time. The SQL is written once for both databases (`engine/store_db.py` translates it);
on PostgreSQL the tables live in a schema of their own (`RECORDS_SCHEMA`).

Readers are coroutines: on PostgreSQL they read on a worker thread (the connection is
shared by threads, one statement at a time: `store_db.PostgresDatabase`), never on the
event loop, which would stall every other webhook for the round trip. On SQLite they read
on the loop: a small read took 15 µs of CPU there against 100-120 µs through
`asyncio.to_thread` (CPU time per read, 3 rounds of 3,000 reads of one proposal row).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flujo.engine.store_db import Database, is_postgres, open_database, schema_name
from flujo.spec.errors import EXIT_USAGE, FlujoError

VERSION = 2
"""Bump with a migration in `_MIGRATIONS` when the tables change."""
NAMESPACE = "bot"
"""On PostgreSQL, the records' schema is `schema_name(NAMESPACE)`; a repository's run store
namespace is always `owner/name`, so the two never meet."""
RECORDS_SCHEMA = schema_name(NAMESPACE)

_TABLES = (
    """CREATE TABLE IF NOT EXISTS installations (
    id INTEGER PRIMARY KEY,
    account TEXT,
    suspended INTEGER NOT NULL DEFAULT 0,
    repositories TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS overrides (
    repo TEXT NOT NULL,
    pull INTEGER NOT NULL,
    policy TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    sha TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (repo, pull, policy)
)""",
    """CREATE TABLE IF NOT EXISTS telemetry_tokens (
    token_sha256 TEXT PRIMARY KEY,
    installation INTEGER NOT NULL,
    repo TEXT NOT NULL,
    created_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS proposals (
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    spec TEXT NOT NULL,
    suggestion TEXT NOT NULL,
    patch TEXT NOT NULL,
    number INTEGER,
    state TEXT NOT NULL DEFAULT 'open',
    updated_at REAL NOT NULL,
    view TEXT,
    PRIMARY KEY (repo, branch)
)""",
    """CREATE TABLE IF NOT EXISTS eval_spend (
    installation INTEGER NOT NULL,
    repo TEXT NOT NULL,
    month TEXT NOT NULL,
    usd REAL NOT NULL DEFAULT 0,
    examples INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (installation, repo, month)
)""",
    # pacing (bot/pacing.py): when suggestion pull requests were opened; and every verified
    # suggestion not proposed (yet), held back by pacing or by the cycle, which the
    # dashboard issue shows (`bot.pacing.Waiting`; `BotState.set_waiting`)
    """CREATE TABLE IF NOT EXISTS suggestion_openings (
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS suggestion_waiting (
    repo TEXT NOT NULL,
    suggestion TEXT NOT NULL,
    spec TEXT NOT NULL,
    title TEXT NOT NULL,
    branch TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    until REAL,
    since REAL NOT NULL,
    patch TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (repo, suggestion)
)""",
    # the dashboard issue (dashboard_state.py)
    """CREATE TABLE IF NOT EXISTS dashboards (
    repo TEXT PRIMARY KEY,
    installation INTEGER NOT NULL,
    number INTEGER,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS check_failures (
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (repo, sha, name)
)""",
    """CREATE TABLE IF NOT EXISTS checked (
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    overrides TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (repo, sha, overrides)
)""",
    # auto-apply (applications.py): one JSON record per suggestion pull request
    """CREATE TABLE IF NOT EXISTS applications (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    record TEXT NOT NULL,
    state TEXT NOT NULL,
    merged_day TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (repo, number)
)""",
)
"""The records' tables at VERSION (both databases; see `store_db.to_postgres`)."""

_SAME_ROW = "d.repo = suggestion_waiting.repo AND d.suggestion = suggestion_waiting.suggestion"

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # one list of what waits: the dashboard's own table (every suggestion not proposed,
    # with its patch) joins the pacing's (those held back by `pull_requests:`)
    1: (
        "ALTER TABLE suggestion_waiting ADD COLUMN patch TEXT NOT NULL DEFAULT '[]'",
        f"UPDATE suggestion_waiting SET patch = (SELECT d.patch FROM dashboard_waiting d"
        f" WHERE {_SAME_ROW}) WHERE EXISTS (SELECT 1 FROM dashboard_waiting d WHERE {_SAME_ROW})",
        "INSERT INTO suggestion_waiting"
        " (repo, suggestion, spec, title, branch, reason, detail, until, since, patch)"
        " SELECT d.repo, d.suggestion, d.spec, d.title, '', 'not_proposed', d.reason, NULL,"
        " d.at, d.patch FROM dashboard_waiting d WHERE NOT EXISTS (SELECT 1 FROM"
        " suggestion_waiting w WHERE w.repo = d.repo AND w.suggestion = d.suggestion)",
        "DROP TABLE dashboard_waiting",
    ),
}
"""Statements that bring records of version N to N + 1, run in one transaction."""


class RecordsError(FlujoError):
    """The bot's records cannot be used (unreachable, or written by a newer Flujo);
    exit code 2, like an unreachable queue."""

    exit_code = EXIT_USAGE


def open_records(location: str | Path) -> Database:
    """The records' database at a SQLite path or a PostgreSQL URL, up to date."""
    try:
        database = (
            open_database(str(location), NAMESPACE)
            if is_postgres(location)
            else open_database(Path(location))
        )
    except Exception as exc:  # psycopg's or sqlite3's: the database cannot be reached
        raise RecordsError(f"cannot open the bot's records: {exc}") from None
    try:
        _migrate(database)
    except BaseException:
        database.close()
        raise
    return database


def _migrate(database: Database) -> None:
    """Create the tables, or bring older ones up to date; refuse newer."""
    with database.transaction() as db:
        database.advisory_lock(db)
        found = None
        if database.has_table(db, "bot_meta"):
            row = db.execute("SELECT value FROM bot_meta WHERE key = 'version'").fetchone()
            found = int(row[0]) if row else None
        if found is None:
            # new, or a SQLite file from before the records had a version: its tables are
            # these, less the commit an approval names (added here)
            legacy = database.dialect == "sqlite" and database.has_table(db, "overrides")
            if legacy and not _has_column(db, "overrides", "sha"):
                db.execute("ALTER TABLE overrides ADD COLUMN sha TEXT NOT NULL DEFAULT ''")
            db.execute("CREATE TABLE IF NOT EXISTS bot_meta (key TEXT PRIMARY KEY, value TEXT)")
            for statement in _TABLES:
                db.execute(statement)
            db.execute(
                "INSERT INTO bot_meta VALUES ('version', ?) ON CONFLICT DO NOTHING",
                (str(VERSION),),
            )
        elif found > VERSION or not all(v in _MIGRATIONS for v in range(found, VERSION)):
            raise RecordsError(
                f"the bot's records have version {found}, this Flujo needs {VERSION}: "
                "run the Flujo that wrote them, or a newer one"
            )
        elif found < VERSION:
            for version in range(found, VERSION):
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
            db.execute("UPDATE bot_meta SET value = ? WHERE key = 'version'", (str(VERSION),))


def _has_column(db: Any, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})").fetchall())


class Records:
    """A view of the bot's records (a SQLite path or a PostgreSQL URL), used from the
    event loop: writes off it, one statement a transaction; reads off it on PostgreSQL
    (`_read`)."""

    def __init__(self, location: str | Path) -> None:
        self._db = open_records(location)

    def close(self) -> None:
        self._db.close()

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """A query's rows. On PostgreSQL a read is a round trip to the server (or a wait for
        a lock): it runs on a worker thread, so the event loop serves other requests
        meanwhile. On SQLite a read of a few rows takes ~15 µs of CPU, less than the
        ~100 µs a thread hop costs, so it runs here (see the module docstring)."""
        if self._db.dialect == "postgresql":
            return await asyncio.to_thread(read, self._db, sql, tuple(params))
        return read(self._db, sql, tuple(params))

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        await asyncio.to_thread(write, self._db, sql, tuple(params))


def read(database: Database, statement: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A query's rows as tuples."""
    return [tuple(row.values()) for row in database.query(statement, args)]


def write(database: Database, statement: str, args: tuple[Any, ...] = ()) -> None:
    """One statement in a transaction of its own."""
    with database.transaction() as db:
        db.execute(statement, args)
