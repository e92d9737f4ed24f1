"""A repository's run store on PostgreSQL, handed to the isolated suggestion cycle as a
SQLite file, and what the cycle wrote there merged back.

The cycle runs strangers' specs in a confined child with no database access (by design:
`isolation.py`). When the run stores are on PostgreSQL, the bot copies the repository's
runs, spans, spec versions, captured examples, evaluations and feedback (its schema holds
that repository's data only) into a new SQLite run store, the only file the child may
write. Triggers note every row the child inserts or changes; afterwards those rows are
written back to the repository's schema in one transaction. Only the tables and columns
the bot put in the file are read back, by rowid: whatever else a child writes there is
ignored, and what it can write lands in its own repository's store, as on SQLite. The
outputs of `kind: cache` steps are neither copied nor merged (a cache, not evidence).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

log = logging.getLogger("flujo.bot.store_extract")

CHANGES = "flujo_extract_changes"
_LEFT_OUT = ("meta", "cache_entries", CHANGES)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    """The primary key's columns (none: rows are only ever added)."""


@dataclass(frozen=True, slots=True)
class Extract:
    """A SQLite copy of one repository's run store."""

    path: Path
    tables: tuple[Table, ...]
    """What was copied, in the order the tables were created (referenced ones first)."""
    rows: int


def extract(store: RunStore, path: Path) -> Extract:
    """Copy `store`'s rows into a new SQLite run store at `path`, watching for changes."""
    from flujo.engine.store import RunStore

    RunStore(path).close()  # the tables, at this Flujo's schema version
    with _sqlite(path) as db:
        tables = _tables(db)
        copied = 0
        db.execute("BEGIN")
        for table in tables:
            names = ", ".join(table.columns)
            found = store.query(f"SELECT {names} FROM {table.name}", ())
            marks = ", ".join("?" * len(table.columns))
            db.executemany(
                f"INSERT INTO {table.name} ({names}) VALUES ({marks})",
                [tuple(row[c] for c in table.columns) for row in found],
            )
            copied += len(found)
        db.execute(f"CREATE TABLE {CHANGES} (tbl TEXT NOT NULL, rid INTEGER NOT NULL)")
        for table in tables:
            for event in ("INSERT", "UPDATE"):
                db.execute(
                    f"CREATE TRIGGER {CHANGES}_{table.name}_{event.lower()} AFTER {event} ON "
                    f"{table.name} BEGIN INSERT INTO {CHANGES} VALUES ('{table.name}', "
                    "NEW.rowid); END"
                )
        db.execute("COMMIT")
    return Extract(path, tables, copied)


def merge_back(made: Extract, store: RunStore) -> int:
    """Write the rows the cycle inserted or changed in the extract back to `store`, in one
    transaction; returns how many."""
    known = {table.name for table in made.tables}
    with _sqlite(made.path) as db:
        changed: dict[str, set[int]] = {}
        for name, rowid in db.execute(f"SELECT tbl, rid FROM {CHANGES}"):
            if name in known and isinstance(rowid, int):
                changed.setdefault(name, set()).add(rowid)
        batches = []
        for table in made.tables:
            ids = sorted(changed.get(table.name, ()))
            select = f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE rowid = ?"
            found = [row for i in ids if (row := db.execute(select, (i,)).fetchone())]
            if found:
                batches.append((_upsert(table), found))
    with store.batch():
        for statement, found in batches:
            store.execute(statement, found)
    return sum(len(found) for _, found in batches)


@contextlib.asynccontextmanager
async def cycle_store(store: RunStore, folder: Path | None) -> AsyncIterator[str]:
    """Where the isolated cycle finds `store`: its file on SQLite; on PostgreSQL an extract
    in `folder` (the system's temporary folder when None), merged back when the cycle ends
    (also when it failed: what it wrote stays, as it would in a file), then removed."""
    import asyncio

    if store.backend != "postgresql":
        yield str(store.path)
        return
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flujo-snapshot-runs-", dir=folder) as tmp:
        made = await asyncio.to_thread(extract, store, Path(tmp) / "runs.db")
        try:
            yield str(made.path)
        finally:
            try:
                merged = await asyncio.to_thread(merge_back, made, store)
            except Exception as exc:  # the child's file, or the database: keep the outcome
                log.warning("the suggestion cycle's writes could not be merged back: %s", exc)
            else:
                log.info("suggestion cycle: %d row(s) read, %d merged back", made.rows, merged)


def _tables(db: sqlite3.Connection) -> tuple[Table, ...]:
    names = [
        str(row[0])
        for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
        if row[0] not in _LEFT_OUT and not str(row[0]).startswith("sqlite_")
    ]
    tables = []
    for name in names:
        info = db.execute(f"PRAGMA table_info({name})").fetchall()
        columns = tuple(str(c[1]) for c in info)
        key = tuple(str(c[1]) for c in sorted((c for c in info if c[5]), key=lambda c: c[5]))
        tables.append(Table(name, columns, key))
    return tuple(tables)


def _upsert(table: Table) -> str:
    names = ", ".join(table.columns)
    insert = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(table.columns))})"
    if not table.key:
        return insert
    rest = [c for c in table.columns if c not in table.key]
    action = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "DO NOTHING"
    )
    return f"{insert} ON CONFLICT ({', '.join(table.key)}) {action}"


@contextlib.contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    try:
        yield db
    finally:
        db.close()
