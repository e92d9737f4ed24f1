"""The run store: runs, spans and spec versions, in a SQLite file (WAL) or on PostgreSQL.

Each spec version is stored once, by spec_sha256, so any span can be mapped back to
the exact YAML line it ran. A run's row is written when it starts and again when it
ends; its spans are written in one transaction at the end (and in batches during long
runs), so the hot path never waits for the disk. Several processes may write at once.
`FLUJO_STORE` (or `--store`) names a SQLite file or a `postgresql://` URL; both get the
same tables from the same versioned migrations (`store_db.py` holds the differences).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import operator
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.engine import telemetry as tm
from flujo.engine.store_db import Cursor, Database, is_postgres, open_database
from flujo.spec.errors import EXIT_USAGE, FlujoError

if TYPE_CHECKING:
    from flujo.engine.results import PipelineResult
    from flujo.engine.telemetry import SpanRecord

SCHEMA_VERSION = 5
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

_EXTENSIONS = (
    # outputs of `kind: cache` steps (engine/cached.py)
    """CREATE TABLE IF NOT EXISTS cache_entries (
    step_key TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    output TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (step_key, input_digest)
)""",
    # captured examples (engine/capture.py)
    """CREATE TABLE IF NOT EXISTS captures (
    run_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    spec_sha256 TEXT NOT NULL,
    spec_path TEXT,
    input TEXT,
    output TEXT,
    truncated INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, step_name)
)""",
    "CREATE INDEX IF NOT EXISTS captures_by_spec ON captures (spec_path, created_at)",
    # evaluations of candidate spec versions (learn/evaluate.py)
    """CREATE TABLE IF NOT EXISTS evaluations (
    spec_path TEXT,
    baseline_sha256 TEXT NOT NULL,
    candidate_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    report TEXT NOT NULL
)""",
    # people's verdicts on suggested patches (learn/feedback.py)
    """CREATE TABLE IF NOT EXISTS suggestion_feedback (
    spec_path TEXT NOT NULL,
    patch_hash TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    patch TEXT NOT NULL,
    PRIMARY KEY (spec_path, patch_hash)
)""",
)

_CHECKPOINTS = (
    # the state of a run after each completed top-level step (engine/checkpoint.py); index
    # -1 is the run's start (its input), so a run that stopped before its first step ends
    # can be resumed too
    """CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step_index INTEGER NOT NULL,
    yaml_path TEXT NOT NULL,
    step_name TEXT NOT NULL,
    output TEXT NOT NULL,
    context TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, step_index)
)""",
)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS specs (
    sha256 TEXT PRIMARY KEY,
    path TEXT,
    name TEXT,
    text TEXT NOT NULL,
    first_seen REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS runs (
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
    prices_version TEXT,
    resumed_from TEXT
)""",
    "CREATE INDEX IF NOT EXISTS runs_by_spec ON runs (spec_sha256, started_at)",
    """CREATE TABLE IF NOT EXISTS spans (
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
)""",
    "CREATE INDEX IF NOT EXISTS runs_by_resumed ON runs (resumed_from)",
    *_EXTENSIONS,
    *_CHECKPOINTS,
)
"""A new store's tables, at SCHEMA_VERSION (both backends; see `store_db.to_postgres`)."""

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
    # 3 -> 4: the tables that captured examples, evaluations and feedback created on first
    # use are the store's own (created here, so PostgreSQL gets them too), the outputs of
    # `kind: cache` steps (JSON), by step definition and input digest, and the version of
    # the price table that computed each run's cost (NULL for older runs: not recorded).
    3: (*_EXTENSIONS, "ALTER TABLE runs ADD COLUMN prices_version TEXT"),
    # 4 -> 5: checkpoints of runs (resume), and the run a resumed run continues (NULL for
    # every older run: none was resumed).
    4: (
        *_CHECKPOINTS,
        "ALTER TABLE runs ADD COLUMN resumed_from TEXT",
        "CREATE INDEX IF NOT EXISTS runs_by_resumed ON runs (resumed_from)",
    ),
}
"""Statements that bring a store of version N to N + 1, run in one transaction."""
_HEAD_FIELDS = ("run_id", "span_id", "parent_id", "name", "start_ns", "end_ns", "attempt")
"""The columns every span row binds first, in the order `_span_rows` builds them."""
_MODEL_FIELDS = ("cost_usd", "input_tokens", "output_tokens", "model", "provider")
_STEP_FIELDS = ("step_name", "kind", "yaml_path", "line", "attributes")
"""The columns every span row binds last: the same for every span of a step (see
`_step_part`)."""
_ERROR_FIELDS = ("error", "cause")
_SPAN_FIELDS = (*_HEAD_FIELDS, *_MODEL_FIELDS, *_STEP_FIELDS, "status", *_ERROR_FIELDS, "events")
_Shape = tuple[bool, bool, bool, bool]
"""(a model call, a status other than OK, an error or a cause, events): which columns a
row binds (see `_insert_spans_statement`)."""


_ROWS_PER_STATEMENT = 32
"""SQLite: span rows per INSERT (the rest of a batch in statements of 16, 8, … 1 rows);
each statement execution costs the sqlite3 module as much as binding a few values."""
_REST_SIZES = (16, 8, 4, 2, 1)


@functools.cache
def _insert_spans_statement(shape: _Shape, rows: int = 0, shared: tuple[int, ...] = ()) -> str:
    """The spans upsert of one shape: the columns a shape leaves out are literals (NULL
    for no model call and no error, 'OK', '[]' for no events). Each bound value costs
    the sqlite3 module a call into SQLite (and a text a copy, an allocation and a free),
    None an adapter lookup besides: most rows bind 12 or 17 values of the 21 columns.
    With `rows` (SQLite), that many rows with numbered markers: the run's id (`?1`) and
    the values at the positions `shared` of a row (the run's id apart) are bound once,
    with the first row."""
    model, status, error, events = shape
    values = ["?"] * len(_HEAD_FIELDS)
    values += ["?" if model else "NULL"] * len(_MODEL_FIELDS)
    values += ["?"] * len(_STEP_FIELDS)
    values.append("?" if status else "'OK'")
    values += ["?" if error else "NULL"] * len(_ERROR_FIELDS)
    values.append("?" if events else "'[]'")
    if rows:
        numbers, tail = itertools.count(2), values[1:]
        first = [f"?{next(numbers)}" if v == "?" else v for v in tail]
        bound = [i for i, v in enumerate(tail) if v == "?"]  # by position in a row's values
        again = {bound[i]: first[bound[i]] for i in shared}
        tuples = [", ".join(["?1", *first])]
        for _ in range(rows - 1):
            row = [
                again.get(i) or (f"?{next(numbers)}" if v == "?" else v) for i, v in enumerate(tail)
            ]
            tuples.append(", ".join(["?1", *row]))
    else:
        tuples = [", ".join(values)]
    return (
        f"INSERT INTO spans ({', '.join(_SPAN_FIELDS)}) VALUES ({'), ('.join(tuples)})"
        " ON CONFLICT (run_id, span_id) DO UPDATE SET "
        + ", ".join(f"{f} = excluded.{f}" for f in _SPAN_FIELDS[2:])
    )


_SHAREABLE = ("model", "provider", "kind", "attributes")
"""The columns the rows of one statement most often have in common (a pipeline's steps
call one model; most have one kind and the same extra attributes)."""


@functools.cache
def _shareable(shape: _Shape) -> tuple[int, ...]:
    """Where a row of this shape (the run's id apart) has the `_SHAREABLE` columns."""
    bound = [*_HEAD_FIELDS[1:], *_MODEL_FIELDS * shape[0], *_STEP_FIELDS]
    return tuple(i for i, name in enumerate(bound) if name in _SHAREABLE)


@functools.cache
def _kept(width: int, rows: int, shared: tuple[int, ...]) -> tuple[bool, ...]:
    """Which of `rows` rows of `width` values `_insert_spans_statement(shape, rows,
    shared)` binds, for `itertools.compress`: all of the first row's, and the others'
    except at the positions `shared`."""
    return tuple(not (row and i in shared) for row in range(rows) for i in range(width))


def _width(shape: _Shape) -> int:
    """How many values a row of this shape binds, besides the run's id."""
    model, status, error, events = shape
    fixed = len(_HEAD_FIELDS) - 1 + len(_STEP_FIELDS)
    return fixed + len(_MODEL_FIELDS) * model + status + 2 * error + events


class StoreError(FlujoError):
    """The run store cannot be used (wrong schema version, unreadable file); exit code 2."""

    exit_code = EXIT_USAGE


def default_path() -> Path | str:
    """FLUJO_STORE (a SQLite file or a postgresql:// URL), or .flujo/flujo.db under the
    current directory."""
    found = os.environ.get("FLUJO_STORE")
    if found and is_postgres(found):
        return found
    return Path(found or DEFAULT_PATH)


def exists(location: Path | str) -> bool:
    """Whether there is a store there (a PostgreSQL URL always counts: it is created)."""
    return is_postgres(location) or Path(location).exists()


def new_run_id() -> str:
    """Sortable by start time: milliseconds in hex, then 40 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}{int.from_bytes(os.urandom(5), 'big'):010x}"


class RunStore:
    """The run store on SQLite or PostgreSQL; safe to share between threads of one process.

    `namespace` (PostgreSQL only) keeps one repository's runs apart from every other's on
    a shared database (a schema of their own).
    """

    def __init__(self, path: str | Path | None = None, *, namespace: str | None = None) -> None:
        self._batch = threading.local()
        self._specs_known: set[str] = set()
        """Spec versions this store object has seen committed (rows never deleted): a run
        of one of them does not send the spec's text again."""
        location = path if path is not None else default_path()
        self.path: Path | str = location if is_postgres(location) else Path(location)
        try:
            self._db: Database = open_database(self.path, namespace)
        except Exception as exc:  # psycopg's or sqlite3's: the store cannot be reached
            raise StoreError(f"cannot open the run store {_shown(self.path)}: {exc}") from None
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        """Create a new store's tables, or bring an older one up to date; refuse a newer."""
        with self._transaction() as db:
            self._db.advisory_lock(db)
            found = _schema_version(self._db, db)
            if found is None:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    (str(SCHEMA_VERSION),),
                )
            elif found != SCHEMA_VERSION and not (
                found < SCHEMA_VERSION
                and all(v in _MIGRATIONS for v in range(found, SCHEMA_VERSION))
            ):
                raise StoreError(
                    f"the run store {_shown(self.path)} has schema version {found}, this Flujo "
                    f"needs {SCHEMA_VERSION}: move it aside (runs in it stay readable by the "
                    "Flujo that wrote them) and a new one is created"
                )
            elif found < SCHEMA_VERSION:
                for version in range(found, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[version]:
                        db.execute(statement)
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._db.dialect

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> Any:
        current: Cursor | None = getattr(self._batch, "cursor", None)
        return contextlib.nullcontext(current) if current is not None else self._db.transaction()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every write of this thread inside the block (one commit for
        a whole OTLP export instead of several per run)."""
        if getattr(self._batch, "cursor", None) is not None:
            yield
            return
        with self._db.transaction() as cursor:
            self._batch.cursor = cursor
            try:
                yield
            finally:
                self._batch.cursor = None

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
        resumed_from: str | None = None,
    ) -> None:
        now = time.time()
        batched = getattr(self._batch, "cursor", None) is not None  # may yet roll back
        with self._transaction() as db:
            if spec_sha256 not in self._specs_known:
                db.execute(
                    "INSERT INTO specs VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (spec_sha256, spec_path, pipeline, spec_text, now),
                )
            db.execute(
                "INSERT INTO runs (run_id, spec_sha256, spec_path, pipeline, status, started_at,"
                " trace_id, mode, origin, prices_version, resumed_from)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
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
                    resumed_from,
                ),
            )
        if not batched:
            self._specs_known.add(spec_sha256)

    def write_checkpoints(self, rows: list[dict[str, Any]]) -> None:
        """Keep checkpoints (engine/checkpoint.py), in one transaction: each row holds
        run_id, step_index (-1: the run's start), yaml_path, step_name, output, context,
        state (JSON text) and owner (host:pid of the process running the run)."""
        if not rows:
            return
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO checkpoints (run_id, step_index, yaml_path, step_name, output,"
                " context, state, owner, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, step_index) DO UPDATE SET yaml_path = excluded.yaml_path,"
                " step_name = excluded.step_name, output = excluded.output,"
                " context = excluded.context, state = excluded.state, owner = excluded.owner,"
                " created_at = excluded.created_at",
                [
                    (
                        row["run_id"],
                        row["step_index"],
                        row["yaml_path"],
                        row["step_name"],
                        row["output"],
                        row["context"],
                        row["state"],
                        row["owner"],
                        now,
                    )
                    for row in rows
                ],
            )

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """A run's checkpoints, first to last."""
        return self.query(
            "SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step_index", (run_id,)
        )

    def move_checkpoints(self, from_run: str, to_run: str) -> None:
        """Hand a run's checkpoints to the run resuming it (which may be resumed in turn)."""
        with self._transaction() as db:
            db.execute("UPDATE checkpoints SET run_id = ? WHERE run_id = ?", (to_run, from_run))

    def drop_checkpoints(self, run_id: str) -> None:
        """Forget a run's checkpoints (it succeeded: there is nothing to resume)."""
        with self._transaction() as db:
            db.execute("DELETE FROM checkpoints WHERE run_id = ?", (run_id,))

    def drop_old_checkpoints(self, before: float) -> int:
        """Forget the checkpoints of runs whose last checkpoint was kept before `before`
        (epoch seconds): they can no longer be resumed. Returns how many runs."""
        found = self.query(
            "SELECT COUNT(DISTINCT run_id) AS n FROM checkpoints WHERE run_id IN ("
            "SELECT run_id FROM checkpoints GROUP BY run_id HAVING MAX(created_at) < ?)",
            (before,),
        )
        self.execute(
            "DELETE FROM checkpoints WHERE run_id IN ("
            "SELECT run_id FROM checkpoints GROUP BY run_id HAVING MAX(created_at) < ?)",
            [(before,)],
        )
        return int(found[0]["n"])

    def resumed_as(self, run_id: str) -> str | None:
        """The run that resumed `run_id` (None when none did)."""
        rows = self.query(
            "SELECT run_id FROM runs WHERE resumed_from = ? ORDER BY run_id LIMIT 1", (run_id,)
        )
        return str(rows[0]["run_id"]) if rows else None

    def mark_interrupted(self, run_id: str, error: str) -> None:
        """A run still marked running whose process is gone: cancelled, with `error`."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'cancelled', cause = 'cancelled', error = ?,"
                " ended_at = ? WHERE run_id = ? AND status = 'running'",
                (error, time.time(), run_id),
            )

    def write_spans(self, run_id: str, spans: list[SpanRecord]) -> None:
        """Insert or update spans (a span may be written open, then again when it ends)."""
        if not spans:
            return
        groups = _span_rows(spans)
        with self._transaction() as db:
            _insert_spans(db, run_id, groups, self._db.dialect == "sqlite")

    def finish_run(self, result: PipelineResult, spans: list[SpanRecord]) -> None:
        """Record the outcome and every span of a run in one transaction."""
        groups = _span_rows(spans)
        with self._transaction() as db:
            _insert_spans(db, result.run_id, groups, self._db.dialect == "sqlite")
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

    def find_runs(self, prefix: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The run whose id is `prefix`, else up to `limit` runs whose id starts with it,
        newest first (ids sort by start time): the candidates of an ambiguous prefix."""
        exact = self.query("SELECT * FROM runs WHERE run_id = ?", (prefix,))
        if exact:
            return exact
        return self.query(
            "SELECT * FROM runs WHERE run_id LIKE ? ORDER BY run_id DESC LIMIT ?",
            (prefix.replace("%", "").replace("_", "") + "%", limit),
        )

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

    # -- cached step outputs ----------------------------------------------------------------

    def cached_output(self, step_key: str, input_digest: str) -> str | None:
        """The JSON text of a `kind: cache` step's output stored for this input and not yet
        expired (None when there is none)."""
        rows = self.query(
            "SELECT output FROM cache_entries WHERE step_key = ? AND input_digest = ?"
            " AND expires_at > ?",
            (step_key, input_digest, time.time()),
        )
        return str(rows[0]["output"]) if rows else None

    def store_output(self, step_key: str, input_digest: str, output: str, ttl_s: float) -> None:
        """Keep a cache step's output (JSON text) for `ttl_s` seconds; expired entries of
        the same step are dropped."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "DELETE FROM cache_entries WHERE step_key = ? AND expires_at <= ?",
                (step_key, now),
            )
            db.execute(
                "INSERT INTO cache_entries VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (step_key, input_digest) DO UPDATE SET output = excluded.output,"
                " created_at = excluded.created_at, expires_at = excluded.expires_at",
                (step_key, input_digest, output, now, now + ttl_s),
            )

    def execute(self, statement: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        """Run a write statement once per row (once, without parameters, when no rows are
        given) in one transaction: for importers and extensions. Write it in the SQL both
        backends take (`?` markers, `ON CONFLICT` upserts; see `store_db.py`)."""
        with self._transaction() as db:
            if rows is None:
                db.execute(statement)
            elif rows:
                db.executemany(statement, rows)

    def query(self, query: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Rows as dicts; the same SQL rules as `execute`."""
        return self._db.query(query, args)


def _schema_version(database: Database, db: Cursor) -> int | None:
    """The store's schema version, None for a new (empty) one."""
    if not database.has_table(db, "meta"):
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def _shown(location: Path | str) -> str:
    """A store's location for messages: a URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(location))


_COLUMN_KEYS = (
    tm.ATTEMPT,
    tm.COST,
    tm.GEN_AI_INPUT_TOKENS,
    tm.GEN_AI_OUTPUT_TOKENS,
    tm.GEN_AI_MODEL,
    tm.GEN_AI_SYSTEM,
    tm.STEP_NAME,
    tm.STEP_KIND,
    tm.YAML_PATH,
    tm.YAML_LINE,
)
"""The attributes with a column of their own, in row order (attempt … line)."""
_TYPED = frozenset((*_COLUMN_KEYS, tm.RUN_ID, tm.SPEC_SHA, tm.CAUSE))
"""The attributes not written among a span's other attributes: those with a column, and
the run's own (its id, spec_sha256 and cause are the run's row)."""
_ADDED = frozenset((*_COLUMN_KEYS[:6], tm.CAUSE))
"""The attributes with a column that a step's span gets after it starts."""


_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode
"""`json.dumps(value, default=str, separators=(",", ":"))` without an encoder per call."""


_NONE_5 = (None,) * 5


class _Extras:
    """How the attributes of one set of attribute names (in order) are written: those with
    a column picked out of the span's values by position (None where absent), the names
    of the others in order, and the JSON of the values spans share (text only: `1 ==
    True`)."""

    __slots__ = ("encoded", "extra_of", "keys", "texts", "typed_of")

    def __init__(self, names: tuple[str, ...]) -> None:
        where = {name: i for i, name in enumerate(names)}
        absent = len(names)  # the None after a span's values
        self.typed_of: Callable[[tuple[Any, ...]], tuple[Any, ...]] = operator.itemgetter(
            *(where.get(key, absent) for key in _COLUMN_KEYS)
        )
        self.keys = tuple(name for name in names if name not in _TYPED)
        at = [where[key] for key in self.keys]
        self.extra_of: Callable[[tuple[Any, ...]], tuple[Any, ...]] = (
            operator.itemgetter(*at) if len(at) > 1 else lambda values: (values[at[0]],)
        )
        self.texts = (str,) * len(self.keys)
        self.encoded: dict[tuple[Any, ...], str] = {}


_StepPart = tuple[int, tuple[Any, ...]] | None
"""What `_step_part` works out once per step and the run's mode and origin."""


def _step_part(step: tm.StepAttributes, a: dict[str, Any]) -> _StepPart:
    """For the spans of one step in runs of one mode and origin: how many attributes such
    a span starts with, and the last columns of its rows (`_STEP_FIELDS`), which depend
    on those alone. None when the step's attributes hold one a span gets later."""
    if not step.keys().isdisjoint(_ADDED):
        return None
    start = {key: a[key] for key in tm.RUN_KEYS} | step | {tm.ATTEMPT: 0}
    extra = {key: value for key, value in start.items() if key not in _TYPED}
    columns = [start.get(key) for key in _COLUMN_KEYS[6:]]
    columns.append(_encode(extra) if extra else "{}")
    # one object for equal texts: the store compares them across rows (`_insert_spans`)
    return len(start), tuple(sys.intern(v) if type(v) is str else v for v in columns)


_CALL_OF = operator.itemgetter(*_COLUMN_KEYS[:6])
"""A step span's attempt and model call columns, in row order."""
_PLAIN: _Shape = (False, False, False, False)
_CALLED: _Shape = (True, False, False, False)


def _span_rows(spans: list[SpanRecord]) -> dict[_Shape, list[Any]]:
    """Rows of the spans table, grouped by shape (see `_insert_spans_statement`): columns
    that are NULL or a common value in a whole shape are left out of its rows. Attributes
    with a column of their own are not repeated in JSON. A step's span that succeeded,
    without events, whose attributes are those it started with and a model call's gets
    its last columns from `_step_part`, worked out once per step; any other is read
    attribute by attribute, with the extra attributes spans share encoded once per batch
    (the run's mode and origin, on every span). Each shape's rows are one flat list of
    values, one row after the other."""
    plain: list[Any] = []
    called: list[Any] = []
    groups: dict[_Shape, list[Any]] = {_PLAIN: plain, _CALLED: called}
    plans: dict[tuple[str, ...], _Extras] = {}
    cause_key, provider_key, encode = tm.CAUSE, tm.GEN_AI_SYSTEM, _encode
    call_of, mode_key, origin_key, attempt_key = _CALL_OF, tm.RUN_MODE, tm.RUN_ORIGIN, tm.ATTEMPT
    add_called, add_plain = called.extend, plain.extend
    for span in spans:
        a = span.attributes
        step = span.step
        if step is not None and span.status == "OK" and not span.events:
            call = provider_key in a
            try:
                key = (a[mode_key], a[origin_key])
                found = call_of(a) if call else a[attempt_key]
                part = step.derived.get(key, False)
                if part is False:
                    part = step.derived[key] = _step_part(step, a)
            except KeyError:  # another attribute instead of one of those
                part = None
            if part is not None and len(a) == part[0] + 5 * call and span.status_message is None:
                # each field by name (a slot's read is quicker than an attrgetter's; an
                # ended span's end_ns is never 0), each part extended apart (no tuple
                # of the whole row): 9,000 -> 6,000 instructions per span
                first = (span.span_id, span.parent_id, span.name, span.start_ns, span.end_ns)
                if call:
                    add_called(first)
                    add_called(found)
                    add_called(part[1])
                else:
                    add_plain(first)
                    plain.append(found)
                    add_plain(part[1])
                continue
        names = tuple(a)
        plan = plans.get(names)
        if plan is None:
            plan = plans[names] = _Extras(names)
        found = (*a.values(), None)  # by position in `names`; None for an absent one
        keys = plan.keys
        if not keys:
            extra = "{}"
        else:
            values = plan.extra_of(found)
            if tuple(map(type, values)) == plan.texts:
                extra = plan.encoded.get(values) or plan.encoded.setdefault(
                    values, encode(dict(zip(keys, values, strict=True)))
                )
            else:
                extra = encode(dict(zip(keys, values, strict=True)))
        typed = plan.typed_of(found)
        model = typed[1:6] != _NONE_5
        head = (span.span_id, span.parent_id, span.name, span.start_ns, span.end_ns or None)
        row = (*head, *typed, extra) if model else (*head, typed[0], *typed[6:], extra)
        status = span.status
        if status != "OK":
            row += (status,)
        error = span.status_message
        cause = a.get(cause_key) if status == "ERROR" else None
        failed = error is not None or cause is not None
        if failed:
            row += (error, cause)
        events = span.events
        if events:
            row += (encode(events),)
        shape = (model, status != "OK", failed, bool(events))
        if shape in groups:
            groups[shape] += row
        else:
            groups[shape] = [*row]
    return {shape: rows for shape, rows in groups.items() if rows}


def _insert_spans(db: Cursor, run_id: str, groups: dict[_Shape, list[Any]], multirow: bool) -> None:
    """Write the rows of `_span_rows`; `multirow` (SQLite): several rows per statement,
    the run's id, and the texts of `_SHAREABLE` columns all its rows have in common,
    bound once (PostgreSQL refuses a statement that upserts one row twice)."""
    for shape, values in groups.items():
        width = _width(shape)
        if not multirow:
            rows = [(run_id, *values[i : i + width]) for i in range(0, len(values), width)]
            db.executemany(_insert_spans_statement(shape), rows)
            continue
        shareable, at, left = _shareable(shape), 0, len(values) // width
        for size in (_ROWS_PER_STATEMENT, *_REST_SIZES):
            while left >= size:
                chunk = values[at : at + size * width]
                shared = tuple(
                    i
                    for i in shareable
                    if type(chunk[i]) is str and chunk[i::width] == [chunk[i]] * size
                )
                bound = itertools.compress(chunk, _kept(width, size, shared)) if shared else chunk
                db.execute(_insert_spans_statement(shape, size, shared), (run_id, *bound))
                at += size * width
                left -= size


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
