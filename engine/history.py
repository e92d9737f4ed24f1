"""Recorded runs as results that policies and assertions can read (`flujo policy check`).

Outputs are not kept in the store (no prompt or output text is), so `output` is None
and `steps.NAME.output` too; costs, tokens, latencies, attempts and statuses are there.
"""

from __future__ import annotations

from typing import Any

from flujo.engine.results import PipelineResult, StepResult, StepResults
from flujo.engine.store import RunStore


def recorded_results(
    store: RunStore,
    spec_paths: list[str],
    last: int,
    *,
    modes: tuple[str, ...] | None = None,
    excluded_origins: tuple[str, ...] = (),
) -> list[PipelineResult]:
    """The `last` finished runs of the spec (any version), newest first; a spec is known
    by the path it was run as (relative or absolute: pass every spelling). Only runs of
    `modes` (None: any) that none of `excluded_origins` started."""
    marks = ", ".join("?" * len(spec_paths))
    where = f"spec_path IN ({marks}) AND status != 'running'"
    args: tuple[object, ...] = tuple(spec_paths)
    if modes is not None:
        where += f" AND mode IN ({', '.join('?' * len(modes))})"
        args += tuple(modes)
    if excluded_origins:
        where += f" AND origin NOT IN ({', '.join('?' * len(excluded_origins))})"
        args += tuple(excluded_origins)
    rows = store.query(
        f"SELECT * FROM runs WHERE {where} ORDER BY started_at DESC LIMIT ?", (*args, last)
    )
    return [_result(row, store.spans(row["run_id"])) for row in rows]


def _result(row: dict[str, Any], spans: list[dict[str, Any]]) -> PipelineResult:
    steps = StepResults()
    for span in spans:
        name = span["step_name"]
        if not name:
            continue
        step = steps.get(name)
        if step is None:
            step = steps[name] = StepResult(name, span["kind"] or "step", span["yaml_path"] or "")
        step.attempts += 1
        step.success = span["status"] == "OK"
        step.error = span["error"]
        step.latency_s += ((span["end_ns"] or span["start_ns"]) - span["start_ns"]) / 1e9
        step.input_tokens += span["input_tokens"] or 0
        step.output_tokens += span["output_tokens"] or 0
        step.model = span["model"] or step.model
        if span["cost_usd"] is not None and step.cost_usd is not None:
            step.cost_usd += span["cost_usd"]
        elif span["model"] is not None and span["cost_usd"] is None:
            step.cost_usd = None
    return PipelineResult(
        run_id=row["run_id"],
        spec_sha256=row["spec_sha256"],
        status=row["status"],
        error=row["error"],
        error_path=row["error_path"],
        total_cost_usd=row["total_cost_usd"],
        total_tokens=row["total_tokens"] or 0,
        latency_s=row["latency_s"] or 0.0,
        steps=steps,
        mode=row.get("mode", "unknown"),
        origin=row.get("origin", "unknown"),
        cause=row.get("cause"),
    )
