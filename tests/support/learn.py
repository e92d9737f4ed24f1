"""Synthetic telemetry for the learning-loop tests: runs and spans written straight into
a RunStore, shaped like the runner's (one span per attempt, flujo.* attributes)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from flujo.engine import telemetry as tm
from flujo.engine.store import RunStore
from flujo.engine.telemetry import SpanRecord
from flujo.spec.model import Pipeline

SEEDS = Path(__file__).resolve().parents[1] / "learn_seeds"


@dataclass
class Profile:
    """How one step behaves over the synthetic runs."""

    latency_s: float = 0.5
    cost_usd: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    fail_every: int = 0
    """Every Nth run, the first attempt fails with `error` (0: never)."""
    error: str = "validator failed: non_empty: the output is empty"
    fail_for_good_every: int = 0
    """Every Nth run, every attempt fails and the run fails at this step."""
    attempts: int = 2
    cause: str | None = None
    """Recorded on failed attempts (None: left for the store to infer from `error`)."""
    long_every: int = 0
    """Every Nth run (offset by 1), the reply is `long_tokens` long (a runaway reply)."""
    long_tokens: int = 4000
    kind: str = "step"
    loop_max: int = 0
    """For a loop: every run ends at this max_loops (its exit never held); 0: exits early."""
    rescued: bool = False
    """When every attempt fails, the step's fallback answers and the run goes on."""
    fallback_for: str | None = None
    """This is that step's fallback: it runs only when that step failed for good."""


@dataclass
class Telemetry:
    runs: int = 40
    every_s: float = 3600.0
    """Seconds between run starts."""
    usage_limit_every: int = 0
    usage_limit: str = "total_tokens"
    profiles: dict[str, Profile] = field(default_factory=dict)
    mode: str = "live"
    origin: str = "cli"


def record(
    store: RunStore,
    pipeline: Pipeline,
    telemetry: Telemetry,
    *,
    end: float | None = None,
    seed: int = 7,
) -> None:
    """Write `telemetry.runs` runs of `pipeline` ending at `end` (default: now)."""
    rng = random.Random(seed)
    end = end if end is not None else time.time()
    sha, name = pipeline.spec_sha256, pipeline.name
    text = pipeline.source.text if pipeline.source else pipeline.to_yaml()
    store.execute(
        "INSERT INTO specs VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(sha, pipeline.file, name, text, end - telemetry.runs * telemetry.every_s)],
    )
    paths = {step.name: path for path, step in pipeline.walk()}
    for i in range(telemetry.runs):
        started = end - (telemetry.runs - i) * telemetry.every_s
        run_id = f"{int(started * 1000):012x}{seed:04x}{i:06x}"
        spans: list[SpanRecord] = []
        clock = int(started * 1e9)
        failed_at: str | None = None
        cost = 0.0
        failed_steps: set[str] = set()
        for step_name, profile in telemetry.profiles.items():
            if profile.fallback_for and profile.fallback_for not in failed_steps:
                continue
            attempts = 1
            if profile.fail_for_good_every and i % profile.fail_for_good_every == 0:
                attempts = profile.attempts
            elif profile.fail_every and i % profile.fail_every == 0:
                attempts = 2
            for attempt in range(1, attempts + 1):
                last = attempt == attempts
                ok = last and not (
                    profile.fail_for_good_every and i % profile.fail_for_good_every == 0
                )
                duration = profile.latency_s * rng.uniform(0.8, 1.2)
                attributes = {
                    tm.RUN_ID: run_id,
                    tm.SPEC_SHA: sha,
                    tm.YAML_PATH: paths[step_name],
                    tm.STEP_NAME: step_name,
                    tm.STEP_KIND: profile.kind,
                    tm.ATTEMPT: attempt,
                }
                if profile.model:
                    attributes[tm.GEN_AI_MODEL] = profile.model
                    attributes[tm.COST] = profile.cost_usd
                    cost += profile.cost_usd
                if profile.output_tokens is not None:
                    long = profile.long_every and i % profile.long_every == 1
                    tokens = profile.long_tokens if long else profile.output_tokens
                    attributes[tm.GEN_AI_OUTPUT_TOKENS] = tokens
                    attributes[tm.GEN_AI_INPUT_TOKENS] = profile.input_tokens or 100
                span = SpanRecord(rng.getrandbits(62) + 1, None, step_name, clock, attributes)
                span.end_ns = clock + int(duration * 1e9)
                span.status = "OK" if ok else "ERROR"
                span.status_message = None if ok else profile.error
                if profile.loop_max:
                    span.events = [
                        ("flujo.loop.max_loops", span.end_ns, {"iteration": profile.loop_max})
                    ]
                elif profile.kind == "loop":
                    span.events = [("flujo.loop.exit", span.end_ns, {"iteration": 1})]
                if not ok and profile.cause is not None:
                    span.attributes[tm.CAUSE] = profile.cause
                clock = span.end_ns
                spans.append(span)
            if not ok and profile.rescued:
                failed_steps.add(step_name)
            elif not ok:
                failed_at = step_name
                break
        limit_hit = telemetry.usage_limit_every and i % telemetry.usage_limit_every == 0
        error = None
        if limit_hit:
            error = f"usage limit {telemetry.usage_limit} = 1 crossed at step 'x' (reached 2)"
        elif failed_at:
            error = f"step '{failed_at}' failed"
        store.execute(
            "INSERT INTO runs (run_id, spec_sha256, spec_path, pipeline, status, started_at,"
            " ended_at, latency_s, total_cost_usd, total_tokens, error, mode, origin) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    sha,
                    pipeline.file,
                    name,
                    "failed" if error else "succeeded",
                    started,
                    clock / 1e9,
                    clock / 1e9 - started,
                    cost,
                    0,
                    error,
                    telemetry.mode,
                    telemetry.origin,
                )
            ],
        )
        store.write_spans(run_id, spans)


TIMEOUT = "timed out after 5s"
CONNECTION = "APIConnectionError: Connection error."
NOT_FOUND = "NotFoundError: Error code: 404 - {'error': {'message': 'model not found'}}"

NEEDS_WRITER = frozenset({"long_prompt", "loop_at_max"})
"""Kinds found and worth something for which the offline agent has no patch (text to
write): listed as worth a look (dropped: needs_writer)."""

NO_MEASURED_VALUE = frozenset({"loose_timeout"})
"""Kinds found as opportunities but never suggested from these seeds: nothing measured in
them would improve (no call hung), so their expected value is zero (dropped: no_value)."""

# seed file -> (synthetic telemetry, the opportunities planted in it)
PLANTED: dict[str, tuple[Telemetry, set[tuple[str, str]]]] = {
    "cheaper_model": (
        Telemetry(
            profiles={
                "label": Profile(0.4, 0.0003, 80, 6, "gpt-4o"),
                "respond": Profile(2.0, 0.006, 200, 600, "gpt-4o"),
            }
        ),
        {("cheaper_model", "agents.labeler.model")},
    ),
    "flaky_validator": (
        Telemetry(profiles={"extract": Profile(0.5, 0.0002, 90, 12, "gpt-4o-mini", fail_every=5)}),
        {("flaky_validator", "steps[0]")},
    ),
    "timeouts": (
        Telemetry(
            profiles={
                "draft": Profile(3.0, 0.0004, 90, 200, "gpt-4o-mini", 5, TIMEOUT),
                "check": Profile(1.0, 0.0001, 90, 200, "gpt-4o-mini"),
            }
        ),
        {("frequent_timeouts", "steps[0]"), ("loose_timeout", "steps[1]")},
    ),
    "parallel": (
        Telemetry(
            profiles={
                "sentiment": Profile(0.8, 0.0002, 50, 300, "gpt-4o-mini"),
                "language": Profile(0.6, 0.0002, 50, 300, "gpt-4o-mini"),
                "report": Profile(0.001),
            }
        ),
        {("parallelizable", "steps[0]")},
    ),
    "unused": (
        Telemetry(
            profiles={
                "keywords": Profile(0.7, 0.001, 50, 300, "gpt-4o-mini"),
                "answer": Profile(1.5, 0.002, 50, 300, "gpt-4o-mini"),
            }
        ),
        {("unused_output", "steps[0]")},
    ),
    "usage_limit": (
        Telemetry(
            usage_limit_every=5,
            profiles={"write": Profile(1.0, 0.0005, 100, 500, "gpt-4o-mini")},
        ),
        {("usage_limit_hits", "usage_limits.total_tokens")},
    ),
    "expensive": (
        Telemetry(
            profiles={
                "clean": Profile(0.001),
                "summarise": Profile(2.0, 0.002, 800, 300, "gpt-4.1-mini", long_every=25),
            }
        ),
        {("expensive_step", "steps[1]")},
    ),
    "retries": (
        Telemetry(
            profiles={
                "fetch": Profile(
                    0.3, 0.0001, 20, 200, "gpt-4o-mini", 4, CONNECTION, fail_for_good_every=10
                )
            }
        ),
        {("frequent_retries", "steps[0]")},
    ),
    "long_prompt": (
        Telemetry(profiles={"tag": Profile(0.3, 0.0002, 1400, 3, "gpt-4o-mini")}),
        {("long_prompt", "agents.tagger.system_prompt")},
    ),
    "loop_max": (
        Telemetry(
            profiles={
                "refine": Profile(2.0, kind="loop", loop_max=4),
                "polish": Profile(0.5, 0.0004, 300, 250, "gpt-4o-mini"),
            }
        ),
        {("loop_at_max", "steps[0]")},
    ),
    "repeated_call": (
        Telemetry(
            profiles={
                "summary": Profile(0.8, 0.0002, 400, 60, "gpt-4o-mini"),
                "headline": Profile(0.3, 0.00005, 80, 12, "gpt-4o-mini"),
                "summary_again": Profile(0.8, 0.0002, 400, 60, "gpt-4o-mini"),
                "page": Profile(0.3, 0.00005, 80, 12, "gpt-4o-mini"),
            }
        ),
        {("repeated_call", "steps[2]")},
    ),
    "fallback": (
        Telemetry(
            profiles={
                "answer": Profile(
                    0.2,
                    0.0,
                    30,
                    None,
                    "gpt-4o-mini-2099",
                    error=NOT_FOUND,
                    fail_for_good_every=1,
                    attempts=3,
                    cause="provider",
                    rescued=True,
                ),
                "answer_backup": Profile(0.6, 0.0001, 30, 40, "gpt-4o-mini", fallback_for="answer"),
            }
        ),
        {("fallback_rescues", "steps[0]")},
    ),
    "clean": (
        Telemetry(
            profiles={
                "retrieve": Profile(0.001),
                "answer": Profile(2.0, 0.0003, 100, 300, "gpt-4o-mini"),
            }
        ),
        set(),
    ),
}
