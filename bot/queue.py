"""The delivery queue: what a webhook becomes once acknowledged.

`DeliveryQueue` is the small interface the web server and the workers use; `SQLiteQueue`
(in `sqlite_queue.py`) is the embedded implementation. A Postgres-backed task queue (e.g.
procrastinate) can implement the same interface for deployments with several nodes.

A delivery is stored raw (headers that matter + body) when it arrives; parsing happens in
the worker, so the acknowledgement costs one grouped commit and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

JobState = Literal["queued", "running", "done", "dead"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "done", "dead")


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


class DeliveryQueue(Protocol):
    """Durable, deduplicated, ordered per key."""

    async def enqueue(self, delivery: Delivery) -> bool:
        """Store a delivery durably; False when its id was seen before (a redelivery)."""

    async def pending(self, after_id: int) -> list[Job]:
        """Unfinished jobs with an id above `after_id`, oldest first (with bodies)."""

    async def started(self, job: Job, key: str) -> None:
        """Mark a job running under an ordering key (e.g. the repository)."""

    async def finished(self, job: Job) -> None:
        """Mark a job done: it will never run again."""

    async def failed(self, job: Job, error: str, *, retry_at: float | None) -> None:
        """Record a failure: run again at `retry_at`, or dead-letter it when None."""

    async def recover(self) -> int:
        """After a crash: jobs left running go back to the queue. Returns how many."""

    def list_jobs(self, states: Sequence[JobState] = (), limit: int = 100) -> list[Job]:
        """Jobs (without bodies), newest first."""

    async def close(self) -> None:
        """Flush and release the store."""
