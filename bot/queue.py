"""The delivery queue: what a webhook becomes once acknowledged.

`DeliveryQueue` is the small interface the web server and the workers use; `SQLiteQueue`
(in `sqlite_queue.py`) is the embedded implementation. A Postgres-backed task queue (e.g.
procrastinate) can implement the same interface for deployments with several nodes.

A delivery is stored raw (headers that matter + body) when it arrives; parsing happens in
the worker, so the acknowledgement costs one grouped commit and nothing else.

The errors are part of the contract: a queue raises `QueueUnavailable` when its store
cannot be reached (whatever the store), and a handler raises `RetryLater` or `Permanent`
to tell the workers what to do with a failed job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from flujo.spec.errors import EXIT_INVALID, EXIT_USAGE, FlujoError

JobState = Literal["queued", "running", "done", "dead"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "done", "dead")


class QueueUnavailable(FlujoError):
    """The store behind the queue cannot be reached or written (nothing was stored);
    exit code 2, like an unreachable run store."""

    exit_code = EXIT_USAGE


class RetryLater(FlujoError):
    """Raised by a handler that cannot go on before `at` (e.g. a long rate limit).

    Exit code 2 if it ever reached a command: something out of reach, not a bug.
    """

    exit_code = EXIT_USAGE

    def __init__(self, reason: str, at: float) -> None:
        super().__init__(reason)
        self.at = at


class NotRetryable(FlujoError):
    """`requeue` was asked for a job that is not a dead letter, or that does not exist
    (exit code 1: the id given is wrong; the message says why)."""

    exit_code = EXIT_INVALID


class Permanent(FlujoError):
    """Raised by a handler for a failure that retrying cannot fix (exit code 1: the event
    itself cannot be handled)."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook delivery as GitHub sent it (signature already verified)."""

    delivery_id: str
    event: str
    body: bytes
    received_at: float
    not_before: float = 0.0
    """Do not handle before this time (scheduled jobs; webhooks run at once)."""


@dataclass(frozen=True, slots=True)
class Job:
    """A stored delivery and where it is in its life."""

    id: int
    delivery_id: str
    event: str
    state: JobState
    attempts: int
    received_at: float
    run_after: float
    key: str | None = None
    last_error: str | None = None
    finished_at: float | None = None
    body: bytes = b""


def job_from_row(row: tuple[Any, ...]) -> Job:
    """A job from a row of the queue's columns (id, delivery_id, event, state, attempts,
    received_at, run_after, key, last_error, finished_at[, body]), as both queues store it."""
    body = row[10] if len(row) > 10 and row[10] is not None else b""
    return Job(
        id=row[0],
        delivery_id=row[1],
        event=row[2],
        state=row[3],
        attempts=row[4],
        received_at=row[5],
        run_after=row[6],
        key=row[7],
        last_error=row[8],
        finished_at=row[9],
        body=bytes(body),
    )


def not_retryable(job_id: int, row: tuple[Any, ...] | None) -> str | None:
    """Why the job of a row (the queue's columns and its body) cannot be retried by hand;
    None when it can (a dead letter that kept its delivery)."""
    if row is None:
        return f"there is no job {job_id}"
    state = row[3]
    if state != "dead":
        return (
            f"job {job_id} is {state}, not a dead letter: only dead letters can be "
            "retried (`flujo bot jobs --state dead` lists them)"
        )
    if row[10] is None:
        return f"job {job_id} kept no delivery to run again"
    return None


@dataclass(frozen=True, slots=True)
class Recovery:
    """What `recover` did at start."""

    resumed: int
    """Interrupted jobs put back in the queue."""
    poisoned: tuple[Job, ...] = ()
    """Jobs dead-lettered because they stopped the bot every time they ran."""


class DeliveryQueue(Protocol):
    """Durable, deduplicated, ordered per key."""

    async def enqueue(self, delivery: Delivery) -> bool:
        """Store a delivery durably; False when its id was seen before (a redelivery).

        `delivery.not_before` is the job's not-before time (Unix seconds; 0: at once): it
        becomes the job's `run_after`, and `pending` returns it from the start like any
        other job (the workers hold it until then). Timers (merge windows, bake-ins,
        watches) are deliveries with a future `not_before` and an id that names them, so
        scheduling the same timer twice stores it once and a restart loses none.

        Raises QueueUnavailable when it cannot be stored (the caller must not acknowledge it).
        """

    def list_jobs(self, states: Sequence[JobState] = (), limit: int = 100) -> list[Job]:
        """Jobs (without bodies), newest first."""

    def count(self, states: Sequence[JobState]) -> int:
        """How many jobs are in these states."""

    async def close(self) -> None:
        """Flush and release the store."""


class PulledQueue(DeliveryQueue, Protocol):
    """A queue that this process's `Workers` read and mark (the embedded SQLite queue);
    a queue with workers of its own (PostgreSQL, `postgres_queue.py`) needs none of this."""

    async def pending(self, after_id: int) -> list[Job]:
        """Unfinished jobs with an id above `after_id`, oldest first (with bodies)."""

    async def started(self, job: Job, key: str) -> None:
        """Mark a job running under an ordering key (e.g. the repository)."""

    async def finished(self, job: Job) -> None:
        """Mark a job done: it will never run again."""

    async def failed(self, job: Job, error: str, *, retry_at: float | None) -> None:
        """Record a failure: run again at `retry_at`, or dead-letter it when None."""

    async def recover(self, max_attempts: int) -> Recovery:
        """After a crash: jobs left running go back to the queue, except those that had
        `max_attempts` tries already (they stopped the bot each time: poison), which are
        dead-lettered with that reason. Returns how many went back, and the poison jobs
        (with bodies, so what they were doing can be reported as failed)."""

    async def requeue(self, job_id: int) -> Job:
        """Queue a dead letter again, as a new job (a new, higher id, so that running
        workers see it) with its stored delivery and no attempts; returns the new job.

        Raises NotRetryable when there is no such job or it is not dead: only a dead
        letter can be retried (a queued or running job will run anyway, a done one ran).
        """
