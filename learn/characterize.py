"""Characterisation: run every plannable skill on its sample set and record its figures
(cost, latency p50/p95, successes), the marketplace's baseline (`flujo registry
characterize`).

Model-backed skills run as a one-step pipeline through the engine, on the fake model
server or a live provider (the figures record which); built-in skills are called
directly on their samples. Runs are not stored: they are measurements, not traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flujo.spec.figures import money
from flujo.spec.registry import StepRegistry
from flujo.spec.skill_figures import Figures, Manifest, figures_of

SALES_SCHEMA = (
    "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, country TEXT);\n"
    "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL, placed_at TEXT);"
)
BUILTIN_SAMPLES: dict[str, dict[str, Any]] = {
    "json_parse": {
        "inputs": [
            '{"a": 1}',
            "```json\n[1, 2, 3]\n```",
            '"text"',
            '{"nested": {"b": [true, null]}}',
        ],
    },
    "json_dump": {"inputs": [{"a": 1}, [1, 2, 3], "text", {"nested": {"b": [True, None]}}]},
    "sql_validate": {
        "params": {"schema": SALES_SCHEMA},
        "inputs": [
            "SELECT count(*) FROM customers",
            "SELECT c.country, sum(o.total) FROM orders o JOIN customers c"
            " ON c.id = o.customer_id GROUP BY c.country",
            "SELECT name FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)",
            "SELECT avg(total) FROM orders WHERE placed_at LIKE '2026-%'",
        ],
    },
}


@dataclass
class Characterisation:
    """What a characterisation run measured, and what it left out."""

    manifest: Manifest
    spent_usd: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)
    """Skill name -> why it was not (fully) measured."""


async def characterize(
    registry: StepRegistry,
    *,
    provider: str = "fake",
    samples: int | None = None,
    max_cost_usd: float | None = None,
    only: Sequence[str] = (),
    base_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Characterisation:
    """Measure the skills (`only`: these names) on up to `samples` samples each."""
    from flujo.spec.skill_packs import model_skills

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = Characterisation(Manifest(now, provider))
    packs = model_skills()
    for name, sample_set in BUILTIN_SAMPLES.items():
        if only and name not in only:
            continue
        inputs = sample_set["inputs"][:samples]
        fn = registry.resolve(name)
        params = sample_set.get("params", {})
        result.manifest.figures[name] = figures_of([_call(fn, v, params) for v in inputs], "none")
        if progress:
            progress(name)
    for name, pack in packs.items():
        if only and name not in only:
            continue
        outcomes, stopped = await _run_pack(
            registry, pack, provider, samples, max_cost_usd, result, base_url
        )
        if outcomes:
            result.manifest.figures[name] = figures_of(outcomes, provider)
        if stopped:
            result.skipped[name] = stopped
        if progress:
            progress(name)
    return result


def _call(fn: Any, value: Any, params: dict[str, Any]) -> tuple[bool, float | None, float]:
    started = time.perf_counter()
    try:
        fn(value, **params)
        ok = True
    except Exception:
        ok = False
    return ok, 0.0, time.perf_counter() - started


async def _run_pack(
    registry: StepRegistry,
    pack: Any,
    provider: str,
    samples: int | None,
    max_cost_usd: float | None,
    result: Characterisation,
    base_url: str | None,
) -> tuple[list[tuple[bool, float | None, float]], str | None]:
    from flujo.engine.session import SessionOptions, session
    from flujo.spec.fragment import fragment, fragment_text
    from flujo.spec.load import load_pipeline

    params = pack.samples.params
    pipeline = load_pipeline(fragment_text(fragment([pack.name], params, name=pack.name)))
    options = SessionOptions(
        fake=provider == "fake",
        base_url=base_url,
        use_store=False,
        export=False,
        origin="eval",
    )
    outcomes: list[tuple[bool, float | None, float]] = []
    async with session(pipeline, options, registry) as runner:
        for value in pack.samples.inputs[:samples]:
            if max_cost_usd is not None and outcomes:
                per_call = result.spent_usd / max(len(outcomes), 1)
                if result.spent_usd + per_call > max_cost_usd:
                    return outcomes, f"stopped at the budget ({money(max_cost_usd)})"
            run = await runner.run(value)
            cost = run.total_cost_usd
            result.spent_usd += cost or 0.0
            outcomes.append((run.success, cost, run.latency_s))
    return outcomes, None


def success_text(figures: Figures) -> str:
    """`7/8 (0.53–0.98)`, or `not measured` (fake model)."""
    interval = figures.interval
    if interval is None:
        return "not measured"
    return f"{figures.successes}/{figures.samples} ({interval[0]:.2f}–{interval[1]:.2f})"


def describe(figures: Figures) -> str:
    """One line: successes with their interval, cost and p95 latency per call."""
    from flujo.spec.figures import money

    if figures.interval is None:
        success = f"success not measured ({figures.samples} samples, {figures.mode} model)"
    else:
        success = f"{success_text(figures)} succeeded"
    latency = (
        "latency not measured"
        if figures.latency_p95_s is None
        else f"p95 {figures.latency_p95_s * 1000:.0f} ms"
    )
    return f"{success}, {money(figures.cost_usd)} and {latency} per call"
