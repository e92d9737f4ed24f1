"""Opportunity engine: what the telemetry says could be better in a spec, with evidence.

Each finding names the yaml_path it concerns, says why in one sentence with numbers, and
bounds what a patch for it may touch (`scope`: JSON Pointers; `max_ops`). The rules and
their thresholds are below, one constant each.

Evidence for a finding at a yaml_path comes only from runs of spec versions in which that
path had its current value (a merged change starts the count again), and each finding
says how many events it rests on (`events` of `sample_size`), from which its confidence
is computed. Retry, timeout and repair findings count only failures of cause `model` or
`provider` that another attempt may fix (never a usage limit, the harness, the input or
a provider's permanent 4xx answer).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flujo.spec import paths
from flujo.spec.figures import money
from flujo.spec.model import AgentStep, Pipeline, StepBase

if TYPE_CHECKING:
    from flujo.learn.telemetry_view import SpecTelemetry, StepStats
    from flujo.spec.registry import StepRegistry

Kind = Literal[
    "expensive_step",
    "cheaper_model",
    "flaky_validator",
    "frequent_timeouts",
    "frequent_retries",
    "loose_timeout",
    "parallelizable",
    "unused_output",
    "usage_limit_hits",
    "long_prompt",
    "loop_at_max",
    "repeated_call",
    "fallback_rescues",
    "stable_jit_plan",
]
KINDS: tuple[Kind, ...] = Kind.__args__  # type: ignore[attr-defined]

MIN_RUNS = 5
"""Fewer runs of a step than this say nothing about it."""
EXPENSIVE_SHARE = 0.4
SHORT_OUTPUT_TOKENS = 100
"""p95 of output tokens at or below which a step's outputs count as short."""
VALIDATOR_FAILURE_RATE = 0.1
TIMEOUT_RATE = 0.05
RETRY_RATE = 0.2
LOOSE_TIMEOUT_FACTOR = 10.0
MIN_TIMEOUT_S = 15
"""Never suggest a timeout below this: model latency varies far more than a sample shows."""
USAGE_LIMIT_RATE = 0.05
PARALLEL_MIN_SAVING_S = 0.05
RETRIES_WITH_FEEDBACK = 2
MAX_RETRIES_SUGGESTED = 5
MAX_TOKENS_FACTOR = 1.5
"""A suggested max_tokens is this times the observed p95 of output tokens."""

CHEAPER_MODEL = {
    "gpt-4": "gpt-4o-mini",
    "gpt-4-turbo": "gpt-4o-mini",
    "gpt-4o": "gpt-4o-mini",
    "gpt-4o-2024-05-13": "gpt-4o-mini",
    "gpt-4.1": "gpt-4.1-mini",
    "gpt-4.1-mini": "gpt-4.1-nano",
    "gpt-5": "gpt-5-mini",
    "gpt-5-mini": "gpt-5-nano",
    "o1": "o4-mini",
    "o3": "o4-mini",
}
"""A smaller model of the same family, for steps whose outputs are short and checked."""


@dataclass(frozen=True)
class Opportunity:
    """One thing worth changing, with the evidence for it."""

    kind: Kind
    yaml_path: str
    step: str | None
    why: str
    evidence: dict[str, Any]
    scope: tuple[str, ...]
    """JSON Pointers a patch for this opportunity may touch (each with what is below it)."""
    max_ops: int = 2
    facts: dict[str, Any] = field(default_factory=dict)
    """What a rule-based agent needs to write the patch (new values, names)."""

    def allows(self, pointer: str) -> bool:
        return any(pointer == p or pointer.startswith(p + "/") for p in self.scope)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "yaml_path": self.yaml_path,
            "step": self.step,
            "why": self.why,
            "evidence": self.evidence,
            "scope": list(self.scope),
            "max_ops": self.max_ops,
        }


def find_opportunities(
    pipeline: Pipeline, view: SpecTelemetry, registry: StepRegistry | None = None
) -> list[Opportunity]:
    """Every opportunity the telemetry supports, in spec order within each kind;
    `registry`: the skills a frozen jit plan may use (default: the built-in ones)."""
    found: list[Opportunity] = []
    found += _cheaper_models(pipeline, view)
    cheap_agents = {o.facts["agent"] for o in found}
    for path, step in pipeline.walk():
        if not isinstance(step, AgentStep):
            continue
        stats = view.window_stats(step.name, path)
        if stats is None or stats.runs < MIN_RUNS:
            continue
        found += _expensive(pipeline, view, path, step, stats, cheap_agents)
        found += _flaky_validator(view, path, step, stats)
        found += _timeouts(view, path, step, stats)
    found += _structure(pipeline, view)
    found += _usage_limits(pipeline, view)
    from flujo.learn.waste import find_waste

    found += find_waste(pipeline, view)
    from flujo.learn.jit_freeze import find_stable_plans
    from flujo.spec.registry import StepRegistry

    found += find_stable_plans(pipeline, view, registry or StepRegistry())
    return found


def _evidence(
    stats: StepStats,
    view: SpecTelemetry,
    events: int | None = None,
    sample_size: int | None = None,
    unit: str = "runs",
    **extra: Any,
) -> dict[str, Any]:
    """The figures behind a finding: `events` of `sample_size` `unit` (default: every
    run) are what its confidence is computed from."""
    return {
        "runs": stats.runs,
        "events": stats.runs if events is None else events,
        "sample_size": stats.runs if sample_size is None else sample_size,
        "sample_unit": unit,
        "attempts": stats.attempts,
        "cost_share": round(view.cost_share(stats.name), 4),
        "cost_usd_per_run": round(stats.cost_per_run, 8),
        # not measured without a successful attempt (None, never 0)
        "latency_p50_s": round(stats.latency(50), 4) if stats.latencies_s else None,
        "latency_p99_s": round(stats.latency(99), 4) if stats.latencies_s else None,
        **extra,
    }


def _agent_of(step: StepBase) -> str | None:
    uses = step.uses if isinstance(step, AgentStep) else None
    return uses.removeprefix("agents.") if uses and uses.startswith("agents.") else None


def _cheaper_models(pipeline: Pipeline, view: SpecTelemetry) -> list[Opportunity]:
    out = []
    users: dict[str, list[tuple[str, AgentStep]]] = {}
    for path, step in pipeline.walk():
        used = _agent_of(step)
        if used is not None and isinstance(step, AgentStep):
            users.setdefault(used, []).append((path, step))
    for name, agent in pipeline.agents.items():
        provider, _, model = agent.model.partition(":")
        cheaper = CHEAPER_MODEL.get(model.lower())
        steps = users.get(name, [])
        if cheaper is None or provider != "openai" or not steps:
            continue
        model_path = paths.child(paths.child("agents", name), "model")
        stats = [view.window_stats(step.name, model_path) for _, step in steps]
        if any(s is None or s.runs < MIN_RUNS for s in stats):
            continue
        checked = agent.output_schema is not None or all(step.validators for _, step in steps)
        known = [s for s in stats if s is not None]
        p95 = max(s.tokens_out(95) for s in known)
        clean = all(s.validator_failures == 0 and s.failed_runs == 0 for s in known)
        if not (checked and clean and p95 <= SHORT_OUTPUT_TOKENS):
            continue
        runs = min(s.runs for s in known)
        share = sum(view.cost_share(s.name) for s in known)
        why = (
            f"agent '{name}' runs {model} for {', '.join(s.name for s in known)}: outputs are "
            f"short (p95 {p95:.0f} tokens) and its checks passed in all {runs} runs; "
            f"{cheaper} should do at a fraction of the cost"
        )
        evidence = _evidence(known[0], view, output_tokens_p95=p95, cost_share=round(share, 4))
        evidence["steps"] = [s.name for s in known]
        out.append(
            Opportunity(
                "cheaper_model",
                paths.child(paths.child("agents", name), "model"),
                known[0].name if len(known) == 1 else None,
                why,
                evidence,
                (paths.to_pointer(paths.child(paths.child("agents", name), "model")),),
                max_ops=1,
                facts={"agent": name, "model": agent.model, "suggested": f"openai:{cheaper}"},
            )
        )
    return out


def _expensive(
    pipeline: Pipeline,
    view: SpecTelemetry,
    path: str,
    step: AgentStep,
    stats: StepStats,
    skip_agents: set[str],
) -> list[Opportunity]:

    share = view.cost_share(step.name)
    agent = _agent_of(step)
    if agent is None or agent in skip_agents or share < EXPENSIVE_SHARE:
        return []
    if agent not in pipeline.agents or pipeline.agents[agent].max_tokens is not None:
        return []
    p95 = stats.tokens_out(95)
    cap = max(64, int(math.ceil(p95 * MAX_TOKENS_FACTOR / 16) * 16))
    runaway = [t for t in stats.output_tokens if t > cap]
    price = view.price(pipeline.agents[agent].model)
    if not runaway or price is None or stats.runs == 0:
        return []  # no reply observed above the cap: nothing would be saved
    saved = sum(t - cap for t in runaway) * float(price.output) / 1_000_000 / stats.runs
    if saved <= 0:
        return []
    why = (
        f"step '{step.name}' takes {share:.0%} of the spec's cost and its agent '{agent}' has "
        f"no max_tokens; {len(runaway)} of {len(stats.output_tokens)} replies were longer "
        f"than {cap} tokens ({MAX_TOKENS_FACTOR:g}x the observed p95 of {p95:.0f}), up to "
        f"{max(runaway)}: capping there saves what they spent beyond it"
    )
    return [
        Opportunity(
            "expensive_step",
            path,
            step.name,
            why,
            _evidence(
                stats,
                view,
                len(runaway),
                len(stats.output_tokens),
                "replies",
                output_tokens_p95=p95,
                replies_over_cap=len(runaway),
            ),
            (paths.to_pointer(f"agents.{agent}.max_tokens"),),
            max_ops=1,
            facts={"agent": agent, "max_tokens": cap, "usd_per_run": saved},
        )
    ]


def _flaky_validator(
    view: SpecTelemetry, path: str, step: AgentStep, stats: StepStats
) -> list[Opportunity]:
    rate = stats.validator_failure_rate
    retries = step.config.max_retries
    if rate < VALIDATOR_FAILURE_RATE or retries >= RETRIES_WITH_FEEDBACK:
        return []
    why = (
        f"validators of '{step.name}' rejected {stats.validator_failures} of {stats.attempts} "
        f"attempts ({rate:.0%}) and the step has {retries} retries; retrying with the "
        "validator's message fed back usually repairs the output"
    )
    return [
        Opportunity(
            "flaky_validator",
            path,
            step.name,
            why,
            _evidence(
                stats,
                view,
                stats.validator_failures,
                stats.attempts,
                "attempts",
                validator_failure_rate=round(rate, 4),
                failed_runs=stats.failed_runs,
            ),
            (paths.to_pointer(f"{path}.config"),),
            facts={"max_retries": RETRIES_WITH_FEEDBACK, "failure_rate": rate},
        )
    ]


def _timeouts(
    view: SpecTelemetry, path: str, step: AgentStep, stats: StepStats
) -> list[Opportunity]:
    config = step.config
    out = []
    p99 = stats.latency(99)
    if config.timeout_s is not None and stats.timeout_rate >= TIMEOUT_RATE:
        new = math.ceil(max(p99 * 2, config.timeout_s * 2))
        why = (
            f"'{step.name}' timed out in {stats.timeouts} of {stats.attempts} attempts "
            f"({stats.timeout_rate:.0%}) at timeout_s {config.timeout_s:g}; successful "
            f"attempts take up to {p99:.2f}s (p99)"
        )
        out.append(
            Opportunity(
                "frequent_timeouts",
                path,
                step.name,
                why,
                _evidence(
                    stats,
                    view,
                    stats.timeouts,
                    stats.attempts,
                    "attempts",
                    timeout_rate=round(stats.timeout_rate, 4),
                ),
                (paths.to_pointer(f"{path}.config"),),
                facts={"timeout_s": min(new, 86400), "failure_rate": stats.timeout_rate},
            )
        )
    elif (
        config.timeout_s is not None
        and stats.timeouts == 0
        and len(stats.latencies_s) >= MIN_RUNS
        and config.timeout_s >= LOOSE_TIMEOUT_FACTOR * p99
        and config.timeout_s >= 4 * max(MIN_TIMEOUT_S, math.ceil(p99 * 3))
    ):
        new = max(MIN_TIMEOUT_S, math.ceil(p99 * 3))
        why = (
            f"timeout_s of '{step.name}' is {config.timeout_s:g}s while its p99 is {p99:.2f}s "
            f"over {len(stats.latencies_s)} attempts; a hung call waits "
            f"{config.timeout_s / max(p99, 0.001):.0f}x longer than needed"
        )
        out.append(
            Opportunity(
                "loose_timeout",
                path,
                step.name,
                why,
                _evidence(stats, view, len(stats.latencies_s), len(stats.latencies_s), "attempts"),
                (paths.to_pointer(f"{path}.config.timeout_s"),),
                max_ops=1,
                facts={"timeout_s": new},
            )
        )
    transient_rate = stats.transient_runs / stats.runs if stats.runs else 0.0
    if stats.transient_errors > 0 and (
        transient_rate >= RETRY_RATE or stats.transient_failed_runs > 0
    ):
        retries = min(config.max_retries + 1, MAX_RETRIES_SUGGESTED)
        if retries > config.max_retries:
            failure = stats.transient_failed_runs / stats.runs
            why = (
                f"'{step.name}' had a failure another attempt may fix in "
                f"{_count(stats.transient_runs, 'run')} of {stats.runs} "
                f"({_count(stats.transient_errors, 'failure')} in {stats.runs} runs of spec "
                f"versions with its current settings; causes: {_causes(stats)}) and failed "
                f"for good in {stats.transient_failed_runs} of them"
                + (
                    f" after {_attempts(stats.failed_run_attempts)}"
                    if stats.failed_run_attempts
                    else ""
                )
            )
            out.append(
                Opportunity(
                    "frequent_retries",
                    path,
                    step.name,
                    why,
                    _evidence(
                        stats,
                        view,
                        stats.transient_runs,
                        stats.runs,
                        retry_rate=round(transient_rate, 4),
                        failed_runs=stats.transient_failed_runs,
                    ),
                    (paths.to_pointer(f"{path}.config"),),
                    facts={"max_retries": retries, "failure_rate": failure},
                )
            )
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _causes(stats: StepStats) -> str:
    return ", ".join(f"{cause} {n}" for cause, n in sorted(stats.causes.items()))


def _attempts(per_run: list[int]) -> str:
    """'1 attempt', '3 attempts', '1 to 3 attempts' (what the failed runs made)."""
    low, high = min(per_run), max(per_run)
    return _count(low, "attempt") if low == high else f"{low} to {high} attempts"


# -- structure: parallelism and unused outputs ----------------------------------------------


def _structure(pipeline: Pipeline, view: SpecTelemetry) -> list[Opportunity]:
    out: list[Opportunity] = []
    text = pipeline.source.text if pipeline.source is not None else pipeline.to_yaml()
    mocks: dict[str, list[str]] = {}
    for t, test in enumerate(pipeline.tests):
        for name in test.mocks:
            mocks.setdefault(name, []).append(f"tests[{t}].mocks.{name}")
    for list_path, steps in _step_lists(pipeline):
        taken: set[int] = set()
        for i, step in enumerate(steps):
            if not isinstance(step, AgentStep) or i + 1 >= len(steps):
                continue
            follower = steps[i + 1]
            stats = view.window_stats(step.name, f"{list_path}[{i}]")
            if stats is None or stats.runs < MIN_RUNS:
                continue
            if not reads_previous(follower) and not _referenced(step.name, text):
                if _agent_of(step) is not None:
                    out.append(_unused(list_path, i, step, stats, view, mocks.get(step.name, [])))
                continue
            out += _parallel(pipeline, view, list_path, steps, i, taken, text)
    return out


def _step_lists(pipeline: Pipeline) -> list[tuple[str, list[Any]]]:
    lists: list[tuple[str, list[Any]]] = [("steps", list(pipeline.steps))]
    for path, step in pipeline.walk():
        for field_path, step_list in step.children():
            lists.append((f"{path}.{field_path}.steps", list(step_list.steps)))
    return lists


def reads_previous(step: StepBase) -> bool:
    """Whether a step takes the previous step's output (implicitly or by name)."""
    if not isinstance(step, AgentStep):
        return True  # conservative: containers pass `previous` on
    return step.input is None or "previous" in repr(step.input) or "previous" in repr(step.with_)


def _referenced(name: str, text: str) -> bool:
    return (
        re.search(rf"steps\s*(\.\s*{re.escape(name)}\b|\[\s*['\"]{re.escape(name)}['\"])", text)
        is not None
    )


def refers_to(step: StepBase, name: str) -> bool:
    dumped = repr(step.model_dump(by_alias=True))
    return (
        re.search(rf"steps\s*(\.\s*{re.escape(name)}\b|\[\s*['\"]{re.escape(name)}['\"])", dumped)
        is not None
    )


def _unused(
    list_path: str,
    index: int,
    step: AgentStep,
    stats: StepStats,
    view: SpecTelemetry,
    mocks: list[str],
) -> Opportunity:
    """Remove the step (and the tests' mocks of it, which would name a missing step)."""
    path = f"{list_path}[{index}]"
    why = (
        f"nothing reads the output of '{step.name}' (no later step, test or policy refers to "
        f"steps.{step.name} and the next step has its own input), yet it costs "
        f"{money(stats.cost_per_run)} and {stats.latency(50):.2f}s per run"
    )
    return Opportunity(
        "unused_output",
        path,
        step.name,
        why,
        _evidence(stats, view),
        (paths.to_pointer(path), *(paths.to_pointer(m) for m in mocks)),
        max_ops=1 + len(mocks),
    )


def _parallel(
    pipeline: Pipeline,
    view: SpecTelemetry,
    list_path: str,
    steps: list[Any],
    i: int,
    taken: set[int],
    text: str,
) -> list[Opportunity]:
    first, second = steps[i], steps[i + 1]
    if i in taken or not isinstance(second, AgentStep) or i + 2 >= len(steps):
        return []  # the last step of a list gives the list's output: keep it in place
    if reads_previous(second) or refers_to(second, first.name) or reads_previous(steps[i + 2]):
        return []
    a = view.window_stats(first.name, f"{list_path}[{i}]")
    b = view.window_stats(second.name, f"{list_path}[{i + 1}]")
    if a is None or b is None or min(a.runs, b.runs) < MIN_RUNS:
        return []
    saving = min(a.latency(50), b.latency(50))
    name = f"{first.name}_and_{second.name}"[:64]
    existing = {s.name for _, s in pipeline.walk()}
    if saving < PARALLEL_MIN_SAVING_S or name in existing:
        return []
    taken.update((i, i + 1))
    why = (
        f"'{first.name}' and '{second.name}' run one after the other but neither reads the "
        f"other's output; run side by side they would save ~{saving:.2f}s per run (p50)"
    )
    evidence = _evidence(a, view, other_step=second.name, other_latency_p50_s=b.latency(50))
    return [
        Opportunity(
            "parallelizable",
            f"{list_path}[{i}]",
            first.name,
            why,
            evidence,
            (paths.to_pointer(f"{list_path}[{i}]"), paths.to_pointer(f"{list_path}[{i + 1}]")),
            max_ops=2,
            facts={"name": name, "latency_saving_s": saving, "second": second.name},
        )
    ]


def _usage_limits(pipeline: Pipeline, view: SpecTelemetry) -> list[Opportunity]:
    limits = pipeline.usage_limits
    if limits is None or view.runs < MIN_RUNS or not view.usage_limits_crossed:
        return []
    limit = view.usage_limits_crossed.most_common(1)[0][0]
    current = getattr(limits, limit, None)
    if current is None:
        return []
    runs, crossed = view.window_limits(f"usage_limits.{limit}")
    hits = crossed[limit]
    rate = hits / runs if runs else 0.0
    if runs < MIN_RUNS or rate < USAGE_LIMIT_RATE:
        return []
    raised: float | int = (
        round(current * 1.5, 6) if limit == "total_cost_usd" else int(current * 1.5)
    )
    why = (
        f"{hits} of {runs} runs ({rate:.0%}) stopped at usage limit "
        f"{limit} = {current:g}; raising it to {raised:g} lets them finish"
    )
    return [
        Opportunity(
            "usage_limit_hits",
            f"usage_limits.{limit}",
            None,
            why,
            {
                "runs": runs,
                "events": hits,
                "sample_size": runs,
                "sample_unit": "runs",
                "hits": hits,
                "hit_rate": round(rate, 4),
                "run_cost_p95_usd": round(_p(view.run_costs, 95), 8),
            },
            (paths.to_pointer(f"usage_limits.{limit}"),),
            max_ops=1,
            facts={"limit": limit, "value": raised, "failure_rate": rate},
        )
    ]


def _p(values: list[float], q: float) -> float:
    from flujo.learn.telemetry_view import percentile

    return percentile(values, q)
