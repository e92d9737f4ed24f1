"""Learning from JIT: a `jit` step that keeps making the same plan can be frozen into the
spec as the plan's ordinary steps (`stable_jit_plan`).

The finding rests on the plans the step's runs recorded (`flujo.jit.plan_sha256` on its
span) in the spec versions in which the step is as now: the last `RECENT_RUNS` of them, of
which at least `STABLE_SHARE` (and the latest) ran one plan. That plan is made again with
today's registry and must hash the same, so the steps written into the spec are exactly
the ones that ran. What freezing saves is what building the plan cost and took in the
runs that built it (measured on the step's spans; "not measured" when no run built it, for
example when every plan was replayed).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from flujo.engine.results import MODE_WORDS
from flujo.spec import paths
from flujo.spec.figures import count, money
from flujo.spec.model import JitStep

if TYPE_CHECKING:
    from flujo.learn.opportunities import Opportunity
    from flujo.learn.telemetry_view import JitRun, SpecTelemetry
    from flujo.spec.model import Pipeline
    from flujo.spec.registry import StepRegistry

RECENT_RUNS = 50
"""How many of the step's latest runs are weighed."""
MIN_PLAN_RUNS = 10
"""Fewer runs with a recorded plan than this say nothing about a plan's stability."""
STABLE_SHARE = 0.9
"""The share of those runs that must have run one plan (the latest run among them)."""


def find_stable_plans(
    pipeline: Pipeline, view: SpecTelemetry, registry: StepRegistry
) -> list[Opportunity]:
    found = []
    for path, step in pipeline.walk():
        if not isinstance(step, JitStep):
            continue
        stats = view.window_stats(step.name, path)
        if stats is None:
            continue
        stable = stable_plan(stats.plans)
        if stable is None:
            continue
        runs, recent = stable
        opportunity = _freeze(pipeline, path, step, runs, recent, registry)
        if opportunity is not None:
            found.append(opportunity)
    return found


def stable_plan(plans: list[JitRun]) -> tuple[list[JitRun], int] | None:
    """The runs (oldest first) that ran the one plan of the latest `RECENT_RUNS`, and how
    many runs were weighed; None when no plan is stable (too few runs, a share under
    `STABLE_SHARE`, or the latest run ran another plan)."""
    if len(plans) < MIN_PLAN_RUNS:
        return None
    recent = sorted(plans, key=lambda r: r.started_ns)[-RECENT_RUNS:]
    sha, same = Counter(r.sha256 for r in recent).most_common(1)[0]
    if same < STABLE_SHARE * len(recent) or recent[-1].sha256 != sha:
        return None
    return [r for r in recent if r.sha256 == sha], len(recent)


def _freeze(
    pipeline: Pipeline,
    path: str,
    step: JitStep,
    runs: list[JitRun],
    recent: int,
    registry: StepRegistry,
) -> Opportunity | None:
    from flujo.engine.jit import checked
    from flujo.learn.opportunities import Opportunity
    from flujo.spec.fragment import frozen_steps

    latest = runs[-1]
    plan = checked(step, latest.skills, registry, latest.builder)
    if isinstance(plan, str) or plan.sha256 != latest.sha256:
        return None  # today's registry would not make the plan that ran: nothing to freeze
    declared = {i.name: set(i.params) for i in registry.manifest() if i.name in plan.skills}
    for name in plan.skills:  # model-backed skills are not in the manifest of functions
        pack = registry.model_skill(name)
        if pack is not None:
            declared[name] = set(pack.params)
    keep: dict[str, Any] = {"description": step.description} if step.description else {}
    if step.critical:
        keep["critical"] = True
    steps = frozen_steps(
        plan.skills, step.with_, name=step.name, declared=declared, input=step.input, keep=keep
    )
    taken = {s.name for _, s in pipeline.walk()} - {step.name}
    if any(s["name"] in taken for s in steps):
        return None  # a step of the plan would take a name the spec already uses
    chain = " → ".join(plan.skills)
    modes = Counter(r.mode for r in runs)
    cost, latency, measured = builder_savings(runs)
    where = ", ".join(f"{n} {MODE_WORDS.get(mode, mode)}" for mode, n in sorted(modes.items()))
    why = (
        f"jit step '{step.name}' ran the same plan ({chain}) in {len(runs)} of its last "
        f"{count(recent, 'run')} (runs: {where}); written into the spec as ordinary steps, "
        "it is reviewed once and no longer planned at run time"
    )
    if measured:
        spent = "cost not measured" if cost is None else money(cost)
        why += (
            f", which saves what the {latest.builder} builder spends per run ({spent}, "
            f"{latency:.3f}s; measured in the {count(measured, 'run')} that built the plan)"
        )
    else:
        why += "; what the builder spends per run was not measured (no counted run built the plan)"
    evidence: dict[str, Any] = {
        "runs": recent,
        "events": len(runs),
        "sample_size": recent,
        "sample_unit": "runs",
        "plan": chain,
        "plan_sha256": latest.sha256,
        "builder": latest.builder,
        "runs_by_mode": ", ".join(f"{n} {mode}" for mode, n in sorted(modes.items())),
        "builder_cost_usd_per_run": round(cost, 8) if cost is not None else "not measured",
        "builder_latency_s_per_run": round(latency, 6) if measured else "not measured",
        "builder_runs_measured": measured,
    }
    return Opportunity(
        "stable_jit_plan",
        path,
        step.name,
        why,
        evidence,
        (paths.to_pointer(path),),
        max_ops=len(steps),
        facts={
            "steps": steps,
            "usd_per_run": cost or 0.0,
            "latency_saving_s": latency,
            "measured": measured,
            "plan": chain,
        },
    )


def builder_savings(runs: list[JitRun]) -> tuple[float | None, float, int]:
    """(USD, seconds) building the plan took per run, over the runs whose share of it is
    known (those that built it, and those that reused a plan their process had built), and
    how many runs built it (0: not measured). The cost is None when a built run's cost is
    unknown (a model builder without a price)."""
    built = [r for r in runs if r.source == "built" and r.builder_latency_s is not None]
    known = len(built) + sum(r.source == "reused" for r in runs)
    if not built:
        return None, 0.0, 0
    costs = [r.builder_cost_usd for r in built]
    cost = None if None in costs else sum(c or 0.0 for c in costs) / known
    latency = sum(r.builder_latency_s or 0.0 for r in built) / known
    return cost, latency, len(built)
