"""Compile SQL against a schema in a private in-memory SQLite database.

Nothing is run and nothing touches a file: the schema's statements are executed in an
empty in-memory database, the query is only compiled (`EXPLAIN`), an authorizer refuses
ATTACH, DETACH and PRAGMA (the ways SQL reaches files or settings), and a progress
handler bounds the work, because specs (and so schemas and queries) come from strangers.
"""

from __future__ import annotations

import re
import sqlite3
import time

MAX_SCHEMA = 256 * 1024
MAX_SQL = 64 * 1024
TIME_LIMIT_S = 1.0
_FENCE = re.compile(r"```(?:sql|sqlite)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_REFUSED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA}


def ddl_problem(schema: str) -> str | None:
    """Why `schema` cannot be used (None when its statements run on an empty database)."""
    db, problem = _database(schema)
    if db is not None:
        db.close()
    return problem


def unfenced(text: str) -> str:
    """The query in a ```sql fenced block (as models often write it), else the text."""
    match = _FENCE.search(text)
    return (match.group(1) if match else text).strip()


def compile_problem(sql: str, schema: str) -> str | None:
    """Why `sql` does not compile against `schema`, or None when it does."""
    if not sql:
        return "the query is empty"
    if len(sql.encode()) > MAX_SQL:
        return f"the query is larger than {MAX_SQL // 1024} KiB"
    db, problem = _database(schema)
    if db is None:
        return problem
    try:
        _bounded(db)
        db.execute("EXPLAIN " + sql).fetchall()
    except (sqlite3.Error, sqlite3.Warning) as exc:  # Warning: more than one statement
        return f"the query does not compile: {_message(exc)}"
    finally:
        db.close()
    return None


def _database(schema: str) -> tuple[sqlite3.Connection | None, str | None]:
    """An in-memory database with `schema` run in it, or why that failed."""
    if len(schema.encode()) > MAX_SCHEMA:
        return None, f"schema: larger than {MAX_SCHEMA // 1024} KiB"
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.set_authorizer(_authorize)
    _bounded(db)
    try:
        db.executescript(schema)
    except (sqlite3.Error, sqlite3.Warning) as exc:
        db.close()
        return None, f"schema: {_message(exc)}"
    return db, None


def _authorize(action: int, *_: object) -> int:
    return sqlite3.SQLITE_DENY if action in _REFUSED else sqlite3.SQLITE_OK


def _bounded(db: sqlite3.Connection) -> None:
    deadline = time.monotonic() + TIME_LIMIT_S
    db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)


def _message(exc: Exception) -> str:
    text = str(exc)
    if text == "interrupted":
        return f"took longer than {TIME_LIMIT_S:g} s"
    if text == "not authorized":
        return "ATTACH, DETACH and PRAGMA are not allowed"
    return text
