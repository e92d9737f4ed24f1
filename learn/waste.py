"""Waste the per-step rules miss: long prompts for tiny answers, loops whose exit never
holds, the same agent asked the same thing twice, a primary its fallback keeps rescuing.

Each finding follows the rule of evidence of `flujo.learn.opportunities`: statistics from
the spec versions in which the finding's path is as now, `events` of `sample_size` for its
confidence, and a saving measured from the runs (or, where it cannot be, a bound that
says so). `long_prompt` and `loop_at_max` have no rule-based patch (a prompt to shorten, an
exit condition to fix): the offline agent leaves them to an agent that writes text, and
the report lists them as worth a look.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flujo.spec import paths
from flujo.spec.figures import count, money
from flujo.spec.model import AgentStep, LoopStep

if TYPE_CHECKING:
    from flujo.learn.opportunities import Opportunity
    from flujo.learn.telemetry_view import SpecTelemetry, StepStats
    from flujo.spec.model import Pipeline

LONG_PROMPT_TOKENS = 1000
"""A system prompt at least this long (estimated) is long."""
TINY_OUTPUT_TOKENS = 50
"""p95 of output tokens at or below which a step's answers are tiny."""
CHARS_PER_TOKEN = 4
"""How a prompt's length in tokens is estimated from its characters (English text)."""
TRIM_SHARE = 0.5
"""The share of a long prompt's cost a trim is expected to save."""
FALLBACK_RATE = 0.5
"""A primary its fallback had to replace in at least this share of runs keeps failing."""
FALLBACK_ANSWERS = 0.9
"""...while the fallback answered in at least this share of those runs."""


def find_waste(pipeline: Pipeline, view: SpecTelemetry) -> list[Opportunity]:
    from flujo.learn.opportunities import MIN_RUNS

    found: list[Opportunity] = []
    for path, step in pipeline.walk():
        if isinstance(step, LoopStep):
            stats = view.window_stats(step.name, path)
            if stats is not None and stats.runs >= MIN_RUNS:
                found += _loop_at_max(pipeline, view, path, step, stats)
        if not isinstance(step, AgentStep):
            continue
        stats = view.window_stats(step.name, path)
        if stats is None or stats.runs < MIN_RUNS:
            continue
        found += _long_prompt(pipeline, view, path, step)
        found += _rescued(view, path, step, stats)
    found += _repeated(pipeline, view)
    return found


def _agent_name(step: AgentStep) -> str | None:
    uses = step.uses or ""
    return uses.removeprefix("agents.") if uses.startswith("agents.") else None


def _long_prompt(
    pipeline: Pipeline, view: SpecTelemetry, path: str, step: AgentStep
) -> list[Opportunity]:
    from flujo.learn.opportunities import Opportunity, _evidence

    name = _agent_name(step)
    agent = pipeline.agents.get(name or "")
    if agent is None or name is None:
        return []
    prompt_path = paths.child(paths.child("agents", name), "system_prompt")
    stats = view.window_stats(step.name, prompt_path)
    prompt_tokens = len(agent.system_prompt) // CHARS_PER_TOKEN
    price = view.price(agent.model)
    if stats is None or not stats.input_tokens or price is None:
        return []
    p95_out = stats.tokens_out(95)
    mean_in = stats.mean(stats.input_tokens)
    if prompt_tokens < LONG_PROMPT_TOKENS or p95_out > TINY_OUTPUT_TOKENS:
        return []
    calls = len(stats.input_tokens) / stats.runs
    prompt_usd = min(prompt_tokens, mean_in) * float(price.input) / 1_000_000 * calls
    saved = prompt_usd * TRIM_SHARE
    if saved <= 0:
        return []
    why = (
        f"agent '{name}' sends a system prompt of ~{prompt_tokens:,} tokens (estimated from "
        f"its {len(agent.system_prompt):,} characters) with every call of '{step.name}', "
        f"whose answers are tiny (p95 {p95_out:.0f} tokens over "
        f"{count(len(stats.output_tokens), 'reply', 'replies')}); the prompt costs "
        f"{money(prompt_usd)} per run: trim it to what the step needs, or put the fixed part "
        "first so the provider's prompt caching applies"
    )
    return [
        Opportunity(
            "long_prompt",
            prompt_path,
            step.name,
            why,
            _evidence(
                stats,
                view,
                stats.runs,
                stats.runs,
                unit="runs",
                prompt_tokens_estimated=prompt_tokens,
                input_tokens_mean=round(mean_in, 1),
                output_tokens_p95=p95_out,
            ),
            (paths.to_pointer(prompt_path),),
            max_ops=1,
            facts={"agent": name, "usd_per_run": saved, "prompt_usd_per_run": prompt_usd},
        )
    ]


def _loop_at_max(
    pipeline: Pipeline, view: SpecTelemetry, path: str, step: LoopStep, stats: StepStats
) -> list[Opportunity]:
    from flujo.learn.opportunities import Opportunity, _evidence

    has_exit = step.exit_expression is not None or step.exit_condition is not None
    if not has_exit or stats.loops_at_max < stats.runs:
        return []
    body = [s.name for s in step.body.steps]
    per_run = 0.0
    for name in body:
        inner = view.window_stats(name, path)
        per_run += inner.cost_per_run if inner is not None else 0.0
    at_stake = per_run * (step.max_loops - 1) / step.max_loops
    if at_stake <= 0:
        return []
    exit_text = step.exit_expression or step.exit_condition
    why = (
        f"loop '{step.name}' ran to max_loops ({step.max_loops}) in all {stats.runs} runs: "
        f"its exit ({exit_text}) never held, so every run pays for {step.max_loops} "
        f"iterations ({money(per_run)} per run); if the exit is wrong, up to "
        f"{money(at_stake)} per run is spent on iterations after the first"
    )
    return [
        Opportunity(
            "loop_at_max",
            path,
            step.name,
            why,
            _evidence(stats, view, stats.loops_at_max, stats.runs, unit="runs"),
            (paths.to_pointer(path),),
            max_ops=2,
            facts={"usd_per_run": at_stake, "max_loops": step.max_loops},
        )
    ]


def _rescued(
    view: SpecTelemetry, path: str, step: AgentStep, stats: StepStats
) -> list[Opportunity]:
    from flujo.learn.opportunities import Opportunity, _causes, _evidence

    fallback = step.fallback
    if fallback is None or fallback.input not in (None, step.input):
        return []
    if fallback.with_ != step.with_ or not fallback.uses:
        return []
    rescued, answered = stats.rescued_runs, stats.fallback_answered
    if rescued < FALLBACK_RATE * stats.runs or answered < FALLBACK_ANSWERS * rescued:
        return []
    wait = sum(stats.rescue_wait_s) / len(stats.rescue_wait_s) if stats.rescue_wait_s else 0.0
    failed_cost = stats.failed_cost_usd / stats.runs
    why = (
        f"'{step.name}' failed for good in {rescued} of {stats.runs} runs "
        f"({count(sum(stats.causes.values()), 'failed attempt')}: {_causes(stats)}"
        + (
            f"; {stats.permanent_errors} were 4xx answers no retry changes"
            if stats.permanent_errors
            else ""
        )
        + ") "
        f"and its fallback '{fallback.name}' answered in {answered} of them; each rescue "
        f"waited {wait:.2f}s on average for the failing attempts"
        + (f" and they cost {money(failed_cost)} per run" if failed_cost > 0 else "")
        + f": make the fallback's {fallback.uses} the step's own"
    )
    return [
        Opportunity(
            "fallback_rescues",
            path,
            step.name,
            why,
            _evidence(
                stats,
                view,
                answered,
                stats.runs,
                unit="runs",
                rescued_runs=rescued,
                rescue_wait_s=round(wait, 4),
            ),
            (paths.to_pointer(f"{path}.uses"), paths.to_pointer(f"{path}.fallback")),
            max_ops=2,
            facts={
                "uses": fallback.uses,
                "usd_per_run": failed_cost * rescued / stats.runs,
                "latency_saving_s": wait * rescued / stats.runs,
            },
        )
    ]


def _repeated(pipeline: Pipeline, view: SpecTelemetry) -> list[Opportunity]:
    """Two steps of one list that call the same agent with the same input (a template over
    the run's input, or over steps before the first of them) and the same parameters."""
    from flujo.learn.opportunities import MIN_RUNS, Opportunity, _evidence, _step_lists

    out: list[Opportunity] = []
    for list_path, steps in _step_lists(pipeline):
        seen: dict[str, tuple[int, AgentStep]] = {}
        for i, step in enumerate(steps):
            if not isinstance(step, AgentStep) or _agent_name(step) is None:
                continue
            key = repr((step.uses, step.input, step.with_))
            if key not in seen:
                if _stable_input(step, [s.name for s in steps[:i]]):
                    seen[key] = (i, step)
                continue
            first_index, first = seen[key]
            between = [s.name for s in steps[first_index + 1 : i]]
            if any(_reads(step.input, n) for n in between):
                continue
            path = f"{list_path}[{i}]"
            stats = view.window_stats(step.name, path)
            firsts = view.window_stats(first.name, f"{list_path}[{first_index}]")
            if stats is None or firsts is None or min(stats.runs, firsts.runs) < MIN_RUNS:
                continue
            saved = stats.cost_per_run
            if saved <= 0:
                continue
            why = (
                f"'{step.name}' asks agent '{_agent_name(step)}' the same as '{first.name}' "
                f"did earlier in the run (same input, same parameters) in all "
                f"{count(stats.runs, 'run')}: reusing that answer saves {money(saved)} and "
                f"{stats.latency(50):.2f}s per run"
            )
            replacement: dict[str, Any] = {
                "name": step.name,
                "uses": "passthrough",
                "input": f"{{{{ steps.{first.name}.output }}}}",
            }
            for key_name in ("description", "sink_to"):
                if getattr(step, key_name):
                    replacement[key_name] = getattr(step, key_name)
            if step.updates_context:
                replacement["updates_context"] = True
            out.append(
                Opportunity(
                    "repeated_call",
                    path,
                    step.name,
                    why,
                    _evidence(stats, view, stats.runs, stats.runs, unit="runs", first=first.name),
                    (paths.to_pointer(path),),
                    max_ops=1,
                    facts={"replacement": replacement, "usd_per_run": saved},
                )
            )
    return out


def _stable_input(step: AgentStep, earlier: list[str]) -> bool:
    """Whether the step's input is the same wherever it is read after these steps: a
    template over `input` and the named earlier steps only."""
    text = repr(step.input) + repr(step.with_)
    if step.input is None or re.search(r"\b(previous|previous_step|context)\b", text):
        return False
    named = set(re.findall(r"steps\s*\.\s*([A-Za-z_][\w-]*)", text))
    return named <= set(earlier)


def _reads(value: Any, name: str) -> bool:
    return re.search(rf"steps\s*\.\s*{re.escape(name)}\b", repr(value)) is not None
