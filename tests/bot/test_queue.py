"""The durable delivery queue and its workers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from flujo.bot.queue import Delivery, Permanent, RetryLater
from flujo.bot.sqlite_queue import SQLiteQueue
from flujo.bot.worker import Work, Workers, json_object, ordering_key, ordering_key_of
from tests.support.specs import ROOT


def delivery(n: int, repo: str = "o/r", event: str = "push") -> Delivery:
    body = f'{{"n": {n}, "repository": {{"full_name": "{repo}"}}}}'.encode()
    return Delivery(f"d-{n}", event, body, time.time())


@pytest.fixture
async def queue(tmp_path: Path):  # type: ignore[no-untyped-def]
    q = SQLiteQueue(tmp_path / "bot.db")
    yield q
    await q.close()


async def test_a_redelivery_is_recognised_and_not_queued_twice(queue: SQLiteQueue) -> None:
    assert await queue.enqueue(delivery(1)) is True
    assert await queue.enqueue(delivery(1)) is False
    assert [j.delivery_id for j in queue.list_jobs()] == ["d-1"]


async def test_a_burst_is_committed_in_groups(queue: SQLiteQueue) -> None:
    before = queue.commits
    stored = await asyncio.gather(*(queue.enqueue(delivery(n)) for n in range(200)))
    assert all(stored)
    assert len(queue.list_jobs(limit=1000)) == 200
    assert queue.commits - before < 100  # far fewer commits than deliveries


async def test_deliveries_survive_a_restart(tmp_path: Path) -> None:
    first = SQLiteQueue(tmp_path / "bot.db")
    await first.enqueue(delivery(1))
    await first.close()
    second = SQLiteQueue(tmp_path / "bot.db")
    try:
        pending = await second.pending(0)
        assert [(j.delivery_id, j.body) for j in pending] == [("d-1", delivery(1).body)]
        assert await second.enqueue(delivery(1)) is False  # still deduplicated
    finally:
        await second.close()


class Recorder:
    def __init__(self, fail: dict[str, list[Exception]] | None = None, delay: float = 0) -> None:
        self.calls: list[tuple[str, int]] = []
        self.running: dict[str, int] = {}
        self.max_parallel = 0
        self.fail = fail or {}
        self.delay = delay

    async def __call__(self, work: Work) -> None:
        self.calls.append((work.key, work.data["n"]))
        self.running[work.key] = self.running.get(work.key, 0) + 1
        assert self.running[work.key] == 1, "two jobs of one repository ran at once"
        self.max_parallel = max(self.max_parallel, sum(self.running.values()))
        try:
            await asyncio.sleep(self.delay)
            errors = self.fail.get(work.job.delivery_id)
            if errors:
                raise errors.pop(0)
        finally:
            self.running[work.key] -= 1


async def test_jobs_of_one_repository_run_in_order_and_repositories_in_parallel(
    queue: SQLiteQueue,
) -> None:
    handler = Recorder(delay=0.01)
    workers = Workers(queue, handler, concurrency=4)
    for n in range(12):
        await queue.enqueue(delivery(n, repo=f"o/r{n % 3}"))
    await workers.start()
    await workers.drain()
    await workers.stop()
    for repo in ("o/r0", "o/r1", "o/r2"):
        numbers = [n for key, n in handler.calls if key == repo]
        assert numbers == sorted(numbers) and len(numbers) == 4
    assert handler.max_parallel > 1
    assert {j.state for j in queue.list_jobs()} == {"done"}


async def test_a_failing_job_is_retried_then_dead_lettered(queue: SQLiteQueue) -> None:
    handler = Recorder(
        fail={"d-1": [RuntimeError("GitHub is down")] * 5, "d-2": [RuntimeError("blip")]}
    )
    workers = Workers(queue, handler, max_attempts=3, retry_base_s=0.01)
    await queue.enqueue(delivery(1))
    await queue.enqueue(delivery(2))
    await workers.start()
    await workers.drain()
    await workers.stop()
    assert [n for _, n in handler.calls] == [1, 1, 1, 2, 2]  # order kept through retries
    jobs = {j.delivery_id: j for j in queue.list_jobs()}
    assert jobs["d-1"].state == "dead" and jobs["d-1"].attempts == 3
    assert jobs["d-1"].last_error == "GitHub is down"
    assert jobs["d-2"].state == "done" and jobs["d-2"].attempts == 2
    assert [j.delivery_id for j in queue.list_jobs(("dead",))] == ["d-1"]


async def test_permanent_failures_and_malformed_bodies_are_not_retried(
    queue: SQLiteQueue,
) -> None:
    handler = Recorder(fail={"d-1": [Permanent("no installation")]})
    workers = Workers(queue, handler, max_attempts=5, retry_base_s=0.01)
    await queue.enqueue(delivery(1))
    await queue.enqueue(Delivery("bad", "push", b"{not json", time.time()))
    await workers.start()
    await workers.drain()
    await asyncio.sleep(0.05)
    await workers.stop()
    jobs = {j.delivery_id: j for j in queue.list_jobs()}
    assert jobs["d-1"].state == "dead" and jobs["d-1"].attempts == 1
    assert jobs["bad"].state == "dead" and "malformed JSON" in (jobs["bad"].last_error or "")


async def test_retry_later_waits_until_the_time_given(queue: SQLiteQueue) -> None:
    at = time.time() + 0.2
    handler = Recorder(fail={"d-1": [RetryLater("rate limited", at)]})
    workers = Workers(queue, handler, retry_base_s=10)
    await queue.enqueue(delivery(1))
    await workers.start()
    await workers.drain()
    await workers.stop()
    assert len(handler.calls) == 2 and time.time() >= at


async def test_a_job_interrupted_by_a_crash_completes_once_after_restart(tmp_path: Path) -> None:
    queue = SQLiteQueue(tmp_path / "bot.db")
    started = asyncio.Event()

    async def hangs(work: Work) -> None:
        started.set()
        await asyncio.sleep(3600)

    workers = Workers(queue, hangs)
    await queue.enqueue(delivery(1))
    await workers.start()
    await started.wait()
    await workers.stop()  # the process dies mid-job
    await queue.close()

    queue = SQLiteQueue(tmp_path / "bot.db")
    assert [j.state for j in queue.list_jobs()] == ["running"]
    handler = Recorder()
    workers = Workers(queue, handler)
    await workers.start()
    await workers.drain()
    await workers.stop()
    assert handler.calls == [("o/r", 1)]
    assert [j.state for j in queue.list_jobs()] == ["done"]
    await queue.close()


@pytest.mark.parametrize(
    "body",
    [
        *(p.read_bytes() for p in sorted(ROOT.glob("tests/github/webhooks/*/*.json"))),
        b'{"repository": {"full_name": "a/b"}, "installation": {"id": 3}}',
        b'{"repository": {"full_name": 7}, "installation": {"id": 3}}',
        b'{"repository": "a/b", "installation": {"id": 3}}',
        b'{"repository": null, "installation": {"id": null}}',
        b'{"installation": 3}',
        b'{"repository": {"full_name": "a/b"}, "repository": {"full_name": "c/d"}}',
        b'{"repository": {"full_name": "a/\\u00e9"}}',
        b'["not", "an", "object"]',
        b'{"repository": {"full_name": "a/b"',
        b"[" * 5000 + b"]" * 5000,
    ],
)
@pytest.mark.parametrize("event", ["push", "flujo_suggest"])
def test_the_key_of_a_raw_delivery_is_the_key_of_its_payload(body: bytes, event: str) -> None:
    """The PostgreSQL queue reads only the key's fields before the acknowledgement: the
    key is the one the whole payload gives (the vendored payloads of every event, and odd
    ones)."""
    data = json_object(body)
    expected = ordering_key(data, event, "d1") if isinstance(data, dict) else "-"
    assert ordering_key_of(body, event, "d1") == expected


def test_ordering_key_prefers_the_repository() -> None:
    assert ordering_key({"repository": {"full_name": "a/b"}, "installation": {"id": 3}}) == "a/b"
    assert ordering_key({"installation": {"id": 3}}) == "installation:3"
    assert ordering_key({}) == "-"


async def test_flujo_bot_jobs_lists_dead_letters(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flujo.cli import cli

    queue = SQLiteQueue(tmp_path / "bot.db")
    handler = Recorder(fail={"d-1": [Permanent("no installation of the App")]})
    workers = Workers(queue, handler)
    await queue.enqueue(delivery(1))
    await queue.enqueue(delivery(2, event="pull_request"))
    await workers.start()
    await workers.drain()
    await workers.stop()
    await queue.close()
    env = {"FLUJO_BOT_DB": str(tmp_path / "bot.db")}
    dead = CliRunner().invoke(cli, ["bot", "jobs", "--state", "dead"], env=env)
    assert dead.exit_code == 0, dead.output
    (line,) = dead.output.splitlines()
    assert "dead" in line and "push" in line and "no installation of the App" in line
    every = CliRunner().invoke(cli, ["bot", "jobs", "--json"], env=env)
    assert [j["state"] for j in __import__("json").loads(every.output)] == ["done", "dead"]
    missing = CliRunner().invoke(cli, ["bot", "jobs"], env={"FLUJO_BOT_DB": str(tmp_path / "x")})
    assert missing.exit_code == 2 and "no queue" in missing.output


async def test_the_wal_is_checkpointed_off_the_loop_and_emptied_at_close(tmp_path: Path) -> None:
    queue = SQLiteQueue(tmp_path / "bot.db")
    big = [
        Delivery(f"big-{n}", "push", b'{"pad": "' + b"x" * 8000 + b'"}', 0.0) for n in range(300)
    ]
    await asyncio.gather(*(queue.enqueue(d) for d in big))
    wal = tmp_path / "bot.db-wal"
    assert wal.stat().st_size > 1_000_000  # commits do not checkpoint by themselves
    await queue.close()
    assert not wal.exists() or wal.stat().st_size == 0
    reopened = SQLiteQueue(tmp_path / "bot.db")
    assert len(reopened.list_jobs(limit=1000)) == 300
    await reopened.close()


async def test_a_store_failure_mid_lane_is_survived_and_the_jobs_run_again(
    queue: SQLiteQueue,
) -> None:
    import sqlite3

    real_finished = queue.finished
    failures = [sqlite3.OperationalError("disk I/O error")]

    async def flaky_finished(job):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        await real_finished(job)

    queue.finished = flaky_finished  # type: ignore[method-assign]
    handler = Recorder()
    workers = Workers(queue, handler)
    await queue.enqueue(delivery(1))
    await queue.enqueue(delivery(2))
    await workers.start()
    await workers.drain()
    await asyncio.sleep(1.2)  # the lane is read again after a second
    await workers.drain()
    await workers.stop()
    assert [n for _, n in handler.calls] == [1, 1, 2]  # job 1 again (idempotent), then 2
    assert {j.state for j in queue.list_jobs()} == {"done"}


async def test_a_delivery_nested_too_deep_is_dead_lettered_not_stuck(queue: SQLiteQueue) -> None:
    handler = Recorder()
    workers = Workers(queue, handler, max_attempts=5, retry_base_s=0.01)
    deep = b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    await queue.enqueue(Delivery("deep", "push", deep, time.time()))
    await queue.enqueue(delivery(1))
    await workers.start()
    await workers.drain()
    await asyncio.sleep(0.05)
    await workers.stop()
    jobs = {j.delivery_id: j for j in queue.list_jobs()}
    assert jobs["deep"].state == "dead" and "nested too deep" in (jobs["deep"].last_error or "")
    assert jobs["d-1"].state == "done"


async def test_a_job_that_stopped_the_bot_every_time_is_dead_lettered_at_start(
    queue: SQLiteQueue,
) -> None:
    # As after a crash or kill -9 mid-job: the jobs were started and never finished.
    await queue.enqueue(delivery(1))
    await queue.enqueue(delivery(2))
    poison, interrupted = await queue.pending(0)
    for _ in range(3):
        await queue.started(poison, "r")
    await queue.started(interrupted, "r")
    handler = Recorder()
    workers = Workers(queue, handler, max_attempts=3, retry_base_s=0.01)
    await workers.start()
    await workers.drain()
    await workers.stop()
    jobs = {j.delivery_id: j for j in queue.list_jobs()}
    assert jobs["d-1"].state == "dead"
    assert "stopped while handling this job, 3 times" in (jobs["d-1"].last_error or "")
    assert jobs["d-2"].state == "done"
    assert [n for _, n in handler.calls] == [2]  # the poison never runs again


async def test_a_scheduled_job_waits_for_the_clock_without_holding_up_its_repository(
    queue: SQLiteQueue,
) -> None:
    from dataclasses import replace

    from flujo.bot.clock import ManualClock

    clock = ManualClock(1_000_000.0)
    handler = Recorder()
    workers = Workers(queue, handler, clock=clock)
    timer = replace(delivery(1), received_at=clock.now(), not_before=clock.now() + 86400)
    await queue.enqueue(timer)  # a watch due in 24 h, for o/r
    await queue.enqueue(delivery(2))  # then a webhook of the same repository
    await workers.start()
    await workers.drain()
    assert [n for _, n in handler.calls] == [2]  # the webhook did not wait a day
    assert [j.delivery_id for j in workers.timers()] == ["d-1"]
    await clock.advance(86399)
    await workers.drain()
    assert [n for _, n in handler.calls] == [2]
    await clock.advance(1)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(handler.calls) == 2:
            break
    await workers.drain()
    await workers.stop()
    assert [n for _, n in handler.calls] == [2, 1]
    assert {j.state for j in queue.list_jobs()} == {"done"}
