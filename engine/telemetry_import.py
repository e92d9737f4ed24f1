"""`flujo telemetry import FILE`: runs recorded elsewhere, merged into the local store.

FILE is a run store exported from another machine (its SQLite file), or an OTLP/JSON
trace export (as written by OpenTelemetry's file exporters). Runs already present are
left alone, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.spec.errors import EXIT_USAGE, FlujoError

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

SQLITE_MAGIC = b"SQLite format 3\x00"
OLDEST_IMPORTABLE = 2
"""Run stores of this schema version and later can be imported."""


class TelemetryImportError(FlujoError, ValueError):
    """FILE is neither a compatible run store nor an OTLP/JSON export (exit code 2, as
    `flujo telemetry import` documents)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class ImportResult:
    runs: int
    spans: int
    skipped_runs: int = 0
    """Runs that were already in the store."""


def import_file(store: RunStore, path: Path) -> ImportResult:
    """Merge `path` into `store`; TelemetryImportError with a clear message for a bad file."""
    with path.open("rb") as file:
        head = file.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        return _import_store(store, path)
    from flujo.engine.otlp_ingest import JSON, IngestError, ingest_traces

    try:
        result = ingest_traces(store, path.read_bytes(), JSON)
    except IngestError as exc:
        raise TelemetryImportError(
            f"{path}: not a Flujo run store (SQLite) nor an OTLP/JSON trace export ({exc})"
        ) from None
    return ImportResult(result.runs, result.accepted)


def _import_store(store: RunStore, path: Path) -> ImportResult:
    from flujo.engine.store import SCHEMA_VERSION

    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise TelemetryImportError(f"{path}: cannot open: {exc}") from None
    try:
        version = _one(source, "SELECT value FROM meta WHERE key = 'schema_version'")
        # older stores lack columns added since; their rows get the columns' defaults
        # (runs of a schema 2 store: mode and origin `unknown`)
        if version is None or not OLDEST_IMPORTABLE <= int(version[0]) <= SCHEMA_VERSION:
            found = version[0] if version else "none"
            raise TelemetryImportError(
                f"{path}: run store schema version {found}; this Flujo reads {SCHEMA_VERSION}"
            )
        known = {r["run_id"] for r in store.query("SELECT run_id FROM runs", ())}
        run_columns, all_runs = _table(source, "runs")
        runs = [r for r in all_runs if r[0] not in known]
        new = {r[0] for r in runs}
        span_columns, all_spans = _table(source, "spans")
        spans = [r for r in all_spans if r[0] in new]
        spec_columns, specs = _table(source, "specs")
    except sqlite3.Error as exc:
        raise TelemetryImportError(f"{path}: not a readable Flujo run store: {exc}") from None
    finally:
        source.close()
    store.execute(_insert("specs", spec_columns), specs)
    if runs:
        store.execute(_insert("runs", run_columns), runs)
    if spans:
        store.execute(_insert("spans", span_columns), spans)
    return ImportResult(len(runs), len(spans), len(known & _ids(path)))


def _table(db: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = db.execute(f"SELECT * FROM {table}")
    return [c[0] for c in cursor.description], [tuple(row) for row in cursor.fetchall()]


def _insert(table: str, columns: list[str]) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"


def _one(db: sqlite3.Connection, query: str) -> Any:
    return db.execute(query).fetchone()


def _ids(path: Path) -> set[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT run_id FROM runs")}
    finally:
        db.close()
