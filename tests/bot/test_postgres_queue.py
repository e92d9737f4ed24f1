"""The PostgreSQL queue (procrastinate) as two bot processes see it: a redelivery is
recognised whichever process receives it, a repository's jobs run in order across
workers while repositories run in parallel, and a scheduled job waits for its time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from flujo.bot.postgres_queue import _FORWARD, QUEUE, TASK, PostgresQueue
from flujo.bot.queue import Delivery, Job, JobState
from flujo.bot.worker import Work


async def _work_until(
    workers: list[asyncio.Task[Any]], done: Callable[[], bool], settle_s: float = 0.0
) -> None:
    """Let `workers` run until `done()` (30 s at most, however loaded the machine), then
    `settle_s` more (for a round that must not repeat anything), then stop them."""
    try:
        for _ in range(600):
            if done():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle_s)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _delivery(n: int, repo: str, not_before: float = 0.0, event: str = "push") -> Delivery:
    body = json.dumps({"repository": {"full_name": repo}, "n": n}).encode()
    return Delivery(f"d{n}", event, body, time.time(), not_before)


async def test_a_redelivery_to_another_process_is_not_queued_again(postgres_url: str) -> None:
    one, two = PostgresQueue(postgres_url), PostgresQueue(postgres_url)
    try:
        results = await asyncio.gather(
            one.enqueue(_delivery(1, "a/b")), two.enqueue(_delivery(1, "a/b"))
        )
        assert sorted(results) == [False, True]
        assert await one.enqueue(_delivery(1, "a/b")) is False
        assert [j.delivery_id for j in two.list_jobs()] == ["d1"]
    finally:
        await one.close()
        await two.close()


async def test_two_workers_keep_each_repository_in_order(postgres_url: str) -> None:
    queues = [PostgresQueue(postgres_url, lease_s=5) for _ in range(2)]
    seen: list[tuple[str, int]] = []
    running: set[str] = set()

    async def handler(work: Work) -> None:
        repo = work.data["repository"]["full_name"]
        assert repo not in running, "two jobs of one repository at once"
        running.add(repo)
        await asyncio.sleep(0.01)
        seen.append((repo, work.data["n"]))
        running.discard(repo)

    for n in range(30):
        assert await queues[n % 2].enqueue(_delivery(n, f"acme/r{n % 3}"))
    workers = [asyncio.create_task(q.work(handler, 4, poll_s=0.05)) for q in queues]
    await _work_until(workers, lambda: queues[0].count(("queued", "running")) == 0)
    assert sorted(n for _, n in seen) == list(range(30))  # each once
    for r in range(3):
        mine = [n for repo, n in seen if repo == f"acme/r{r}"]
        assert mine == sorted(mine)
    assert all(q.handled for q in queues), "both processes took jobs"
    for queue in queues:
        await queue.close()


async def test_a_scheduled_job_waits_for_its_time(postgres_url: str) -> None:
    queue = PostgresQueue(postgres_url)
    handled: list[float] = []

    async def handler(work: Work) -> None:
        handled.append(time.time())

    at = time.time() + 1.5
    assert await queue.enqueue(_delivery(1, "a/b", not_before=at, event="flujo_suggest"))
    worker = asyncio.create_task(queue.work(handler, 2, poll_s=0.05))
    try:
        await asyncio.sleep(0.5)
        assert handled == []
        for _ in range(100):
            if handled:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await queue.close()
    assert len(handled) == 1 and handled[0] >= at


async def test_a_worker_that_lost_its_job_cannot_undo_what_the_next_one_did(
    postgres_url: str,
) -> None:
    """A worker cut off from the database past the lease finds its job run by another
    process; when it comes back and reports its own (failed) attempt, the job stays done
    rather than queued with no procrastinate job left to run it."""
    slow, other = PostgresQueue(postgres_url), PostgresQueue(postgres_url)
    try:
        assert await slow.enqueue(_delivery(1, "a/b"))
        await other.open()
        first = await slow._start("d1")  # the attempt that lost the database
        second = await other._start("d1")  # the one that took it over after the lease
        assert first is not None and second is not None
        await other._mark(second, "done", None)
        await slow._mark(first, "queued", "connection failed", run_after=time.time())
        (job,) = other.list_jobs()
        assert (job.state, job.attempts, job.last_error) == ("done", 2, None)
    finally:
        await slow.close()
        await other.close()


async def _after_a_lost_write(
    url: str,
    deliveries: int,
    row: str,
    row_args: tuple[object, ...],
    job: str,
    settle_s: float,
    handled: int = 1,
) -> list[int]:
    """Deliveries d1..dN of one repository, where the database lost what a worker wrote of
    d1: `row` (SQL) sets its delivery row and its procrastinate job is left in status `job`
    under a worker that lives on. Then this queue's workers run: what they handle, in order
    (once `handled` were, however long a loaded machine takes, waiting `settle_s` more for
    a reaper round that must not repeat one)."""
    queue = PostgresQueue(url, lease_s=1)
    seen: list[int] = []

    async def handler(work: Work) -> None:
        seen.append(work.data["n"])

    for n in range(1, deliveries + 1):
        assert await queue.enqueue(_delivery(n, "a/b"))
    assert await queue.forward() == deliveries  # their jobs, as a worker's forwarder makes them
    pool = queue.app.connector.pool  # type: ignore[attr-defined]
    async with pool.connection() as db:
        cursor = await db.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        (alive,) = await cursor.fetchone()
        await db.execute(row, row_args)
        await db.execute(
            "UPDATE procrastinate_jobs SET status = %s, worker_id = %s"
            " WHERE args->>'delivery_id' = 'd1'",
            (job, alive if job == "doing" else None),
        )

    async def heartbeat() -> None:  # that worker lives on
        while True:
            async with pool.connection() as db:
                await db.execute(
                    "UPDATE procrastinate_workers SET last_heartbeat = NOW() WHERE id = %s",
                    (alive,),
                )
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(heartbeat()), asyncio.create_task(queue.work(handler, 2))]
    try:
        await _work_until(tasks, lambda: len(seen) >= handled, settle_s)
    finally:
        await queue.close()
    return seen


async def test_a_job_whose_end_the_database_lost_does_not_hold_up_its_repository(
    postgres_url: str,
) -> None:
    # The database went away as a live worker recorded the end of a job: its delivery is
    # done, the job still `doing` under that worker. The repository's next job must run.
    done = "UPDATE flujo_deliveries SET state = 'done', finished_at = %s WHERE delivery_id = 'd1'"
    seen = await _after_a_lost_write(postgres_url, 2, done, (time.time() - 60,), "doing", 0.0)
    assert seen == [2]


@pytest.mark.parametrize("lost", ["failed", "succeeded"])
async def test_a_retry_the_database_lost_is_run_all_the_same(postgres_url: str, lost: str) -> None:
    # An attempt failed and the delivery was put back for a retry, but procrastinate's own
    # record of the retry was lost as the database went away: its job ended in its books.
    # The delivery must still be handled, once.
    put_back = (
        "UPDATE flujo_deliveries SET state = 'queued', attempts = 1, run_after = %s,"
        " last_error = 'terminating connection' WHERE delivery_id = 'd1'"
    )
    seen = await _after_a_lost_write(postgres_url, 1, put_back, (time.time() - 60,), lost, 1.5)
    assert seen == [1]


async def test_a_job_whose_worker_stopped_between_its_start_and_its_end_is_run_again(
    postgres_url: str,
) -> None:
    # The delivery was marked running, then its job ended without it (procrastinate
    # recorded it aborted: the worker stopped at a point where nothing put it back).
    running = "UPDATE flujo_deliveries SET state = 'running', attempts = 1 WHERE delivery_id = %s"
    seen = await _after_a_lost_write(postgres_url, 2, running, ("d1",), "aborted", 1.5, handled=2)
    assert sorted(seen) == [1, 2]  # each once (d2 may go first: d1's lock went with its job)


async def test_a_worker_stopped_as_it_starts_a_job_puts_the_job_back(postgres_url: str) -> None:
    queue = PostgresQueue(postgres_url, lease_s=30)
    started = asyncio.Event()
    start = queue._start

    async def slow_start(delivery_id: str) -> Job | None:
        job = await start(delivery_id)
        started.set()
        await asyncio.sleep(3600)  # the worker is stopped here
        return job

    queue._start = slow_start  # type: ignore[method-assign]

    async def handler(work: Work) -> None:
        raise AssertionError("not reached")

    assert await queue.enqueue(_delivery(1, "a/b"))
    worker = asyncio.create_task(queue.work(handler, 1, poll_s=0.05))
    try:
        await asyncio.wait_for(started.wait(), 10)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    pool = queue.app.connector.pool  # type: ignore[attr-defined]
    async with pool.connection() as db:
        cursor = await db.execute("SELECT status FROM procrastinate_jobs")
        assert [row[0] for row in await cursor.fetchall()] == ["todo"]
    await queue.close()


async def test_an_attempt_whose_end_could_not_be_recorded_keeps_its_place(
    postgres_url: str,
) -> None:
    # d1's handler fails and the database goes away as the failure is recorded: d1 must
    # still run before d2 (its job goes back under its lock instead of freeing d2).
    queue = PostgresQueue(postgres_url, lease_s=1, retry_base_s=0.01)
    mark = queue._mark
    tries: list[int] = []
    done: list[int] = []

    async def lost_once(job: Job, state: JobState, error: str | None, **kw: Any) -> None:
        if state == "queued" and len(tries) == 1:
            raise psycopg.OperationalError("terminating connection")
        await mark(job, state, error, **kw)

    queue._mark = lost_once  # type: ignore[method-assign]

    async def handler(work: Work) -> None:
        tries.append(work.data["n"])
        if len(tries) == 1:
            raise RuntimeError("GitHub answered 502")
        done.append(work.data["n"])

    for n in (1, 2):
        assert await queue.enqueue(_delivery(n, "a/b"))
    worker = asyncio.create_task(queue.work(handler, 2, poll_s=0.05))
    try:
        await _work_until([worker], lambda: len(done) == 2)
    finally:
        await queue.close()
    assert done == [1, 2]


@pytest.mark.parametrize("slow", ["commit", "insert"])
async def test_a_group_stored_beside_a_slow_one_keeps_the_repository_in_order(
    postgres_url: str, slow: str
) -> None:
    # The first delivery's transaction is slow (a test trigger sleeps as it is stored, or
    # as it commits); the next deliveries of the same repository arrive meanwhile, and go
    # on the second connection. A forwarder running all along must neither forward them
    # before it (a worker would run them first) nor give them job ids before it
    # (procrastinate runs a lock's jobs by id).
    import psycopg

    queue = PostgresQueue(postgres_url, ack_connections=2)
    forwarder = PostgresQueue(postgres_url)
    await queue.open()
    trigger = (
        "CONSTRAINT TRIGGER slow AFTER INSERT ON flujo_deliveries DEFERRABLE INITIALLY DEFERRED"
        if slow == "commit"
        else "TRIGGER slow BEFORE INSERT ON flujo_deliveries"
    )
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$;"
            f" CREATE {trigger} FOR EACH ROW WHEN (NEW.delivery_id = 'd0')"
            " EXECUTE FUNCTION slow()"
        )
    seen: list[list[str]] = []

    async def watch() -> None:  # what a worker could see, as it changes
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as db:
            while True:
                await forwarder.forward(db)
                cursor = await db.execute(
                    "SELECT args->>'delivery_id' FROM procrastinate_jobs ORDER BY id"
                )
                found = [row[0] for row in await cursor.fetchall()]
                if not seen or seen[-1] != found:
                    seen.append(found)
                await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        first = asyncio.create_task(queue.enqueue(_delivery(0, "a/b")))
        await asyncio.sleep(0.3)  # its group is being stored, or committed, slowly
        later = [asyncio.create_task(queue.enqueue(_delivery(n, "a/b"))) for n in range(1, 6)]
        assert await asyncio.gather(first, *later) == [True] * 6
        await asyncio.sleep(0.1)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await queue.close()
        await forwarder.close()
    assert queue.commits == 2, "the later deliveries were not stored beside the slow one"
    assert seen[-1] == [f"d{n}" for n in range(6)]
    assert all(not found or found[0] == "d0" for found in seen), seen


_STORE = (
    "INSERT INTO flujo_deliveries (delivery_id, event, body, received_at)"
    " VALUES (%s, 'push', %s, 0)"
)
_JOBS = "SELECT args->>'delivery_id' FROM procrastinate_jobs ORDER BY id"


async def test_interleaved_acknowledgements_are_forwarded_in_commit_order_and_none_is_skipped(
    postgres_url: str,
) -> None:
    # Two processes acknowledge deliveries of one repository: the first one's transaction
    # stores d1 and is still committing when the second stores d2 (a later id) and
    # commits. A forwarder running meanwhile forwards d2; d1, committed after it, must be
    # forwarded too (not skipped as older than what was forwarded), after d2.
    queue = PostgresQueue(postgres_url)
    await queue.open()
    first = psycopg.connect(postgres_url)
    try:
        with psycopg.connect(postgres_url, autocommit=True) as second:
            first.execute(_STORE, ("d1", json.dumps({"repository": {"full_name": "a/b"}})))
            second.execute(_STORE, ("d2", json.dumps({"repository": {"full_name": "a/b"}})))
            assert await queue.forward() == 1
            first.commit()
            assert await queue.forward() == 1
            assert await queue.forward() == 0
            assert [row[0] for row in second.execute(_JOBS).fetchall()] == ["d2", "d1"]
            keys = second.execute("SELECT key FROM flujo_deliveries ORDER BY id").fetchall()
            assert keys == [("a/b",), ("a/b",)]
    finally:
        first.close()
        await queue.close()


async def test_a_forwarder_that_read_the_inbox_before_the_last_one_committed_doubles_nothing(
    postgres_url: str,
) -> None:
    # A forwarder's read began before the previous forwarder's transaction ended (it took
    # the lock as that one released it): the deliveries it still sees without a key are
    # not given a second job.
    queue = PostgresQueue(postgres_url)
    for n in range(3):
        assert await queue.enqueue(_delivery(n, "a/b"))
    with psycopg.connect(postgres_url, autocommit=True) as db:
        stale = db.execute("SELECT id, delivery_id FROM flujo_deliveries ORDER BY id").fetchall()
        assert await queue.forward() == 3
        db.execute(
            _FORWARD,
            {
                "ids": [row[0] for row in stale],
                "keys": ["a/b"] * 3,
                "at": [None] * 3,
                "queue": QUEUE,
                "task": TASK,
            },
        )
        assert len(db.execute(_JOBS).fetchall()) == 3
    await queue.close()


async def test_a_forwarder_stopped_midway_loses_and_doubles_nothing(postgres_url: str) -> None:
    # The worker process forwarding the inbox is killed as it defers the jobs (its
    # connection is cut): another process forwards every delivery, once, in order.
    killed, other = PostgresQueue(postgres_url), PostgresQueue(postgres_url)
    for n in range(5):
        assert await killed.enqueue(_delivery(n, "a/b"))
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$;"
            " CREATE TRIGGER slow AFTER INSERT ON procrastinate_jobs FOR EACH STATEMENT"
            " EXECUTE FUNCTION slow()"
        )
        forwarding = asyncio.create_task(killed.forward())
        for _ in range(100):
            await asyncio.sleep(0.05)
            found = db.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE '%procrastinate_defer_jobs%'"
                " AND state = 'active' AND pid <> pg_backend_pid()"
            ).fetchall()
            if found:
                break
        assert found, "the forwarder never got as far as deferring the jobs"
        assert await other.forward() == 0  # one forwarder at a time
        db.execute("SELECT pg_terminate_backend(%s)", (found[0][0],))
        with pytest.raises(psycopg.OperationalError):
            await forwarding
        db.execute("DROP TRIGGER slow ON procrastinate_jobs")
        assert db.execute(_JOBS).fetchall() == []
        assert await other.forward() == 5
        assert await other.forward() == 0
        assert [row[0] for row in db.execute(_JOBS).fetchall()] == [f"d{n}" for n in range(5)]
    seen: list[int] = []

    async def handler(work: Work) -> None:
        seen.append(work.data["n"])

    worker = asyncio.create_task(other.work(handler, 2, poll_s=0.05))
    try:
        await _work_until([worker], lambda: len(seen) == 5, 0.2)
    finally:
        await killed.close()
        await other.close()
    assert seen == [0, 1, 2, 3, 4]


async def test_a_delivery_acknowledged_while_the_workers_run_is_forwarded_at_once(
    postgres_url: str,
) -> None:
    # The acknowledgement stores the delivery alone; the workers' forwarder, woken by it,
    # gives it its job well before its next poll.
    queue = PostgresQueue(postgres_url)
    handled = asyncio.Event()

    async def handler(work: Work) -> None:
        handled.set()

    worker = asyncio.create_task(queue.work(handler, 1, poll_s=5))
    try:
        await asyncio.sleep(0.5)  # the workers and their forwarder are waiting
        started = time.monotonic()
        assert await queue.enqueue(_delivery(1, "a/b"))
        await asyncio.wait_for(handled.wait(), 10)
        assert time.monotonic() - started < 2.5, "the forwarder waited for its poll"
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await queue.close()


async def test_deliveries_acknowledged_together_keep_their_own_bodies(postgres_url: str) -> None:
    queue = PostgresQueue(postgres_url)
    deliveries = [
        Delivery(f"d{n}", "push", json.dumps({"n": n, "x": "é" * n * 300}).encode(), 1.5, 0.0)
        for n in range(6)
    ]
    try:
        assert await asyncio.gather(*(queue.enqueue(d) for d in deliveries)) == [True] * 6
        assert queue.commits < 6  # stored together
        with psycopg.connect(postgres_url) as db:
            rows = db.execute(
                "SELECT delivery_id, body, received_at FROM flujo_deliveries ORDER BY id"
            ).fetchall()
        assert rows == [(d.delivery_id, d.body, 1.5) for d in deliveries]
    finally:
        await queue.close()


_BEFORE_THE_INBOX = """
CREATE TABLE flujo_deliveries (
    id BIGSERIAL PRIMARY KEY, delivery_id TEXT NOT NULL UNIQUE, event TEXT NOT NULL,
    body BYTEA, received_at DOUBLE PRECISION NOT NULL,
    run_after DOUBLE PRECISION NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0, key TEXT, last_error TEXT,
    finished_at DOUBLE PRECISION, done_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX flujo_deliveries_state ON flujo_deliveries (state, id);
ALTER TABLE flujo_deliveries ALTER COLUMN body SET STORAGE EXTERNAL;
"""


@contextlib.contextmanager
def _queue_before_the_inbox(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to a database holding procrastinate's schema and the queue's tables as
    the version before the inbox made them (autocommit)."""
    from procrastinate.schema import SchemaManager

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(SchemaManager.get_schema())
        db.execute(_BEFORE_THE_INBOX)
        yield db


async def test_a_queue_made_before_the_inbox_is_brought_up_to_date_and_loses_nothing(
    postgres_url: str,
) -> None:
    # A delivery queued by the previous version (its row and its job, no inbox), then the
    # new version starts: that delivery runs once, and so does one acknowledged now.
    with _queue_before_the_inbox(postgres_url) as db:
        db.execute(
            "INSERT INTO flujo_deliveries (delivery_id, event, body, received_at, key)"
            " VALUES ('d0', 'push', %s, 0, 'a/b')",
            (_delivery(0, "a/b").body,),
        )
        db.execute(
            "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('flujo_deliveries',"
            " 'flujo.handle_delivery', 0, 'a/b', NULL, jsonb_build_object('delivery_id', 'd0'),"
            " NULL)::procrastinate_job_to_defer_v1])"
        )
    queue = PostgresQueue(postgres_url)
    seen: list[int] = []

    async def handler(work: Work) -> None:
        seen.append(work.data["n"])

    assert await queue.enqueue(_delivery(1, "a/b"))
    worker = asyncio.create_task(queue.work(handler, 2, poll_s=0.05))
    try:
        await _work_until([worker], lambda: len(seen) == 2, 0.3)
    finally:
        await queue.close()
    assert seen == [0, 1]
    with psycopg.connect(postgres_url) as db:
        assert db.execute(_JOBS).fetchall() == []  # both done (and deleted by procrastinate)
        assert db.execute("SELECT count(*) FROM flujo_deliveries WHERE key IS NULL").fetchone() == (
            0,
        )


async def test_a_backlog_of_large_deliveries_is_forwarded_a_few_at_a_time_in_order(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bodies of up to 25 MB: the forwarder must not read a whole batch of them at once.
    from flujo.bot import postgres_queue

    monkeypatch.setattr(postgres_queue, "_FORWARD_BYTES", 80)
    queue = PostgresQueue(postgres_url)
    for n in range(4):
        assert await queue.enqueue(_delivery(n, "a/b"))  # 44 bytes each
    try:
        assert [await queue.forward() for _ in range(3)] == [2, 2, 0]
        with psycopg.connect(postgres_url) as db:
            assert [row[0] for row in db.execute(_JOBS).fetchall()] == [f"d{n}" for n in range(4)]
    finally:
        await queue.close()


async def test_a_server_without_lz4_keeps_bodies_whole_out_of_the_row(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server built without lz4 (or older than PostgreSQL 14) refuses the compression:
    # forced here by asking for a method no server has. The queue still starts, keeps
    # bodies uncompressed out of the row, and stores and hands over a typical webhook.
    from flujo.bot import postgres_queue

    refused = postgres_queue.SCHEMA.replace("COMPRESSION lz4", "COMPRESSION no_such_method")
    assert refused != postgres_queue.SCHEMA
    monkeypatch.setattr(postgres_queue, "SCHEMA", refused)
    queue = PostgresQueue(postgres_url)
    body = json.dumps({"repository": {"full_name": "a/b"}, "x": "y" * 8000}).encode()
    try:
        assert await queue.enqueue(Delivery("d1", "push", body, 1.5))
        assert await queue.forward() == 1
        with psycopg.connect(postgres_url) as db:
            storage = db.execute(
                "SELECT attstorage, attcompression FROM pg_attribute"
                " WHERE attrelid = 'flujo_deliveries'::regclass AND attname = 'body'"
            ).fetchone()
            stored = db.execute(
                "SELECT body, pg_column_compression(body), key FROM flujo_deliveries"
            ).fetchone()
        assert storage == ("e", "")  # EXTERNAL, no compression method
        assert stored == (body, None, "a/b")  # whole, uncompressed, forwarded
    finally:
        await queue.close()


async def test_a_redelivery_in_the_same_group_is_stored_once(postgres_url: str) -> None:
    queue = PostgresQueue(postgres_url)
    await queue.open()
    try:
        first, again, other = _delivery(1, "a/b"), _delivery(1, "a/b"), _delivery(2, "a/b")
        results = await asyncio.gather(*(queue.enqueue(d) for d in (first, again, other)))
        assert results == [True, False, True]
        assert queue.commits == 1  # one group
        assert [j.delivery_id for j in queue.list_jobs()] == ["d2", "d1"]
    finally:
        await queue.close()


async def test_a_queue_with_a_state_index_of_every_row_gets_one_of_forwarded_rows_alone(
    postgres_url: str,
) -> None:
    # A queue made by the version before (the inbox, and a state index of every row): at
    # the next start the state index holds the forwarded rows alone (the acknowledgement
    # writes one index entry fewer), and counts by state still see the inbox.
    with _queue_before_the_inbox(postgres_url) as db:
        db.execute("CREATE INDEX flujo_deliveries_inbox ON flujo_deliveries (id) WHERE key IS NULL")
        db.execute(
            "INSERT INTO flujo_deliveries (delivery_id, event, received_at, key, state) VALUES"
            " ('d1', 'push', 0, 'a/b', 'running'), ('d2', 'push', 0, 'a/b', 'dead'),"
            " ('d3', 'push', 0, NULL, 'queued')"
        )
    queue = PostgresQueue(postgres_url)
    try:
        await queue.open()
        with psycopg.connect(postgres_url) as db:
            indexes = dict(
                db.execute(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE tablename = 'flujo_deliveries' AND indexdef LIKE '%(state, id)%'"
                ).fetchall()
            )
        assert list(indexes) == ["flujo_deliveries_forwarded"]
        assert indexes["flujo_deliveries_forwarded"].endswith("WHERE (key IS NOT NULL)")
        assert await queue.enqueue(_delivery(4, "a/b"))
        assert queue.count(("queued",)) == 2  # the inbox's
        assert queue.count(("running", "dead")) == 2
        assert queue.unfinished(time.time() + 1) == 3
        assert [j.delivery_id for j in queue.list_jobs(("queued", "dead"))] == ["d4", "d3", "d2"]
    finally:
        await queue.close()
