"""Recorded telemetry of one spec, as per-step statistics on the current spec.

Runs of every version of the spec are read (matched by pipeline name, file or
spec_sha256). A span recorded against an older version is mapped to the current spec by
its step name, or failing that through its yaml_path when the step there is of the same
kind; spans of steps that no longer exist are counted but not attributed.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flujo.engine.store import RunStore
    from flujo.spec.model import Pipeline, StepBase

DAY_S = 86_400.0
MOCKED = '"flujo.step.mocked":true'
_LIMIT = re.compile(r"usage limit (\w+) ")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of `values`; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class StepStats:
    """What the runs say about one step of the current spec."""

    name: str
    yaml_path: str
    runs: int = 0
    """Runs in which the step ran at least once."""
    attempts: int = 0
    failed_runs: int = 0
    """Runs in which every attempt of the step failed."""
    retried_runs: int = 0
    timeouts: int = 0
    validator_failures: int = 0
    errors: int = 0
    """Failed attempts (timeouts and validator failures included)."""
    cost_usd: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    """Duration of each successful attempt."""
    output_tokens: list[int] = field(default_factory=list)
    input_tokens: list[int] = field(default_factory=list)
    models: Counter[str] = field(default_factory=Counter)

    @property
    def cost_per_run(self) -> float:
        return self.cost_usd / self.runs if self.runs else 0.0

    @property
    def validator_failure_rate(self) -> float:
        return self.validator_failures / self.attempts if self.attempts else 0.0

    @property
    def timeout_rate(self) -> float:
        return self.timeouts / self.attempts if self.attempts else 0.0

    @property
    def retry_rate(self) -> float:
        return self.retried_runs / self.runs if self.runs else 0.0

    @property
    def success_rate(self) -> float:
        return 1 - self.failed_runs / self.runs if self.runs else 0.0

    def latency(self, q: float) -> float:
        return percentile(self.latencies_s, q)

    def tokens_out(self, q: float) -> float:
        return percentile([float(t) for t in self.output_tokens], q)

    def mean(self, values: list[int]) -> float:
        return sum(values) / len(values) if values else 0.0


@dataclass
class SpecTelemetry:
    """Runs and per-step statistics of a spec over a window."""

    runs: int = 0
    succeeded: int = 0
    versions: int = 0
    usage_limit_hits: int = 0
    usage_limits_crossed: Counter[str] = field(default_factory=Counter)
    """Which limit (`total_cost_usd`, `total_tokens`) stopped how many runs."""
    run_costs: list[float] = field(default_factory=list)
    run_latencies_s: list[float] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    unmapped_spans: int = 0
    steps: dict[str, StepStats] = field(default_factory=dict)
    """By step name (of the current spec)."""

    @property
    def total_cost_usd(self) -> float:
        return sum(self.run_costs)

    @property
    def runs_per_day(self) -> float:
        """Observed run rate; a window shorter than a day counts as one day."""
        if not self.runs or self.first_at is None or self.last_at is None:
            return 0.0
        return self.runs / max((self.last_at - self.first_at) / DAY_S, 1.0)

    @property
    def runs_per_month(self) -> float:
        return self.runs_per_day * 30

    def cost_share(self, step: str) -> float:
        total = sum(s.cost_usd for s in self.steps.values())
        stats = self.steps.get(step)
        return stats.cost_usd / total if stats and total > 0 else 0.0


def load_view(
    store: RunStore, pipeline: Pipeline, *, since_s: float | None = None, now: float | None = None
) -> SpecTelemetry:
    """Telemetry of `pipeline` (all its versions) from `store`, optionally only the runs
    that started in the last `since_s` seconds."""
    where, args = _run_filter(pipeline, since_s, now)
    view = SpecTelemetry()
    runs = store.query(
        f"SELECT run_id, spec_sha256, status, started_at, latency_s, total_cost_usd, error,"
        f" error_path FROM runs r WHERE {where}",
        args,
    )
    if not runs:
        return view
    view.runs = len(runs)
    view.versions = len({r["spec_sha256"] for r in runs})
    for run in runs:
        view.succeeded += run["status"] == "succeeded"
        view.run_costs.append(run["total_cost_usd"] or 0.0)
        view.run_latencies_s.append(run["latency_s"] or 0.0)
        crossed = _LIMIT.match(run["error"] or "")
        if crossed:
            view.usage_limit_hits += 1
            view.usage_limits_crossed[crossed.group(1)] += 1
    started = [r["started_at"] for r in runs]
    view.first_at, view.last_at = min(started), max(started)
    _add_spans(view, store, pipeline, where, args)
    return view


def _run_filter(
    pipeline: Pipeline, since_s: float | None, now: float | None
) -> tuple[str, tuple[Any, ...]]:
    """SQL condition on `runs r` selecting the finished runs of every version of the spec."""
    clauses = ["r.spec_sha256 = ?"]
    args: list[Any] = [pipeline.spec_sha256]
    if pipeline.name:
        clauses.append("r.pipeline = ?")
        args.append(pipeline.name)
    if pipeline.file and pipeline.file != "<string>":
        clauses.append("r.spec_path = ?")
        args.append(pipeline.file)
    where = f"({' OR '.join(clauses)}) AND r.status != 'running'"
    if since_s is not None:
        where += " AND r.started_at >= ?"
        args.append((now if now is not None else time.time()) - since_s)
    return where, tuple(args)


def _add_spans(
    view: SpecTelemetry, store: RunStore, pipeline: Pipeline, where: str, args: tuple[Any, ...]
) -> None:
    current = {step.name: (path, step) for path, step in pipeline.walk()}
    by_path = {path: step for path, step in current.values()}
    rows = store.query(
        "SELECT r.spec_sha256 AS sha, s.run_id, s.step_name, s.kind, s.yaml_path, s.attempt,"
        " s.status, s.error, s.start_ns, s.end_ns, s.cost_usd, s.input_tokens,"
        " s.output_tokens, s.model"
        " FROM spans s JOIN runs r ON r.run_id = s.run_id"
        f" WHERE {where}"
        "   AND s.step_name IS NOT NULL AND instr(s.attributes, ?) = 0"
        " ORDER BY s.run_id, s.start_ns",
        (*args, MOCKED),
    )
    names_by_version: dict[str, set[str]] = {}
    for row in rows:
        names_by_version.setdefault(row["sha"], set()).add(row["step_name"])
    per_run: dict[tuple[str, str], list[bool]] = {}
    for row in rows:
        name = _current_name(row, current, by_path, names_by_version[row["sha"]])
        if name is None:
            view.unmapped_spans += 1
            continue
        path, _ = current[name]
        stats = view.steps.get(name)
        if stats is None:
            stats = view.steps[name] = StepStats(name, path)
        stats.attempts += 1
        ok = row["status"] == "OK"
        per_run.setdefault((row["run_id"], name), []).append(ok)
        error = row["error"] or ""
        if not ok:
            stats.errors += 1
            stats.timeouts += error.startswith("timed out")
            stats.validator_failures += error.startswith("validator failed")
        elif row["end_ns"]:
            stats.latencies_s.append((row["end_ns"] - row["start_ns"]) / 1e9)
        stats.cost_usd += row["cost_usd"] or 0.0
        if row["output_tokens"] is not None:
            stats.output_tokens.append(row["output_tokens"])
        if row["input_tokens"] is not None:
            stats.input_tokens.append(row["input_tokens"])
        if row["model"]:
            stats.models[row["model"]] += 1
    for (_, name), outcomes in per_run.items():
        stats = view.steps[name]
        stats.runs += 1
        stats.retried_runs += len(outcomes) > 1
        stats.failed_runs += not any(outcomes)


def _current_name(
    row: dict[str, Any],
    current: dict[str, tuple[str, StepBase]],
    by_path: dict[str, StepBase],
    old_names: set[str],
) -> str | None:
    """The current step a span belongs to: the same name, or a renamed step at the same
    yaml_path (same kind, and a name the span's version did not have)."""
    name: str = row["step_name"]
    if name in current:
        return name
    step = by_path.get(row["yaml_path"] or "")
    if step is not None and step.kind == row["kind"] and step.name not in old_names:
        return step.name
    return None
