"""The delivery queue on SQLite, with group commit.

Writes are grouped: the operations of every handler that ran in one turn of the event
loop share one transaction, committed right after that turn, so a burst of webhooks costs
one commit instead of one per delivery. In WAL mode with `synchronous=NORMAL` a commit
does not wait for the disk; the expensive part, copying the WAL back into the database
(a checkpoint), is done by a background thread instead of by whichever commit crosses
the threshold, which kept the acknowledgement's p99 at a third.

Every `sqlite3.Error` of the queue's operations is raised as `QueueUnavailable` (from
`queue.py`), so callers need not know the store is SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from flujo.bot.queue import (
    Delivery,
    Job,
    JobState,
    NotRetryable,
    QueueUnavailable,
    Recovery,
    job_from_row,
    not_retryable,
)

T = TypeVar("T")
_MAX_GROUP = 1024
POISON = "the bot stopped while handling this job, {attempts} times (a crash or a kill)"
_JOB_COLUMNS = (
    "id, delivery_id, event, state, attempts, received_at, run_after, key, last_error, finished_at"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    body BLOB,
    received_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after REAL NOT NULL DEFAULT 0,
    key TEXT,
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (state, id);
"""


Sync = Literal["normal", "full"]


def _unavailable(path: Path, exc: sqlite3.Error) -> QueueUnavailable:
    """The queue's error for a failed SQLite operation (the SQLite error as its cause)."""
    error = QueueUnavailable(f"queue {path}: {exc}")
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def _reaching(path: Path) -> Iterator[None]:
    """Raise the `sqlite3.Error`s of the block as `QueueUnavailable`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _unavailable(path, exc) from exc


def connect(path: Path, synchronous: Sync = "normal") -> sqlite3.Connection:
    """A connection in WAL mode.

    `normal` (the default): a committed delivery survives a crash or kill of the bot
    (SQLite's WAL is written before the commit returns); a power failure may lose the
    last ones. `full` also fsyncs every commit (grouped, so a burst pays for one fsync).
    """
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # see Checkpointer
    db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
    return db


class Checkpointer(threading.Thread):
    """Checkpoints the WAL every `interval_s` from its own connection (off the loop)."""

    def __init__(self, path: Path, interval_s: float = 1.0) -> None:
        super().__init__(name="flujo-queue-checkpoint", daemon=True)
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self._interval_s = interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


class _LoopWriter:
    """Runs operations in grouped transactions on the event loop's thread: the ops of every
    handler that ran in one loop iteration share one transaction, flushed right after."""

    def __init__(self, path: Path, synchronous: Sync) -> None:
        self._path = path
        self._db = connect(path, synchronous)
        self._db.executescript(SCHEMA)
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self.commits = 0

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((op, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        group, self._pending, self._scheduled = self._pending, [], False
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for op, future in group:
                try:
                    outcomes.append((future, op(self._db), None))
                except sqlite3.Error as exc:
                    outcomes.append((future, None, _unavailable(self._path, exc)))
            self._db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:  # nothing of this group is stored
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            error = _unavailable(self._path, exc)
            outcomes = [(future, None, error) for _op, future in group]
        _resolve(outcomes)

    def stop(self) -> None:
        self._db.close()


def _resolve(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in items:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class SQLiteQueue:
    """`DeliveryQueue` on one SQLite file; one bot process per file."""

    def __init__(self, path: str | Path, *, synchronous: Sync = "normal") -> None:
        self.path = Path(path)
        with _reaching(self.path):
            self._writer = _LoopWriter(self.path, synchronous)
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()
            self._reader = connect(self.path)
        self._read_lock = threading.Lock()

    @property
    def commits(self) -> int:
        """Transactions committed so far (for benchmarks: deliveries per commit)."""
        return self._writer.commits

    async def enqueue(self, delivery: Delivery) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT OR IGNORE INTO jobs (delivery_id, event, body, received_at, run_after)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    delivery.delivery_id,
                    delivery.event,
                    delivery.body,
                    delivery.received_at,
                    delivery.not_before,
                ),
            )
            return cursor.rowcount == 1

        return await self._writer.submit(op)

    async def pending(self, after_id: int) -> list[Job]:
        def op(db: sqlite3.Connection) -> list[Job]:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS}, body FROM jobs WHERE id > ?"
                " AND state IN ('queued', 'running') ORDER BY id",
                (after_id,),
            ).fetchall()
            return [job_from_row(row) for row in rows]

        return await self._writer.submit(op)

    async def started(self, job: Job, key: str) -> None:
        await self._update(
            "UPDATE jobs SET state = 'running', key = ?, attempts = attempts + 1 WHERE id = ?",
            (key, job.id),
        )

    async def finished(self, job: Job) -> None:
        # The body is no longer needed; the row stays so redeliveries are recognised.
        await self._update(
            "UPDATE jobs SET state = 'done', finished_at = ?, body = NULL, last_error = NULL"
            " WHERE id = ?",
            (time.time(), job.id),
        )

    async def failed(self, job: Job, error: str, *, retry_at: float | None) -> None:
        if retry_at is None:
            await self._update(
                "UPDATE jobs SET state = 'dead', last_error = ?, finished_at = ? WHERE id = ?",
                (error, time.time(), job.id),
            )
        else:
            await self._update(
                "UPDATE jobs SET state = 'queued', last_error = ?, run_after = ? WHERE id = ?",
                (error, retry_at, job.id),
            )

    async def recover(self, max_attempts: int) -> Recovery:
        def op(db: sqlite3.Connection) -> Recovery:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS}, body FROM jobs WHERE state = 'running' AND attempts >= ?"
                " ORDER BY id",
                (max_attempts,),
            ).fetchall()
            poisoned = []
            for row in rows:
                job = job_from_row(row)
                error = POISON.format(attempts=job.attempts)
                db.execute(
                    "UPDATE jobs SET state = 'dead', finished_at = ?, last_error = ? WHERE id = ?",
                    (time.time(), error, job.id),
                )
                poisoned.append(replace(job, state="dead", last_error=error))
            resumed = db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
            return Recovery(resumed.rowcount, tuple(poisoned))

        return await self._writer.submit(op)

    async def requeue(self, job_id: int) -> Job:
        def op(db: sqlite3.Connection) -> Job | str:
            row = db.execute(f"SELECT {_JOB_COLUMNS}, body FROM jobs WHERE id = ?", (job_id,))
            found = row.fetchone()
            problem = not_retryable(job_id, found)
            if problem is not None:
                return problem
            job = job_from_row(found)
            # A new row, so that it gets a higher id than every job the workers have seen.
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            cursor = db.execute(
                "INSERT INTO jobs (delivery_id, event, body, received_at, run_after, last_error)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                (
                    job.delivery_id,
                    job.event,
                    found[10],
                    job.received_at,
                    f"retried by hand (was job {job_id}): {job.last_error or ''}".strip(),
                ),
            )
            new = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
            return job_from_row(new)

        result = await self._writer.submit(op)
        if isinstance(result, str):
            raise NotRetryable(result)
        return result

    async def _update(self, sql: str, params: tuple[Any, ...]) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(sql, params)

        await self._writer.submit(op)

    def list_jobs(self, states: Sequence[JobState] = (), limit: int = 100) -> list[Job]:
        with self._read_lock, _reaching(self.path):
            return select_jobs(self._reader, states, limit)

    def count(self, states: Sequence[JobState]) -> int:
        """How many jobs are in these states."""
        marks = ", ".join("?" * len(states))
        with self._read_lock, _reaching(self.path):
            row = self._reader.execute(
                f"SELECT count(*) FROM jobs WHERE state IN ({marks})", tuple(states)
            ).fetchone()
        return int(row[0])

    def get(self, delivery_id: str) -> Job | None:
        with self._read_lock, _reaching(self.path):
            row = self._reader.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE delivery_id = ?", (delivery_id,)
            ).fetchone()
        return job_from_row(row) if row else None

    async def close(self) -> None:
        await asyncio.sleep(0)  # let a scheduled flush run
        self._writer.stop()
        await asyncio.to_thread(self._checkpointer.stop)
        with self._read_lock:
            self._reader.close()


def select_jobs(db: sqlite3.Connection, states: Sequence[str], limit: int) -> list[Job]:
    """Jobs (without bodies), newest first; all states when `states` is empty."""
    where = f"WHERE state IN ({', '.join('?' * len(states))})" if states else ""
    rows = db.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY id DESC LIMIT ?", (*states, limit)
    ).fetchall()
    return [job_from_row(row) for row in rows]


def read_jobs(path: Path, states: Sequence[str] = (), limit: int = 100) -> list[Job]:
    """`select_jobs` on a queue file, read-only (for `flujo bot jobs`)."""
    with _reaching(path):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return select_jobs(db, states, limit)
        finally:
            db.close()
