"""The bot's Prometheus metrics (`GET /metrics`), in a registry of its own per bot.

Counters and histograms are updated where things happen (webhook outcomes, job attempts,
GitHub's `X-RateLimit-*` answer headers); the queue's depth is read from the queue when
`/metrics` is scraped. Labels hold only bounded values: event names of verified
deliveries, outcomes, job states, installation ids and GitHub's rate-limit resources.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from flujo.bot.queue import DeliveryQueue
from flujo.bot.worker import Outcome

UNVERIFIED = "-"  # the event label of refused deliveries: their headers are a stranger's
# Handling a commit takes from milliseconds (nothing to check) to minutes (isolated specs).
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class BotMetrics:
    """Every metric of one bot process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue_jobs = Gauge(
            "flujo_bot_queue_jobs",
            "Jobs in the delivery queue by state (queued, running, done, dead).",
            ["state"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "flujo_bot_deliveries",
            "Webhook deliveries by event and outcome: queued, duplicate (a redelivery), ping, "
            "refused (bad signature or request; event '-'), unavailable (the queue failed).",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "flujo_bot_job_duration_seconds",
            "Time one attempt at a job took, by event and outcome (done, retry, dead).",
            ["event", "outcome"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self._delivery_counters: dict[tuple[str, str], Counter] = {}
        """`deliveries` by its labels, looked up once (each webhook counts one)."""
        self.rate_limit = Gauge(
            "flujo_bot_github_rate_limit_remaining",
            "Requests left in GitHub's rate-limit window, from the last X-RateLimit-Remaining "
            "header the bot received, by installation ('app' for the App's own requests) and "
            "resource.",
            ["installation", "resource"],
            registry=self.registry,
        )

    def delivery(self, event: str, outcome: str) -> None:
        counter = self._delivery_counters.get((event, outcome))
        if counter is None:  # the labels are bounded (see above): so is this dict
            counter = self._delivery_counters[event, outcome] = self.deliveries.labels(
                event, outcome
            )
        counter.inc()

    def job(self, outcome: Outcome) -> None:
        self.job_seconds.labels(outcome.work.event, outcome.outcome).observe(outcome.seconds)

    def github_headers(self, installation: str, headers: Mapping[str, str]) -> None:
        """Record the rate limit a GitHub answer reports (answers without one are skipped)."""
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("x-ratelimit-remaining")
        if remaining is None or not remaining.strip().isdecimal():
            return
        resource = headers.get("X-RateLimit-Resource") or headers.get("x-ratelimit-resource")
        self.rate_limit.labels(installation, resource or "core").set(int(remaining))

    async def exposition(self, queue: DeliveryQueue, accept: str = "") -> tuple[bytes, str]:
        """The metrics and their content type (Prometheus text or OpenMetrics, as the
        scraper's `Accept` header asks), the queue's depth read now."""
        from flujo.bot.queue import JOB_STATES

        for state in JOB_STATES:  # a quick read of the queue's own reader
            self.queue_jobs.labels(state).set(queue.count((state,)))
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type
