"""Workers: take stored deliveries, parse them, and handle them in order per repository.

Each repository (the ordering key) has a lane: its jobs run one at a time, oldest
first, while different repositories run in parallel up to `concurrency`. A failed job
is retried with jittered exponential backoff in its lane (later jobs of the same
repository wait for it) and is dead-lettered after `max_attempts`. Jobs left running
by a crash go back to the queue at start, so every delivery is handled; handlers are
idempotent, so handling one twice changes nothing (exactly once in effect).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flujo.bot.queue import DeliveryQueue, Job, Permanent, RetryLater

log = logging.getLogger("flujo.bot.worker")


@dataclass(frozen=True, slots=True)
class Work:
    """A parsed delivery handed to the handler."""

    job: Job
    event: str
    data: dict[str, Any]
    key: str


Handler = Callable[[Work], Awaitable[None]]
Poisoned = Callable[[Job], Awaitable[None]]


def ordering_key(data: dict[str, Any], event: str = "", delivery: str = "") -> str:
    """Jobs with the same key run in order: the repository, else the installation.

    Scheduled jobs (events named `flujo_…`) each get a lane of their own, so that a job
    waiting for its time never holds up the repository's webhooks (`delivery` names it).
    """
    repository = data.get("repository")
    if isinstance(repository, dict) and isinstance(repository.get("full_name"), str):
        lane = f" ({delivery})" if event.startswith("flujo_") else ""
        return f"{repository['full_name']}{lane}"
    installation = data.get("installation")
    if isinstance(installation, dict) and installation.get("id") is not None:
        return f"installation:{installation['id']}"
    return "-"


class Workers:
    def __init__(
        self,
        queue: DeliveryQueue,
        handler: Handler,
        *,
        concurrency: int = 4,
        max_attempts: int = 5,
        retry_base_s: float = 2.0,
        max_retry_s: float = 3600.0,
        on_poisoned: Poisoned | None = None,
    ) -> None:
        """`on_poisoned(job)` is told of each job dead-lettered at start because it stopped
        the bot every time it ran (to complete what the job had started, as failed)."""
        self._queue = queue
        self._handler = handler
        self._on_poisoned = on_poisoned
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._max_retry_s = max_retry_s
        self._lanes: dict[str, deque[Work]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._sleeping: dict[str, float] = {}  # lane -> when its waiting job may run
        self._background: set[asyncio.Task[None]] = set()
        self._last_id = 0
        self._fetching = False
        self._admitted: set[int] = set()  # ids of the jobs in lanes
        self._loop_task: asyncio.Task[None] | None = None
        self.handled = 0

    def wake(self) -> None:
        """Something was enqueued: look for it."""
        self._wake.set()

    async def start(self) -> None:
        recovery = await self._queue.recover(self._max_attempts)
        if recovery.resumed:
            log.info("resuming %d job(s) interrupted by a stop", recovery.resumed)
        for job in recovery.poisoned:
            log.error(
                "%s delivery %s dead-lettered: %s", job.event, job.delivery_id, job.last_error
            )
            if self._on_poisoned is not None:
                task = asyncio.create_task(self._report_poisoned(job))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        self._loop_task = asyncio.create_task(self._intake(), name="flujo-intake")
        self.wake()

    async def _report_poisoned(self, job: Job) -> None:
        assert self._on_poisoned is not None
        try:
            await self._on_poisoned(job)
        except Exception as exc:  # reporting is best effort; the job is dead-lettered anyway
            log.error("could not report dead-lettered delivery %s: %s", job.delivery_id, exc)

    async def stop(self) -> None:
        """Stop taking work; running handlers are cancelled and re-run after a restart."""
        tasks = [t for t in (self._loop_task, *self._lane_tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, horizon_s: float = 1.0) -> None:
        """Wait until every stored job has been handled, dead-lettered, or is scheduled
        more than `horizon_s` from now (for tests and one-shot runs)."""
        self.wake()
        while True:
            await asyncio.sleep(0.005)
            if self._wake.is_set() or self._fetching or self._background:
                continue
            later = time.time() + horizon_s
            if all(self._sleeping.get(key, 0.0) > later for key in self._lanes):
                return

    async def _intake(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._fetching = True
            try:
                for job in await self._queue.pending(self._last_id):
                    self._last_id = max(self._last_id, job.id)
                    self._admit(job)
            except Exception as exc:  # the store failed: try again shortly, keep serving
                log.error("cannot read the queue: %s; retrying in 1 s", exc)
                await asyncio.sleep(1.0)
                self._wake.set()
            finally:
                self._fetching = False

    def _admit(self, job: Job) -> None:
        if job.id in self._admitted:
            return  # already in a lane (the queue is being read again after a failure)
        data = _json_object(job.body)
        if isinstance(data, str):
            log.warning("delivery %s is not valid JSON (%s): dead-lettered", job.delivery_id, data)
            task = asyncio.create_task(
                self._queue.failed(job, f"malformed JSON: {data}", retry_at=None)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        self._admitted.add(job.id)
        work = Work(job, job.event, data, ordering_key(data, job.event, job.delivery_id))
        self._lanes.setdefault(work.key, deque()).append(work)
        if work.key not in self._lane_tasks:
            self._lane_tasks[work.key] = asyncio.create_task(
                self._run_lane(work.key), name=f"flujo-lane:{work.key}"
            )

    async def _run_lane(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                await self._run(lane[0])
                self._admitted.discard(lane.popleft().job.id)
        except Exception as exc:  # the store failed mid-job: read the queue again later
            log.error("lane %s stopped: %s; its jobs will be read again", key, exc)
            self._admitted.difference_update(w.job.id for w in lane)
            self._last_id = 0
            asyncio.get_running_loop().call_later(1.0, self.wake)
        finally:
            del self._lanes[key]
            del self._lane_tasks[key]

    async def _run(self, work: Work) -> None:
        job = work.job
        attempts = job.attempts
        delay = job.run_after - time.time()
        while True:
            if delay > 0:
                self._sleeping[work.key] = time.time() + delay
                try:
                    await asyncio.sleep(delay)
                finally:
                    self._sleeping.pop(work.key, None)
            async with self._slots:
                await self._queue.started(job, work.key)
                attempts += 1
                try:
                    await self._handler(work)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a handler failure must not stop the lane
                    retry_at = self._retry_at(exc, attempts)
                    reason = _describe(exc)
                    await self._queue.failed(job, reason, retry_at=retry_at)
                    if retry_at is None:
                        log.error(
                            "%s delivery %s dead-lettered after %d attempt(s): %s",
                            work.event,
                            job.delivery_id,
                            attempts,
                            reason,
                        )
                        log.debug("details", exc_info=exc)
                        return
                    log.warning(
                        "%s delivery %s failed (attempt %d), retrying in %.1fs: %s",
                        work.event,
                        job.delivery_id,
                        attempts,
                        retry_at - time.time(),
                        reason,
                    )
                    delay = retry_at - time.time()
                    continue
                await self._queue.finished(job)
                self.handled += 1
                return

    def _retry_at(self, exc: Exception, attempts: int) -> float | None:
        if isinstance(exc, Permanent) or attempts >= self._max_attempts:
            return None
        if isinstance(exc, RetryLater):
            return float(exc.at)
        backoff = min(self._max_retry_s, self._retry_base_s * 2 ** (attempts - 1))
        return float(time.time() + backoff * random.uniform(0.5, 1.0))  # jittered


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _json_object(body: bytes) -> dict[str, Any] | str:
    """The delivery's JSON object, or why it is not one (never raises)."""
    try:
        data = json.loads(body)
    except RecursionError:  # signed, but nested deeper than any GitHub payload
        return "nested too deep"
    except ValueError as exc:
        return str(exc)
    return data if isinstance(data, dict) else "not a JSON object"
