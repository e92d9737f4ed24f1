"""Workers: take stored deliveries, parse them, and handle them in order per repository.

Each repository (the ordering key) has a lane: its jobs run one at a time, oldest
first, while different repositories run in parallel up to `concurrency`. A failed job
is retried with jittered exponential backoff in its lane (later jobs of the same
repository wait for it) and is dead-lettered after `max_attempts`. Jobs left running
by a crash go back to the queue at start, so every delivery is handled; handlers are
idempotent, so handling one twice changes nothing (exactly once in effect). Each delivery
taken up and each attempt is one log line with its facts (`logs.log_event`); attempts also
go to an observer (the metrics). The queue is read when woken and every `poll_s`, so jobs
added by another process (`flujo bot jobs --retry`) are taken up too.

Scheduled jobs (a `not_before` more than `TIMER_HORIZON_S` away: merge windows, bake-ins,
watches) wait outside the lanes, so they hold up no webhook of their repository; they
are admitted when the clock (`flujo.bot.clock`) reaches their time. They stay queued in
the store meanwhile, so a restart reads them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flujo.bot.clock import Clock, SystemClock
from flujo.bot.logs import log_event
from flujo.bot.queue import Job, Permanent, PulledQueue, RetryLater

log = logging.getLogger("flujo.bot.worker")


@dataclass(frozen=True, slots=True)
class Work:
    """A parsed delivery handed to the handler."""

    job: Job
    event: str
    data: dict[str, Any]
    key: str

    @property
    def repository(self) -> str | None:
        """`owner/name` of the delivery's repository, if it names one."""
        repository = self.data.get("repository")
        name = repository.get("full_name") if isinstance(repository, dict) else None
        return name if isinstance(name, str) else None

    @property
    def installation(self) -> int | None:
        """The App installation the delivery is for, if it names one."""
        installation = self.data.get("installation")
        found = installation.get("id") if isinstance(installation, dict) else None
        return found if isinstance(found, int) and not isinstance(found, bool) else None

    def fields(self) -> dict[str, Any]:
        """What a log line says about this job (never the body's content)."""
        action = self.data.get("action")
        return {
            "job": self.job.id,
            "delivery": self.job.delivery_id,
            "event": self.event,
            "action": action if isinstance(action, str) else None,
            "repository": self.repository,
            "installation": self.installation,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt at a job ended: `done`, `retry` (queued again) or `dead`."""

    work: Work
    outcome: str
    attempt: int
    seconds: float


Handler = Callable[[Work], Awaitable[None]]
Observer = Callable[[Outcome], None]
Poisoned = Callable[[Job], Awaitable[None]]
TIMER_HORIZON_S = 60.0
"""Jobs due later than this wait outside their lane (timers)."""


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


def ordering_key_of(body: bytes, event: str = "", delivery: str = "") -> str:
    """`ordering_key` of a raw delivery, reading only the two fields it looks at (about
    five times faster than decoding the whole payload: the PostgreSQL queue needs the key
    before it acknowledges). Anything unusual is decoded in full, so the key is the same."""
    from pydantic import ValidationError

    try:
        found = _Keyed.model_validate_json(body)
    except ValidationError:  # not an object, odd field types, malformed: the full rule
        data = json_object(body)
        return ordering_key(data, event, delivery) if isinstance(data, dict) else "-"
    name = found.repository.full_name if found.repository is not None else None
    if isinstance(name, str):
        lane = f" ({delivery})" if event.startswith("flujo_") else ""
        return f"{name}{lane}"
    number = found.installation.id if found.installation is not None else None
    return f"installation:{number}" if number is not None else "-"


class _Repository(BaseModel):
    full_name: Any = None


class _Installation(BaseModel):
    id: Any = None


class _Keyed(BaseModel):
    """The fields of a payload its ordering key is made of (the others are skipped)."""

    repository: _Repository | None = None
    installation: _Installation | None = None


class Workers:
    def __init__(
        self,
        queue: PulledQueue,
        handler: Handler,
        *,
        concurrency: int = 4,
        max_attempts: int = 5,
        retry_base_s: float = 2.0,
        max_retry_s: float = 3600.0,
        poll_s: float = 5.0,
        observe: Observer | None = None,
        clock: Clock | None = None,
        on_poisoned: Poisoned | None = None,
    ) -> None:
        """`on_poisoned(job)` is told of each job dead-lettered at start because it stopped
        the bot every time it ran (to complete what the job had started, as failed)."""
        self._queue = queue
        self._poll_s = poll_s
        self._observe = observe
        self.clock: Clock = clock or SystemClock()
        self._timers: dict[int, Job] = {}  # scheduled jobs not yet due, by id
        self._timer_wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
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
        self._timer_task = asyncio.create_task(self._timer_loop(), name="flujo-timers")
        self.wake()

    async def _report_poisoned(self, job: Job) -> None:
        assert self._on_poisoned is not None
        try:
            await self._on_poisoned(job)
        except Exception as exc:  # reporting is best effort; the job is dead-lettered anyway
            log.error("could not report dead-lettered delivery %s: %s", job.delivery_id, exc)

    async def stop(self) -> None:
        """Stop taking work; running handlers are cancelled and re-run after a restart."""
        tasks = [
            t
            for t in (self._loop_task, self._timer_task, *self._lane_tasks.values())
            if t is not None
        ]
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
            later = self.clock.now() + horizon_s
            if all(self._sleeping.get(key, 0.0) > later for key in self._lanes):
                return

    async def _intake(self) -> None:
        while True:
            # Also look now and then: another process (`flujo bot jobs --retry`) may add work.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
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

    def timers(self) -> list[Job]:
        """Scheduled jobs waiting for their time, soonest first."""
        return sorted(self._timers.values(), key=lambda j: j.run_after)

    async def _timer_loop(self) -> None:
        while True:
            self._timer_wake.clear()
            now = self.clock.now()
            for job in [j for j in self._timers.values() if j.run_after <= now]:
                del self._timers[job.id]
                self._admit(job, scheduled=True)
            if not self._timers:
                await self._timer_wake.wait()
                continue
            due = min(j.run_after for j in self._timers.values())
            sleeping = asyncio.ensure_future(self.clock.sleep(due - now))
            woken = asyncio.ensure_future(self._timer_wake.wait())
            _, waiting = await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
            for task in waiting:
                task.cancel()

    def _admit(self, job: Job, *, scheduled: bool = False) -> None:
        if job.id in self._admitted or job.id in self._timers:
            return  # already in a lane (the queue is being read again after a failure)
        if not scheduled and job.run_after > self.clock.now() + TIMER_HORIZON_S:
            self._timers[job.id] = job
            self._timer_wake.set()
            return
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
        if job.attempts == 0:  # first seen (not resumed after a stop or a retry)
            log_event(log, logging.INFO, "delivery queued", **work.fields())
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
        delay = job.run_after - self.clock.now()
        while True:
            if delay > 0:
                self._sleeping[work.key] = self.clock.now() + delay
                try:
                    await self.clock.sleep(delay)
                finally:
                    self._sleeping.pop(work.key, None)
            async with self._slots:
                await self._queue.started(job, work.key)
                attempts += 1
                began = time.monotonic()
                try:
                    await self._handler(work)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a handler failure must not stop the lane
                    seconds = time.monotonic() - began
                    retry_at = self._retry_at(exc, attempts)
                    reason = _describe(exc)
                    await self._queue.failed(job, reason, retry_at=retry_at)
                    dead = retry_at is None
                    self._report(
                        Outcome(work, "dead" if dead else "retry", attempts, seconds),
                        error=reason,
                        retry_in_s=None
                        if retry_at is None
                        else round(retry_at - self.clock.now(), 1),
                    )
                    if dead:
                        log.debug("details", exc_info=exc)
                        return
                    assert retry_at is not None
                    delay = retry_at - self.clock.now()
                    continue
                seconds = time.monotonic() - began
                await self._queue.finished(job)
                self.handled += 1
                self._report(Outcome(work, "done", attempts, seconds))
                return

    def _report(self, outcome: Outcome, **extra: Any) -> None:
        """The job's log line (warning on a retry, error for a dead letter) and metrics."""
        level = {"done": logging.INFO, "retry": logging.WARNING}.get(outcome.outcome, logging.ERROR)
        log_event(
            log,
            level,
            "job "
            + {"done": "done", "retry": "failed, will retry"}.get(outcome.outcome, "dead-lettered"),
            **outcome.work.fields(),
            outcome=outcome.outcome,
            attempt=outcome.attempt,
            duration_s=round(outcome.seconds, 3),
            **extra,
        )
        if self._observe is not None:
            try:
                self._observe(outcome)
            except Exception as exc:  # metrics must never stop a lane
                log.error("cannot record the metrics of job %s: %s", outcome.work.job.id, exc)

    def _retry_at(self, exc: Exception, attempts: int) -> float | None:
        return retry_at(
            exc,
            attempts,
            self._max_attempts,
            self._retry_base_s,
            self._max_retry_s,
            now=self.clock.now(),
        )


def retry_at(
    exc: BaseException,
    attempts: int,
    max_attempts: int,
    base_s: float,
    max_s: float,
    *,
    now: float | None = None,
) -> float | None:
    """When a job that failed with `exc` on its `attempts`-th try runs again: None to
    dead-letter it (`Permanent`, or no tries left), `RetryLater.at`, else a jittered
    exponential backoff from `now` (default: the time now). Both queues retry by this rule."""
    if isinstance(exc, Permanent) or attempts >= max_attempts:
        return None
    if isinstance(exc, RetryLater):
        return float(exc.at)
    backoff = min(max_s, base_s * 2 ** (attempts - 1))
    start = time.time() if now is None else now
    return float(start + backoff * random.uniform(0.5, 1.0))  # jittered


def describe(exc: BaseException) -> str:
    """An error as one bounded line for the job's record."""
    return _describe(exc)


def json_object(body: bytes) -> dict[str, Any] | str:
    """The delivery's JSON object, or why it is not one (never raises)."""
    return _json_object(body)


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
