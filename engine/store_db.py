"""The run store's two databases behind one small interface: a SQLite file, or PostgreSQL.

Statements are written once, in the SQL both understand (`ON CONFLICT` upserts,
`IS NOT DISTINCT FROM`), with `?` markers; on PostgreSQL the markers become `%s` and the
column types of table definitions (`REAL`, `INTEGER`, `BLOB`) their PostgreSQL names
(`DOUBLE PRECISION`, `BIGINT`, `BYTEA`). Each repository's data on a shared PostgreSQL
database lives in a schema of its own (`namespace`), so no query can mix two repositories.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _null(value: None) -> None:
    """None's adapter: it binds as NULL either way, but without an adapter of its own the
    sqlite3 module looks for one, fails and formats an error message it then drops (2.4k
    instructions per None bound; a run's rows bind about 15)."""
    return None


sqlite3.register_adapter(type(None), _null)


def is_postgres(location: str | Path) -> bool:
    """Whether a store location is a PostgreSQL URL (else it is a SQLite file)."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


class Cursor(Protocol):
    def execute(self, statement: str, args: Sequence[Any] = ()) -> Any: ...
    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> Any: ...


class Database(Protocol):
    """A connection shared by the threads of one process; one transaction at a time."""

    dialect: str

    def transaction(self) -> contextlib.AbstractContextManager[Cursor]: ...
    def query(self, statement: str, args: Sequence[Any]) -> list[dict[str, Any]]: ...
    def advisory_lock(self, cursor: Cursor) -> None: ...
    def has_table(self, cursor: Cursor, name: str) -> bool: ...
    def close(self) -> None: ...


class SQLiteDatabase:
    """One SQLite file in WAL mode; `BEGIN IMMEDIATE` serialises writers of all processes."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # a query inside a batch's transaction
        self._db = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, statement: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(statement, tuple(args))
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def has_table(self, cursor: Cursor, name: str) -> bool:
        found = cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return bool(found.fetchone()[0])

    def advisory_lock(self, cursor: Cursor) -> None:
        """Nothing to do: `BEGIN IMMEDIATE` already excludes every other writer."""

    def close(self) -> None:
        with self._lock:
            self._db.close()


_MARK = re.compile(r"'(?:[^']|'')*'|\?|%")
_TYPES = {"REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT", "BLOB": "BYTEA"}
_TYPE = re.compile(r"\b(REAL|INTEGER|BLOB)\b")
_MIGRATION_LOCK = 0x666C756A6F  # "flujo": one migration at a time per database


def to_postgres(statement: str, *, bound: bool = True) -> str:
    """`?` markers as `%s` (outside quoted strings) and, when the statement is sent with
    arguments (`bound`), every literal `%` doubled: psycopg reads `%` as a marker only
    then. In table definitions, SQLite's column types as PostgreSQL's."""

    def mark(found: re.Match[str]) -> str:
        text = found.group(0)
        if text == "?":
            return "%s"
        return "%%" if text == "%" else text.replace("%", "%%")

    if bound:
        statement = _MARK.sub(mark, statement)
    if statement.lstrip().upper().startswith(("CREATE TABLE", "ALTER TABLE")):
        statement = _TYPE.sub(lambda m: _TYPES[m.group(1)], statement)
    return statement


def schema_name(namespace: str) -> str:
    """A PostgreSQL schema for one namespace (a repository): readable, at most 63 bytes."""
    readable = re.sub(r"[^a-z0-9]+", "_", namespace.lower()).strip("_")[:40]
    return f"flujo_{readable}_{hashlib.sha256(namespace.encode()).hexdigest()[:10]}"


class _PgCursor:
    """A psycopg cursor that takes `?` markers."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Any:
        if not args:
            return self._cursor.execute(to_postgres(statement, bound=False))
        return self._cursor.execute(to_postgres(statement), tuple(args))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(to_postgres(statement), [tuple(r) for r in rows])


class PostgresDatabase:
    """One psycopg connection (reopened after the server went away), in `namespace`'s
    schema when one is given (created on first use)."""

    dialect = "postgresql"

    def __init__(self, url: str, namespace: str | None = None) -> None:
        self.url = url
        self.schema = schema_name(namespace) if namespace else None
        self._lock = threading.RLock()  # a query inside a batch's transaction
        self._db: Any = None
        with self._lock:
            self._connect()

    def _connect(self) -> Any:
        import psycopg

        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        db = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        if self.schema:
            # two processes creating it at the same moment: one of them is told it exists
            with contextlib.suppress(psycopg.errors.UniqueViolation):
                db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            db.execute(f'SET search_path TO "{self.schema}"')
        self._db = db
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A transaction; when the server went away (a restart) it fails, and the next one
        runs on a new connection."""
        import psycopg

        with self._lock:
            db = self._connect()
            try:
                with db.transaction(), db.cursor() as cursor:
                    yield _PgCursor(cursor)
            except psycopg.OperationalError:
                db.close()
                raise

    def query(self, statement: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows as dicts; asked again once on a new connection if the server went away."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                db = self._connect()
                try:
                    with db.cursor() as cursor:
                        if args:
                            cursor.execute(to_postgres(statement), tuple(args))
                        else:
                            cursor.execute(to_postgres(statement, bound=False))
                        if cursor.description is None:
                            return []
                        names = [c.name for c in cursor.description]
                        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                except psycopg.OperationalError:
                    db.close()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def has_table(self, cursor: Cursor, name: str) -> bool:
        found = cursor.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_name = ? AND table_schema = current_schema()",
            (name,),
        )
        return bool(found.fetchone()[0])

    def advisory_lock(self, cursor: Cursor) -> None:
        """Processes starting at once on one database migrate it one after the other."""
        cursor.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()


def open_database(location: str | Path, namespace: str | None = None) -> Database:
    """The database at a SQLite path or a PostgreSQL URL (`namespace`: PostgreSQL only)."""
    if is_postgres(location):
        return PostgresDatabase(str(location), namespace)
    return SQLiteDatabase(Path(location))
