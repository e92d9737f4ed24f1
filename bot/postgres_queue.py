"""The delivery queue on PostgreSQL, worked by procrastinate: several bot processes, one
database.

A delivery is one row of `flujo_deliveries` (unique by `X-GitHub-Delivery`, so a
redelivery is recognised whichever process receives it), committed before the 202;
deliveries that arrive together share that transaction (group commit). That row is all the
acknowledgement stores: its ordering key is NULL (the inbox). The workers' forwarder
(`forward`, one process at a time) reads the inbox in the order the deliveries were
committed, computes each one's ordering key (`worker.ordering_key`: the repository) and
defers its procrastinate job, in one transaction. The job's lock is the ordering key, so
procrastinate runs a repository's jobs one at a time, oldest first, while other
repositories' run in parallel in any process. A worker that dies mid-job stops sending
heartbeats; after `lease_s` any other worker puts its job back. Failures retry by the rule
of the embedded queue (`worker.retry_at`); a job out of tries, or started `max_attempts`
times (poison), is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import psycopg
from procrastinate import App, BaseRetryStrategy, PsycopgConnector, RetryDecision
from procrastinate import exceptions as procrastinate_errors
from procrastinate.jobs import Job as ProcrastinateJob
from procrastinate.schema import SchemaManager

from flujo.bot.queue import (
    Delivery,
    Job,
    JobState,
    NotRetryable,
    QueueUnavailable,
    job_from_row,
    not_retryable,
)
from flujo.bot.worker import Work, describe, json_object, ordering_key_of, retry_at
from flujo.spec.errors import EXIT_USAGE, FlujoError

log = logging.getLogger("flujo.bot.queue")

TASK = "flujo.handle_delivery"
QUEUE = "flujo_deliveries"
_MIGRATION_LOCK = 0x666C756A6F71  # "flujoq": one process creates the tables
_FORWARD_LOCK = 0x666C756A6F66  # "flujof": one forwarder at a time
_FORWARD_BYTES = 16 * 1024 * 1024
"""Bodies read by the forwarder at once, at most (and at least one delivery): a webhook
may carry 25 MB."""
INBOX_CHANNEL = "flujo_inbox"
"""Notified by each acknowledgement's transaction as it commits: the forwarder wakes."""
_INTERRUPTED = "interrupted: the worker stopped"
_AGAIN_S = 1
"""Seconds before a job whose attempt ended outside its handler runs again."""
NEXT_JOB_POLL_S = 0.1
"""How often idle workers look for a job that no notification announces: a repository's
next job, freed when the lock of the one before it is released (procrastinate's
`fetch_job_polling_interval`). New jobs wake the workers at once (LISTEN/NOTIFY)."""
POISON = "the worker handling this job stopped, {attempts} times (a crash or a kill)"
_COLUMNS = (
    "id, delivery_id, event, state, attempts, received_at, run_after, key, last_error, finished_at"
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS flujo_deliveries (
    id BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    body BYTEA,
    received_at DOUBLE PRECISION NOT NULL,
    run_after DOUBLE PRECISION NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    key TEXT,
    last_error TEXT,
    finished_at DOUBLE PRECISION,
    done_count INTEGER NOT NULL DEFAULT 0
);
DO $$ BEGIN
    IF to_regclass('flujo_deliveries_forwarded') IS NULL THEN
        CREATE INDEX flujo_deliveries_forwarded ON flujo_deliveries (state, id)
            WHERE key IS NOT NULL;
        DROP INDEX IF EXISTS flujo_deliveries_state;
    END IF;
    IF to_regclass('flujo_deliveries_inbox') IS NULL THEN
        CREATE INDEX flujo_deliveries_inbox ON flujo_deliveries (id) WHERE key IS NULL;
        ALTER TABLE flujo_deliveries ALTER COLUMN body SET STORAGE MAIN;
        BEGIN
            EXECUTE 'ALTER TABLE flujo_deliveries ALTER COLUMN body SET COMPRESSION lz4';
        EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
            ALTER TABLE flujo_deliveries ALTER COLUMN body SET STORAGE EXTERNAL;
        END;
    END IF;
END $$;
"""
"""A body is kept until its delivery is handled, in its row (`STORAGE MAIN`), compressed
with lz4: a typical webhook (8 KB of JSON) then fits the row, one heap write instead of
four TOAST chunks and their index (`benchmarks/postgres_ack_layout.py`). A server without
lz4 (built without it, or before PostgreSQL 14) keeps bodies uncompressed out of the row
(`STORAGE EXTERNAL`): pglz would cost the acknowledgement more than the space is worth.
The inbox index holds the deliveries not yet forwarded (`key IS NULL`); rows stored
before the inbox have their key, and their job, already. The state index holds only the
forwarded ones (`key IS NOT NULL`): the acknowledgement then writes one index entry fewer
per delivery (its row enters the state index when the forwarder gives it its key), and a
query by state reads both (`_IN_STATES`). It replaces the state index of every row that
queues made before it had. The table is changed once
(`ALTER TABLE` and `CREATE INDEX` wait for every transaction writing it: not at each
start)."""
_ENQUEUE = f"""
WITH stored AS (
    INSERT INTO flujo_deliveries (delivery_id, event, body, received_at, run_after)
    SELECT d->>0, d->>1, substring(%b FROM (d->>2)::int FOR (d->>3)::int),
        (d->>4)::float8 / 1e6, (d->>5)::float8 / 1e6
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(d, n)
    ORDER BY n
    ON CONFLICT (delivery_id) DO NOTHING
    RETURNING delivery_id
), counted AS MATERIALIZED (SELECT count(*) AS stored FROM stored)
SELECT CASE WHEN counted.stored < %s THEN array(SELECT delivery_id FROM stored) END,
    pg_advisory_xact_lock(%s, %s), pg_notify('{INBOX_CHANNEL}', '')
FROM counted
"""
"""One statement, one transaction, for every delivery acknowledged while the previous
group was being committed (group commit): each is stored in the inbox, in the order
received, or (a redelivery) not at all; the ids of those stored come back only when one
was not (NULL: all were). The bodies go as one binary value (`%b`), cut apart by the
server; the rest of each delivery as one JSON array of arrays, its times in whole
microseconds: arrays of each column would cost the bot more to encode (psycopg dumps
their items one by one, in Python), and so would objects and floats (`json` writes a
float five times slower than an integer). The group's advisory lock is for the next group
(`_AFTER`), when groups are stored on several connections at once. Its parameters
(`group_parameters`) are positional, and its cursor is kept with its connection: psycopg
then spends less on each group (≈30 µs of 260)."""
_AFTER = "SELECT pg_advisory_xact_lock_shared(%s, %s)"
"""Wait for the previous group to be committed (and visible): its transaction holds this
lock until then."""

_INBOX = """
WITH forwarder AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(%(lock)s) AS alone),
inbox AS (
    SELECT id, sum(octet_length(body)) OVER (ORDER BY id) - octet_length(body) AS before
    FROM forwarder, flujo_deliveries
    WHERE forwarder.alone AND key IS NULL ORDER BY id LIMIT %(rows)s
)
SELECT d.id, d.delivery_id, d.event, d.body, d.run_after
FROM inbox JOIN flujo_deliveries d USING (id)
WHERE inbox.before < %(bytes)s ORDER BY d.id
"""
"""The deliveries to forward (at most `rows`, and no more after `bytes` of bodies: a
backlog of large deliveries is read a few at a time), in the order they were stored
(within a process, a group commits only after the one before it: `_AFTER`), when no
other process is forwarding.
One whose transaction is still committing is not seen yet and is forwarded by a later
batch, after those committed before it: deliveries are forwarded in the order they were
committed, and none is skipped (the inbox is every row without a key, not what follows
the last one forwarded)."""
_FORWARD = """
WITH keyed AS (
    UPDATE flujo_deliveries d SET key = f.key
    FROM unnest(%(ids)s::bigint[], %(keys)s::text[], %(at)s::timestamptz[])
        WITH ORDINALITY AS f(id, key, at, n)
    WHERE d.id = f.id AND d.key IS NULL
    RETURNING d.delivery_id, f.key, f.at, f.n
)
SELECT cardinality(procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW(
        %(queue)s, %(task)s, 0, key, NULL, jsonb_build_object('delivery_id', delivery_id), at
    )::procrastinate_job_to_defer_v1
    FROM keyed ORDER BY n
)))
"""
"""The inbox deliveries read by `_INBOX`, given their keys and their jobs, in that order
(job ids follow it, and procrastinate runs a lock's jobs by id); only those still without
a key as this statement runs: the lock is taken after `_INBOX`'s snapshot, which may
predate the end of the previous forwarder's transaction."""

_ORPHANS = """
SELECT cardinality(procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW(
        %(queue)s, %(task)s, 0, d.key, NULL, jsonb_build_object('delivery_id', d.delivery_id),
        NULL
    )::procrastinate_job_to_defer_v1
    FROM flujo_deliveries d
    WHERE (d.state = 'running' OR d.state = 'queued' AND d.run_after < %(cutoff)s)
    AND d.key IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs j
        WHERE j.args->>'delivery_id' = d.delivery_id AND j.status IN ('todo', 'doing')
    )
    ORDER BY d.id
)))
"""
"""Deliveries with no job left to run them, each given a new one: waiting for a retry (their
attempt ended a lease ago) when procrastinate lost the retry (the database went away as it
was recorded), or running when their job ended without them (a worker stopped, or the
database went away, between the job's start and its end: procrastinate recorded the job
as aborted or failed). A running delivery always has its job `doing` while it is worked
on. Deliveries still in the inbox (no key) are the forwarder's."""

_IN_STATES = "(key IS NOT NULL AND state = ANY(%s) OR key IS NULL AND state = ANY(%s))"
"""Rows in some states (the parameter twice): the forwarded ones found by the state index,
the inbox's by the inbox index (see `SCHEMA`)."""

Handler = Callable[[Work], Awaitable[None]]


@contextlib.contextmanager
def _reaching() -> Iterator[None]:
    """Raise the database's errors as `QueueUnavailable`."""
    try:
        yield
    except (psycopg.Error, procrastinate_errors.ConnectorException) as exc:
        error = QueueUnavailable(f"queue on PostgreSQL: {exc}")
        raise error from exc


class _Failed(FlujoError):
    """A handler's failure and when to try again (None: dead-lettered), decided once by
    `worker.retry_at` and recorded on the delivery before procrastinate hears of it. It
    never reaches a command; if it did, exit code 2 (as `RetryLater`)."""

    exit_code = EXIT_USAGE

    def __init__(self, reason: str, at: float | None) -> None:
        super().__init__(reason)
        self.at = at


class _Retry(BaseRetryStrategy):
    """Tells procrastinate what `_Failed` says. Any other end of an attempt came from
    outside the handler (the worker stopped as the job started or ended, the database went
    away as the attempt was recorded): the job goes back after `_AGAIN_S`, under its lock,
    so it keeps its place before the repository's later jobs (recorded as failed or
    aborted, it would free them, and its delivery would wait for the reaper). `_start`
    dead-letters a job started `max_attempts` times."""

    def get_retry_decision(
        self, *, exception: BaseException, job: ProcrastinateJob
    ) -> RetryDecision | None:
        if isinstance(exception, _Failed):
            if exception.at is None:
                return None
            at = datetime.datetime.fromtimestamp(exception.at, datetime.UTC)
            return RetryDecision(retry_at=at)
        return RetryDecision(retry_in={"seconds": _AGAIN_S})


class PostgresQueue:
    """`DeliveryQueue` on PostgreSQL; `work()` runs this process's workers."""

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 5,
        retry_base_s: float = 2.0,
        max_retry_s: float = 3600.0,
        lease_s: float = 30.0,
        ack_connections: int = 1,
        forward_batch: int = 500,
        forward_gather_s: float = 0.05,
    ) -> None:
        """`ack_connections`: groups of acknowledged deliveries in flight at once, one
        connection each (see `_commit_group`); `forward_batch`: deliveries forwarded from
        the inbox per transaction at most; `forward_gather_s`: see `_forward_continually`."""
        self.url = url
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.app = App(connector=PsycopgConnector(conninfo=url))
        self.app.task(
            name=TASK,
            queue=QUEUE,
            pass_context=True,
            retry=_Retry(),
        )(self._run)
        self.retry_base_s = retry_base_s
        self.max_retry_s = max_retry_s
        self._handler: Handler | None = None
        self._reader: psycopg.Connection[Any] | None = None
        self._read_lock = threading.Lock()
        self._opened = False
        self._opening = asyncio.Lock()
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[bool]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._ackers: list[psycopg.AsyncCursor[Any]] = []
        self._lanes = asyncio.Semaphore(ack_connections)
        self._pipelined = ack_connections > 1
        self._groups: set[asyncio.Task[None]] = set()
        self._last: asyncio.Future[None] | None = None
        self._numbers = 0
        self._lock_space = secrets.randbits(31)
        """This queue's advisory locks: (lock space, group number) is held by a group's
        transaction; the next group waits for it before committing."""
        self.forward_batch = forward_batch
        self.forward_gather_s = forward_gather_s
        self._more = False
        """Whether the last batch forwarded was cut short by a limit (more may wait)."""
        self.forwarded = 0
        """Deliveries this process has forwarded from the inbox to procrastinate."""
        self.commits = 0
        """Groups committed by `enqueue` so far (for benchmarks: deliveries per commit)."""
        self.handled = 0

    async def open(self) -> None:
        """Connect, and create procrastinate's tables and the deliveries table when the
        database has none (one process at a time)."""
        if self._opened:
            return
        async with self._opening:
            if not self._opened:
                await self._open()

    async def _open(self) -> None:
        with _reaching():
            await self.app.open_async()
            self._opened = True
            async with await psycopg.AsyncConnection.connect(self.url) as db, db.transaction():
                await db.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                found = await db.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                row = await found.fetchone()
                if not (row and row[0]):
                    await db.execute(SchemaManager.get_schema())
                await db.execute(SCHEMA)

    # -- the acknowledgement path ----------------------------------------------------------

    async def enqueue(self, delivery: Delivery) -> bool:
        if not self._opened:
            await self.open()
        row = (
            delivery.delivery_id,
            delivery.event,
            delivery.body,
            delivery.received_at,
            delivery.not_before,
        )
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups(), name="flujo-enqueue")
        return await future

    async def _commit_groups(self) -> None:
        """Commit the waiting deliveries in groups, until none waits. A group starts once
        the previous one has stored its rows (so job ids follow the order received) and a
        connection is free: with one connection, once the previous group is committed (in
        this task: no task of its own to start and wait for)."""
        loop = asyncio.get_running_loop()
        while self._pending:
            if not self._pipelined:
                # One turn of the event loop first: the answers of the group just committed
                # go out, and deliveries read meanwhile join this group (12.7-13.3 per
                # commit in benchmarks/webhook_ack.py against 10.5 without it).
                await asyncio.sleep(0)
                group, self._pending = self._pending, []
                await self._lanes.acquire()
                await self._commit_group(group, self._numbers, None, None, None)
                self._numbers += 1
                continue
            await self._lanes.acquire()
            if not self._pending:
                self._lanes.release()
                break
            group, self._pending = self._pending, []
            number = self._numbers
            self._numbers += 1
            stored: asyncio.Future[None] = loop.create_future()
            done: asyncio.Future[None] = loop.create_future()
            previous, self._last = self._last, done
            task = asyncio.create_task(self._commit_group(group, number, previous, stored, done))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)
            await asyncio.wait((stored, done), return_when=asyncio.FIRST_COMPLETED)

    async def _commit_group(
        self,
        group: list[tuple[tuple[Any, ...], asyncio.Future[bool]]],
        number: int,
        previous: asyncio.Future[None] | None,
        stored: asyncio.Future[None] | None,
        done: asyncio.Future[None] | None,
    ) -> None:
        """Store one group in one transaction and answer its deliveries once it is committed.

        With several connections, the next group is stored on another one while this one
        commits (waits for the disk), and commits only after this one: it waits for this
        group's advisory lock, taken as this group stores and released by PostgreSQL once
        its commit is visible. Workers never see a later delivery of a repository before
        an earlier one, and job ids follow the order received."""
        try:
            found = await self._store([row for row, _ in group], number, previous, stored)
        except Exception as exc:  # nothing of this group is stored
            error = QueueUnavailable(f"queue on PostgreSQL: {exc}")
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            for signal in (stored, done):
                if signal is not None and not signal.done():
                    signal.set_result(None)
            self._lanes.release()
        if found is None:  # all stored
            for _, future in group:
                if not future.done():
                    future.set_result(True)
            return
        for (row, future), first in zip(group, _firsts(group), strict=True):
            if not future.done():
                future.set_result(first and row[0] in found)

    async def _store(
        self,
        rows: list[tuple[Any, ...]],
        number: int,
        previous: asyncio.Future[None] | None,
        stored: asyncio.Future[None] | None,
    ) -> set[str] | None:
        """Store a group; the ids of those stored, or None when all were."""
        params = group_parameters(rows, self._lock_space, number % 2**31)
        cursor = await self._acknowledging()
        db = cursor.connection
        try:
            if not self._pipelined:  # one group at a time: its statement is its transaction
                await cursor.execute(_ENQUEUE, params)
                found = await cursor.fetchone()
            else:  # one round trip to store, one to commit
                async with db.pipeline():
                    await db.execute("BEGIN")
                    await cursor.execute(_ENQUEUE, params)
                    found = await cursor.fetchone()  # stored, not committed: the next may start
                    assert stored is not None
                    stored.set_result(None)
                    if previous is not None and not previous.done():
                        await db.execute(_AFTER, (self._lock_space, (number - 1) % 2**31))
                    await db.execute("COMMIT")
        except BaseException:  # the transaction is rolled back with the connection
            await db.close()
            raise
        self._ackers.append(cursor)
        self.commits += 1
        assert found is not None  # one row, always
        return None if found[0] is None else set(found[0])

    async def _acknowledging(self) -> psycopg.AsyncCursor[Any]:
        """A cursor on a connection of the acknowledgements (one per group in flight): in
        autocommit, so that with one connection a group is one round trip (its one
        statement is its transaction), with the statement prepared once; not from the
        pool, whose check on every checkout would cost a second."""
        while self._ackers:
            cursor = self._ackers.pop()
            if not (cursor.connection.closed or cursor.connection.broken):
                return cursor
        db = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, prepare_threshold=0, connect_timeout=10
        )
        return db.cursor()

    # -- the forwarder: from the inbox to procrastinate ------------------------------------

    async def forward(self, db: psycopg.AsyncConnection[Any] | None = None) -> int:
        """Forward one batch of the inbox (at most `forward_batch` deliveries, and
        `_FORWARD_BYTES` of bodies): their ordering keys and their jobs, in one
        transaction; how many. 0 when another process is forwarding, or the inbox is
        empty. A forwarder that stops midway forwards nothing (its transaction is rolled
        back), so nothing is lost or doubled."""
        await self.open()
        if db is None:
            async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as own:
                return await self.forward(own)
        params = {"lock": _FORWARD_LOCK, "rows": self.forward_batch, "bytes": _FORWARD_BYTES}
        async with db.transaction():
            cursor = await db.execute(_INBOX, params, binary=True)
            rows = await cursor.fetchall()
            self._more = len(rows) == self.forward_batch or (
                sum(len(row[3]) for row in rows) >= _FORWARD_BYTES
            )
            if not rows:
                return 0
            now = time.time()
            cursor = await db.execute(
                _FORWARD,
                {
                    "ids": [row[0] for row in rows],
                    "keys": [ordering_key_of(row[3], row[2], row[1]) for row in rows],
                    "at": [
                        datetime.datetime.fromtimestamp(row[4], datetime.UTC)
                        if row[4] > now
                        else None
                        for row in rows
                    ],
                    "queue": QUEUE,
                    "task": TASK,
                },
            )
            deferred = await cursor.fetchone()
        forwarded = int(deferred[0]) if deferred else 0
        self.forwarded += forwarded
        return forwarded

    async def _forward_continually(self, poll_s: float) -> None:
        """Forward as deliveries are acknowledged (woken by `INBOX_CHANNEL`), and every
        `poll_s` all the same (a notification missed as the connection was made); a
        database that goes away is waited for. Batches follow each other while there is
        more (a backlog). Once
        woken, it waits `forward_gather_s` for the acknowledgements of the next moments:
        a batch costs the database and the worker much the same for 10 deliveries as for
        100 (docs/github-app.md has the figures)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=10
                ) as db:
                    await db.execute(f"LISTEN {INBOX_CHANNEL}")
                    while True:
                        while await self.forward(db) and self._more:
                            pass
                        async for _ in db.notifies(timeout=poll_s, stop_after=1):
                            pass
                        await asyncio.sleep(self.forward_gather_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: again shortly
                log.debug("cannot forward deliveries: %s", exc)
                await asyncio.sleep(1.0)

    # -- the workers -----------------------------------------------------------------------

    async def work(
        self, handler: Handler, concurrency: int, *, poll_s: float = NEXT_JOB_POLL_S
    ) -> None:
        """Run `concurrency` jobs at a time until cancelled; a database that goes away is
        waited for (the worker starts again), and jobs of dead workers are put back.
        New jobs wake the workers at once (LISTEN/NOTIFY); a repository's next job, freed
        when its lock is released, is picked within `poll_s`."""
        self._handler = handler
        await self.open()
        reaper = asyncio.create_task(self._put_back_stalled(), name="flujo-stalled-jobs")
        forwarder = asyncio.create_task(
            self._forward_continually(max(poll_s, 0.5)), name="flujo-forwarder"
        )
        try:
            while True:
                try:
                    await self.app.run_worker_async(
                        queues=[QUEUE],
                        concurrency=concurrency,
                        install_signal_handlers=False,
                        fetch_job_polling_interval=poll_s,
                        update_heartbeat_interval=max(0.2, self.lease_s / 4),
                        stalled_worker_timeout=self.lease_s,
                        # Handlers stop with their worker at once (and their jobs go back):
                        # a worker that lost the database must not go on with jobs that
                        # another process takes over once the lease has run out.
                        shutdown_graceful_timeout=0.0,
                        delete_jobs="successful",
                    )
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database went away: start again shortly
                    log.error("workers stopped: %s; starting again in 1 s", exc)
                    await asyncio.sleep(1.0)
        finally:
            reaper.cancel()
            forwarder.cancel()
            await asyncio.gather(reaper, forwarder, return_exceptions=True)

    async def _put_back_stalled(self) -> None:
        """Jobs of workers silent for `lease_s` go back to the queue (by any process), and so
        do jobs whose delivery was finished `lease_s` ago but whose end the database never
        recorded (it went away as the worker wrote it): the job stays `doing` under a live
        worker, and the repository's next jobs would wait behind it for good. Put back, it
        ends at once (its delivery is done).

        Only once this process has reached the database for `lease_s` in a row: while the
        database was away no worker could send a heartbeat, and the live ones need that
        long to send the next; their jobs, still running, must not be run a second time
        beside them (twice the GitHub calls)."""
        from procrastinate import utils

        manager = self.app.job_manager
        reached_since: float | None = None
        while True:
            await asyncio.sleep(max(0.2, self.lease_s / 2))
            try:
                stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=self.lease_s)
                now = time.monotonic()
                reached_since = now if reached_since is None else reached_since
                if now - reached_since < self.lease_s:
                    continue
                for job in stalled:
                    log.warning("resuming the job %s of a worker that stopped", job.id)
                    await manager.retry_job(job)
                for job_id in await self._unrecorded_ends():
                    log.warning("ending the job %s, whose end was not recorded", job_id)
                    await manager.retry_job_by_id_async(job_id, retry_at=utils.utcnow())
            except Exception as exc:  # the database is away: next round
                reached_since = None
                log.debug("cannot look for stalled jobs: %s", exc)

    async def _unrecorded_ends(self) -> list[int]:
        """Jobs still `doing` whose delivery was done or dead more than `lease_s` ago. Also,
        a delivery put back to be retried a lease ago whose job is gone (procrastinate's
        record of the retry was lost as the database went away: the job failed or ended in
        its books) gets a job again. (A job left `doing` for a delivery put back is not
        touched: it cannot be told from one a busy worker has just taken.)"""
        cutoff = time.time() - self.lease_s
        async with self.app.connector.pool.connection() as db:  # type: ignore[attr-defined]
            cursor = await db.execute(
                "SELECT job.id FROM procrastinate_jobs job JOIN flujo_deliveries delivery"
                " ON delivery.delivery_id = job.args->>'delivery_id'"
                " WHERE job.status = 'doing' AND delivery.state IN ('done', 'dead')"
                " AND delivery.finished_at < %s",
                (cutoff,),
            )
            found = [int(row[0]) for row in await cursor.fetchall()]
            cursor = await db.execute(_ORPHANS, {"queue": QUEUE, "task": TASK, "cutoff": cutoff})
            orphans = (await cursor.fetchone() or (0,))[0]
            if orphans:
                log.warning("%d delivery job(s) lost by the database were queued again", orphans)
        return found

    async def _run(self, context: Any, delivery_id: str) -> None:
        """The procrastinate task: one delivery, handled by the bot's handler."""
        assert self._handler is not None
        job = await self._start(delivery_id)
        if job is None:
            return  # handled already (a put-back job whose worker had finished it) or dead
        data = json_object(job.body)
        if isinstance(data, str):
            await self._mark(job, "dead", f"malformed JSON: {data}")
            return
        work = Work(job, job.event, data, job.key or "-")
        try:
            await self._handler(work)
        except asyncio.CancelledError:
            # This process is stopping: the job goes back to the queue under its own id, so
            # it keeps its place before the repository's later jobs (procrastinate would
            # otherwise record it as aborted, for good).
            with contextlib.suppress(Exception):  # the database may be what went away
                await asyncio.shield(self._mark(job, "running", _INTERRUPTED))
            raise _Failed(_INTERRUPTED, time.time()) from None
        except Exception as exc:
            reason = describe(exc)
            at = retry_at(exc, job.attempts, self.max_attempts, self.retry_base_s, self.max_retry_s)
            await self._mark(job, "dead" if at is None else "queued", reason, run_after=at)
            if at is None:
                log.error(
                    "%s delivery %s dead-lettered after %d attempt(s): %s",
                    job.event,
                    delivery_id,
                    job.attempts,
                    reason,
                )
            else:
                log.warning(
                    "%s delivery %s failed (attempt %d), retrying: %s",
                    job.event,
                    delivery_id,
                    job.attempts,
                    reason,
                )
            raise _Failed(reason, at) from exc
        await self._mark(job, "done", None)
        self.handled += 1

    async def _start(self, delivery_id: str) -> Job | None:
        """Mark the delivery running (one more attempt) and read it; None when it is done,
        dead, or was started `max_attempts` times already (poison: dead-lettered)."""
        async with self.app.connector.pool.connection() as db, db.transaction():  # type: ignore[attr-defined]
            cursor = await db.execute(
                f"SELECT {_COLUMNS}, body FROM flujo_deliveries WHERE delivery_id = %s FOR UPDATE",
                (delivery_id,),
            )
            row = await cursor.fetchone()
            if row is None or row[3] in ("done", "dead"):
                return None
            if row[4] >= self.max_attempts:
                await db.execute(
                    "UPDATE flujo_deliveries SET state = 'dead', last_error = %s,"
                    " finished_at = %s WHERE id = %s",
                    (POISON.format(attempts=row[4]), time.time(), row[0]),
                )
                return None
            await db.execute(
                "UPDATE flujo_deliveries SET state = 'running', attempts = attempts + 1"
                " WHERE id = %s",
                (row[0],),
            )
        job = job_from_row(row)
        return dataclasses.replace(job, attempts=job.attempts + 1, state="running")

    async def _mark(
        self, job: Job, state: JobState, error: str | None, *, run_after: float | None = None
    ) -> None:
        """Record how this attempt ended; nothing when the job is no longer this attempt's
        (a worker that lost the database for longer than the lease finds its job taken
        over, perhaps finished, by another: its late word must not undo that)."""
        finished = time.time() if state in ("done", "dead") else None
        async with self.app.connector.pool.connection() as db:  # type: ignore[attr-defined]
            await db.execute(
                "UPDATE flujo_deliveries SET state = %s, last_error = %s, finished_at = %s,"
                " done_count = done_count + %s, run_after = coalesce(%s, run_after),"
                " body = CASE WHEN %s THEN NULL ELSE body END"
                " WHERE id = %s AND attempts = %s AND state = 'running'",
                (
                    state,
                    error,
                    finished,
                    int(state == "done"),
                    run_after,
                    state == "done",
                    job.id,
                    job.attempts,
                ),
            )

    async def requeue(self, job_id: int) -> Job:
        """A dead letter queued again, as on SQLite (`PulledQueue.requeue`): a new row (a
        new id) with its stored delivery and no attempts, and its procrastinate job, in one
        transaction. Raises NotRetryable for a job that is missing or not dead."""
        await self.open()
        async with self.app.connector.pool.connection() as db, db.transaction():  # type: ignore[attr-defined]
            cursor = await db.execute(
                f"SELECT {_COLUMNS}, body FROM flujo_deliveries WHERE id = %s FOR UPDATE",
                (job_id,),
            )
            found = await cursor.fetchone()
            problem = not_retryable(job_id, found)
            if problem is not None:
                raise NotRetryable(problem)
            assert found is not None
            job = job_from_row(found)
            await db.execute("DELETE FROM flujo_deliveries WHERE id = %s", (job_id,))
            cursor = await db.execute(
                "INSERT INTO flujo_deliveries (delivery_id, event, body, received_at, key,"
                f" last_error) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (
                    job.delivery_id,
                    job.event,
                    found[10],
                    job.received_at,
                    job.key,
                    f"retried by hand (was job {job_id}): {job.last_error or ''}".strip(),
                ),
            )
            new = await cursor.fetchone()
            await db.execute(
                "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(%s, %s, 0, %s, NULL,"
                " jsonb_build_object('delivery_id', %s::text), NULL)"
                "::procrastinate_job_to_defer_v1])",
                (QUEUE, TASK, job.key, job.delivery_id),
            )
        assert new is not None
        return job_from_row(new)

    # -- reading ---------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._read_lock, _reaching():
            for attempt in (1, 2):
                if self._reader is None or self._reader.closed or self._reader.broken:
                    self._reader = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                try:
                    return self._reader.execute(sql, tuple(params)).fetchall()
                except psycopg.OperationalError:
                    self._reader.close()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def list_jobs(self, states: Sequence[JobState] = (), limit: int = 100) -> list[Job]:
        where = f"WHERE {_IN_STATES}" if states else ""
        params: list[Any] = [list(states)] * 2 if states else []
        rows = self._read(
            f"SELECT {_COLUMNS} FROM flujo_deliveries {where} ORDER BY id DESC LIMIT %s",
            [*params, limit],
        )
        return [job_from_row(row) for row in rows]

    def count(self, states: Sequence[JobState]) -> int:
        rows = self._read(
            f"SELECT count(*) FROM flujo_deliveries WHERE {_IN_STATES}", [list(states)] * 2
        )
        return int(rows[0][0])

    def unfinished(self, before: float) -> int:
        """Deliveries running, or queued to run before `before`."""
        rows = self._read(
            f"SELECT count(*) FROM flujo_deliveries WHERE {_IN_STATES}"
            " AND (state = 'running' OR run_after <= %s)",
            [["running", "queued"]] * 2 + [before],
        )
        return int(rows[0][0])

    def get(self, delivery_id: str) -> Job | None:
        rows = self._read(
            f"SELECT {_COLUMNS} FROM flujo_deliveries WHERE delivery_id = %s", [delivery_id]
        )
        return job_from_row(rows[0]) if rows else None

    def handled_twice(self) -> int:
        """Deliveries handled to the end more than once (for tests: should stay 0)."""
        return int(
            self._read("SELECT count(*) FROM flujo_deliveries WHERE done_count > 1", [])[0][0]
        )

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        await asyncio.gather(*self._groups, return_exceptions=True)
        for cursor in self._ackers:
            await cursor.connection.close()
        self._ackers.clear()
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
        if self._opened:
            await self.app.close_async()
            self._opened = False


_encode = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode
"""`json.dumps` without its per-call setup and the check for cycles (none in a group)."""


def group_parameters(rows: Sequence[tuple[Any, ...]], lock: int, group: int) -> tuple[Any, ...]:
    """`_ENQUEUE`'s parameters for a group of (delivery id, event, body, received at, run
    after), in its order: the bodies as one value; each delivery's other columns and its
    body's place in that value, as one JSON array (times in microseconds); how many; the
    group's advisory lock (lock space, group number)."""
    deliveries, start = [], 1
    for delivery_id, event, body, received_at, run_after in rows:
        length = len(body)
        deliveries.append(
            [delivery_id, event, start, length, round(received_at * 1e6), round(run_after * 1e6)]
        )
        start += length
    return b"".join([row[2] for row in rows]), _encode(deliveries), len(rows), lock, group


def _firsts(group: Sequence[tuple[tuple[Any, ...], Any]]) -> list[bool]:
    """For each delivery of a group, whether it is the first with its id in the group (a
    second copy is a redelivery: not stored again)."""
    seen: set[str] = set()
    firsts = []
    for row, _ in group:
        firsts.append(row[0] not in seen)
        seen.add(row[0])
    return firsts


def read_jobs(url: str, states: Sequence[str] = (), limit: int = 100) -> list[Job]:
    """Jobs (without bodies), newest first, on their own short connection (for
    `flujo bot jobs`)."""
    where = f"WHERE {_IN_STATES}" if states else ""
    params: list[Any] = [list(states)] * 2 if states else []
    with _reaching(), psycopg.connect(url, connect_timeout=5) as db:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM flujo_deliveries {where} ORDER BY id DESC LIMIT %s",
            (*params, limit),
        ).fetchall()
    return [job_from_row(row) for row in rows]


class QueueWorkers:
    """This process's share of the workers, with the interface of `worker.Workers`."""

    def __init__(self, queue: PostgresQueue, handler: Handler, *, concurrency: int) -> None:
        self._queue = queue
        self._handler = handler
        self._concurrency = concurrency
        self._task: asyncio.Task[None] | None = None

    @property
    def handled(self) -> int:
        return self._queue.handled

    def wake(self) -> None:
        """Nothing to do: procrastinate's workers hear of new jobs through LISTEN/NOTIFY."""

    async def start(self) -> None:
        self._task = asyncio.create_task(
            self._queue.work(self._handler, self._concurrency), name="flujo-workers"
        )

    async def stop(self) -> None:
        """Stop taking jobs; running handlers are cancelled and their jobs run again (by
        this or another process) after the lease."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def drain(self, horizon_s: float = 1.0) -> None:
        """Wait until no delivery is queued or running (tests, one-shot runs)."""
        while await asyncio.to_thread(self._queue.unfinished, time.time() + horizon_s):
            await asyncio.sleep(0.05)
