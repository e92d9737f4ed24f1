"""Many runs of one pipeline in one process: bounded concurrency and a summary.

`flujo run SPEC --inputs FILE.jsonl --jobs N` reads one JSON input a line and runs them
all in one session (one model client, one store), at most `jobs` at a time. A line that
is not JSON is kept as an `InputLineError` with its line number; the others still run.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flujo.engine.results import PipelineResult, how_run
from flujo.engine.session import SessionOptions, session
from flujo.spec.figures import money
from flujo.spec.model import Pipeline


@dataclass(frozen=True)
class InputLine:
    """One input of a batch, with the line (1-based) it came from."""

    line: int
    value: Any


@dataclass(frozen=True)
class InputLineError:
    """A line of the inputs file that is not a JSON value."""

    line: int
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.error}


def parse_input_lines(lines: Iterable[str]) -> list[InputLine | InputLineError]:
    """Each non-blank line as JSON (JSON Lines); a line that does not parse is an error."""
    items: list[InputLine | InputLineError] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            items.append(InputLine(number, json.loads(text)))
        except json.JSONDecodeError as exc:
            items.append(InputLineError(number, f"not JSON: {exc.msg} at column {exc.colno}"))
    return items


def read_input_lines(path: Path) -> list[InputLine | InputLineError]:
    """The inputs of `path` (JSON Lines, UTF-8); raises OSError when it cannot be read."""
    with path.open(encoding="utf-8") as lines:
        return parse_input_lines(lines)


async def run_batch(
    pipeline: Pipeline,
    inputs: Sequence[InputLine],
    options: SessionOptions,
    jobs: int = 1,
    on_result: Callable[[InputLine, PipelineResult], None] | None = None,
) -> list[PipelineResult]:
    """Run the pipeline once per input in one session, at most `jobs` runs at a time;
    the results are in the order of `inputs`."""
    results: list[PipelineResult | None] = [None] * len(inputs)
    async with session(pipeline, options) as runner:
        queue = iter(enumerate(inputs))

        async def worker() -> None:
            for index, item in queue:  # shared iterator: each input is taken once
                result = await runner.run(item.value)
                results[index] = result
                if on_result is not None:
                    on_result(item, result)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(jobs, len(inputs))))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    return [result for result in results if result is not None]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by the nearest-rank method; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class BatchSummary:
    """What a batch did: runs by outcome and cause, cost, latency percentiles."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    failed_by_cause: dict[str, int] = field(default_factory=dict)
    input_errors: int = 0
    total_cost_usd: float | None = 0.0
    total_tokens: int = 0
    latency_s: dict[str, float | None] = field(default_factory=dict)
    wall_s: float = 0.0
    jobs: int = 1
    mode: str = "live"
    """How the runs reached their models (`results.MODE_WORDS`)."""

    @classmethod
    def of(
        cls,
        results: Sequence[PipelineResult],
        errors: Sequence[InputLineError] = (),
        *,
        wall_s: float = 0.0,
        jobs: int = 1,
    ) -> BatchSummary:
        failed = [r for r in results if not r.success]
        causes = Counter(r.cause or "unknown" for r in failed)
        costs = [r.total_cost_usd for r in results]
        latencies = [r.latency_s for r in results]
        return cls(
            runs=len(results),
            succeeded=len(results) - len(failed),
            failed=len(failed),
            failed_by_cause=dict(sorted(causes.items())),
            input_errors=len(errors),
            total_cost_usd=None if None in costs else sum(c or 0.0 for c in costs),
            total_tokens=sum(r.total_tokens for r in results),
            latency_s={
                "p50": percentile(latencies, 50),
                "p90": percentile(latencies, 90),
                "p99": percentile(latencies, 99),
                "max": max(latencies) if latencies else None,
            },
            wall_s=wall_s,
            jobs=jobs,
            mode=results[0].mode if results else "live",
        )

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.input_errors == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failed_by_cause": self.failed_by_cause,
            "input_errors": self.input_errors,
            "total_cost_usd": self.total_cost_usd,
            "total_tokens": self.total_tokens,
            "latency_s": self.latency_s,
            "wall_s": self.wall_s,
            "jobs": self.jobs,
            "mode": self.mode,
        }

    def lines(self) -> list[str]:
        """The summary as text, for the terminal."""
        causes = ", ".join(f"{cause} {n}" for cause, n in self.failed_by_cause.items())
        head = (
            f"{self.runs} runs in {self.wall_s:.2f}s ({self.jobs} at a time): "
            f"{self.succeeded} succeeded, {self.failed} failed" + (f" ({causes})" if causes else "")
        )
        if self.input_errors:
            head += (
                f"; {self.input_errors} input line{'s' if self.input_errors > 1 else ''} skipped"
            )
        cost = money(self.total_cost_usd)
        text = [head, f"cost {cost}, {self.total_tokens} tokens{how_run(self.mode)}"]
        if self.runs:
            text.append(
                "latency "
                + ", ".join(
                    f"{name} {value * 1000:.0f} ms"
                    for name, value in self.latency_s.items()
                    if value is not None
                )
            )
        return text
