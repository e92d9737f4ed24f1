"""The run store: runs, spans and spec versions in one SQLite file (WAL).

Each spec version is stored once, by spec_sha256, so any span can be mapped back to
the exact YAML line it ran. A run's row is written when it starts and again when it
ends; its spans are written in one transaction at the end (and in batches during long
runs), so the hot path never waits for the disk. Several processes may write at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.engine import telemetry as tm
from flujo.spec.errors import EXIT_USAGE, FlujoError

if TYPE_CHECKING:
    from flujo.engine.results import PipelineResult
    from flujo.engine.telemetry import SpanRecord

SCHEMA_VERSION = 4
"""Bump with a migration in `_MIGRATIONS` when the tables change."""
DEFAULT_PATH = Path(".flujo") / "flujo.db"

MODES = ("live", "replay", "fake", "mock")
"""How a run reached its models: a real server, a cassette, the fake server, mocks only."""
ORIGINS = ("cli", "sdk", "test", "check", "verification", "eval", "shadow")
"""What started a run: `flujo run`, code, embedded tests, the bot's checks, verifying a
suggestion, an evaluation, a shadow run."""
UNKNOWN = "unknown"
"""Mode and origin of runs recorded before provenance was (schema 2 and OTLP spans from
older Flujo versions): not counted as live evidence unless asked for."""
CAUSES = ("model", "provider", "harness", "input", "limit", "cancelled")
"""Why an attempt failed: the model's output (schema, validator), the provider (HTTP
error, timeout), the harness (cassette miss, no model configured), the run's input, a
usage limit, cancellation."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS specs (
    sha256 TEXT PRIMARY KEY,
    path TEXT,
    name TEXT,
    text TEXT NOT NULL,
    first_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    spec_sha256 TEXT NOT NULL REFERENCES specs(sha256),
    spec_path TEXT,
    pipeline TEXT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    latency_s REAL,
    total_cost_usd REAL,
    total_tokens INTEGER,
    error TEXT,
    error_path TEXT,
    trace_id TEXT,
    policies TEXT,
    mode TEXT NOT NULL DEFAULT 'unknown',
    origin TEXT NOT NULL DEFAULT 'unknown',
    cause TEXT,
    prices_version TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_spec ON runs (spec_sha256, started_at);
CREATE TABLE IF NOT EXISTS spans (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    span_id INTEGER NOT NULL,
    parent_id INTEGER,
    name TEXT NOT NULL,
    step_name TEXT,
    kind TEXT,
    yaml_path TEXT,
    line INTEGER,
    attempt INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    cost_usd REAL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    model TEXT,
    provider TEXT,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    cause TEXT,
    PRIMARY KEY (run_id, span_id)
);
"""

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2 -> 3: provenance of runs and causes of failed attempts. Existing runs get mode and
    # origin `unknown` (never counted as live); the cause of an existing failed span is
    # inferred from its error text when it is read (see `infer_cause`).
    2: (
        "ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'unknown'",
        "ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'unknown'",
        "ALTER TABLE runs ADD COLUMN cause TEXT",
        "ALTER TABLE spans ADD COLUMN cause TEXT",
    ),
    # 3 -> 4: the version of the price table that computed each run's cost. Existing runs
    # get NULL: their costs were computed by a table whose version was not recorded.
    3: ("ALTER TABLE runs ADD COLUMN prices_version TEXT",),
}
"""Statements that bring a store of version N to N + 1, run in one transaction."""
_SPAN_COLUMNS = (
    "run_id, span_id, parent_id, name, step_name, kind, yaml_path, line, attempt, status,"
    " error, start_ns, end_ns, cost_usd, input_tokens, output_tokens, model, provider,"
    " attributes, events, cause"
)
_INSERT_SPANS = f"INSERT OR REPLACE INTO spans ({_SPAN_COLUMNS}) VALUES ({', '.join('?' * 21)})"


class StoreError(FlujoError):
    """The run store cannot be used (wrong schema version, unreadable file); exit code 2."""

    exit_code = EXIT_USAGE


def default_path() -> Path:
    """FLUJO_STORE, or .flujo/flujo.db under the current directory."""
    return Path(os.environ.get("FLUJO_STORE") or DEFAULT_PATH)


def new_run_id() -> str:
    """Sortable by start time: milliseconds in hex, then 40 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}{int.from_bytes(os.urandom(5), 'big'):010x}"


class RunStore:
    """SQLite-backed store; safe to share between threads of one process."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        found = self._schema_version()
        if found is not None and found != SCHEMA_VERSION:
            if found in _MIGRATIONS and found < SCHEMA_VERSION:
                self._migrate(found)
            else:
                self._db.close()
                raise StoreError(
                    f"the run store {self.path} has schema version {found}, this Flujo needs "
                    f"{SCHEMA_VERSION}: move it aside (runs in it stay readable by the Flujo "
                    "that wrote them) and a new one is created"
                )
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def _schema_version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:  # a new, empty file
            return None
        return int(row[0]) if row else None

    def _migrate(self, found: int) -> None:
        """Bring a store of an older schema version up to date, one version at a time."""
        with self._transaction() as db:
            version = found
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
                version += 1
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    # -- writing ---------------------------------------------------------------------------

    def begin_run(
        self,
        *,
        run_id: str,
        spec_sha256: str,
        spec_text: str,
        spec_path: str | None,
        pipeline: str | None,
        trace_id: int,
        mode: str = UNKNOWN,
        origin: str = UNKNOWN,
        prices_version: str | None = None,
    ) -> None:
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO specs VALUES (?, ?, ?, ?, ?)",
                (spec_sha256, spec_path, pipeline, spec_text, now),
            )
            db.execute(
                "INSERT INTO runs (run_id, spec_sha256, spec_path, pipeline, status, started_at,"
                " trace_id, mode, origin, prices_version)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (
                    run_id,
                    spec_sha256,
                    spec_path,
                    pipeline,
                    now,
                    f"{trace_id:032x}",
                    mode,
                    origin,
                    prices_version,
                ),
            )

    def write_spans(self, run_id: str, spans: list[SpanRecord]) -> None:
        """Insert or update spans (a span may be written open, then again when it ends)."""
        if not spans:
            return
        rows = [_span_row(run_id, span) for span in spans]
        with self._transaction() as db:
            db.executemany(_INSERT_SPANS, rows)

    def finish_run(self, result: PipelineResult, spans: list[SpanRecord]) -> None:
        """Record the outcome and every span of a run in one transaction."""
        rows = [_span_row(result.run_id, span) for span in spans]
        with self._transaction() as db:
            db.executemany(_INSERT_SPANS, rows)
            db.execute(
                "UPDATE runs SET status = ?, ended_at = ?, latency_s = ?, total_cost_usd = ?,"
                " total_tokens = ?, error = ?, error_path = ?, policies = ?, cause = ?"
                " WHERE run_id = ?",
                (
                    result.status,
                    time.time(),
                    result.latency_s,
                    result.total_cost_usd,
                    result.total_tokens,
                    result.error,
                    result.error_path,
                    json.dumps([p.to_dict() for p in result.policies]) if result.policies else None,
                    result.cause,
                    result.run_id,
                ),
            )

    # -- reading ---------------------------------------------------------------------------

    def list_runs(self, limit: int = 20, spec_sha256: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM runs"
        args: tuple[Any, ...] = ()
        if spec_sha256:
            query += " WHERE spec_sha256 = ?"
            args = (spec_sha256,)
        query += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
        return self.query(query, (*args, limit))

    def find_run(self, run_id: str) -> dict[str, Any] | None:
        """The run whose id is `run_id` or starts with it (None if none, or ambiguous)."""
        rows = self.query(
            "SELECT * FROM runs WHERE run_id LIKE ? ORDER BY run_id LIMIT 2",
            (run_id.replace("%", "").replace("_", "") + "%",),
        )
        return rows[0] if len(rows) == 1 else None

    def spans(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM spans WHERE run_id = ? ORDER BY start_ns", (run_id,))
        for row in rows:  # ids as OpenTelemetry writes them: 16 hex digits
            row["span_id"] = f"{row['span_id']:016x}"
            if row["parent_id"] is not None:
                row["parent_id"] = f"{row['parent_id']:016x}"
            row["attributes"] = json.loads(row["attributes"])
            row["attributes"] = attributes_of(row)
            row["events"] = json.loads(row["events"])
            if row["status"] == "ERROR" and row["cause"] is None:
                row["cause"] = infer_cause(row["error"])
        return rows

    def spec_text(self, spec_sha256: str) -> str | None:
        rows = self.query("SELECT text FROM specs WHERE sha256 = ?", (spec_sha256,))
        return rows[0]["text"] if rows else None

    def execute(self, statement: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        """Run a write statement once per row (once, without parameters, when no rows are
        given) in one transaction: for importers and extensions with tables of their own."""
        with self._transaction() as db:
            if rows is None:
                db.execute(statement)
            else:
                db.executemany(statement, rows)

    def query(self, query: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(query, args)
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class _Transaction:
    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.lock.release()


_TYPED = frozenset(
    {
        tm.STEP_NAME,
        tm.STEP_KIND,
        tm.YAML_PATH,
        tm.YAML_LINE,
        tm.ATTEMPT,
        tm.COST,
        tm.GEN_AI_INPUT_TOKENS,
        tm.GEN_AI_OUTPUT_TOKENS,
        tm.GEN_AI_MODEL,
        tm.GEN_AI_SYSTEM,
        tm.RUN_ID,
        tm.SPEC_SHA,
        tm.CAUSE,
    }
)


def _span_row(run_id: str, span: SpanRecord) -> tuple[Any, ...]:
    """A spans row; attributes with a column of their own are not repeated in JSON."""
    a = span.attributes
    get = a.get
    if a.keys() <= _TYPED:
        extra = "{}"
    else:
        rest = {k: v for k, v in a.items() if k not in _TYPED}
        extra = json.dumps(rest, default=str, separators=(",", ":"))
    return (
        run_id,
        span.span_id,
        span.parent_id,
        span.name,
        get(tm.STEP_NAME),
        get(tm.STEP_KIND),
        get(tm.YAML_PATH),
        get(tm.YAML_LINE),
        get(tm.ATTEMPT),
        span.status,
        span.status_message,
        span.start_ns,
        span.end_ns or None,
        get(tm.COST),
        get(tm.GEN_AI_INPUT_TOKENS),
        get(tm.GEN_AI_OUTPUT_TOKENS),
        get(tm.GEN_AI_MODEL),
        get(tm.GEN_AI_SYSTEM),
        extra,
        json.dumps(span.events, default=str, separators=(",", ":")) if span.events else "[]",
        get(tm.CAUSE) if span.status == "ERROR" else None,
    )


def attributes_of(row: dict[str, Any]) -> dict[str, Any]:
    """A stored span's full attribute set (typed columns merged back)."""
    columns = {
        tm.STEP_NAME: row["step_name"],
        tm.STEP_KIND: row["kind"],
        tm.YAML_PATH: row["yaml_path"],
        tm.YAML_LINE: row["line"],
        tm.ATTEMPT: row["attempt"],
        tm.COST: row["cost_usd"],
        tm.GEN_AI_INPUT_TOKENS: row["input_tokens"],
        tm.GEN_AI_OUTPUT_TOKENS: row["output_tokens"],
        tm.GEN_AI_MODEL: row["model"],
        tm.GEN_AI_SYSTEM: row["provider"],
        tm.RUN_ID: row["run_id"],
        tm.CAUSE: row.get("cause"),
    }
    extra: dict[str, Any] = row["attributes"]
    return {k: v for k, v in columns.items() if v is not None} | extra


_PROVIDER_ERRORS = (
    "timed out",
    "APIConnectionError",
    "APITimeoutError",
    "RateLimitError",
    "InternalServerError",
    "APIStatusError",
    "NotFoundError",
    "AuthenticationError",
    "PermissionDeniedError",
    "BadRequestError",
    "UnprocessableEntityError",
    "ConflictError",
)


def infer_cause(error: str | None) -> str:
    """The cause of a failed attempt recorded without one (schema 2, older OTLP spans),
    from its error text; `model` when nothing else fits."""
    text = error or ""
    if text.startswith("usage limit "):
        return "limit"
    if text == "cancelled":
        return "cancelled"
    if text.startswith("input template") or text.startswith("input does not"):
        return "input"
    if "cassette" in text or "none is configured" in text or "no model server" in text:
        return "harness"
    if any(text.startswith(marker) for marker in _PROVIDER_ERRORS):
        return "provider"
    return "model"
