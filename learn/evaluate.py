"""`flujo eval`: replay captured examples through a candidate spec and compare outputs.

Examples are the captured runs (`flujo.engine.capture`) of the spec that are production
evidence: mode `live`, started by `cli`, `sdk` or `shadow`. For a candidate, each example's
input is run through it (origin `eval`); for every step the change affects, the candidate's
output is compared with the baseline's: the captured output when the example was captured
with the baseline's exact spec version, else the baseline is run again. Agreement is
reported with its Wilson 95% interval, with cost and latency per run before and after and
the money the evaluation itself spent. Without a candidate it is a dataset run: the share
of runs that pass the spec's own checks, and of the tests' assertions over the inputs.

Results of candidate evaluations are kept in the store (`evaluations` table), keyed by the
candidate's spec_sha256, so `flujo suggest` can show them as a suggestion's quality
evidence.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flujo.spec.stats import wilson

if TYPE_CHECKING:
    from flujo.engine.results import PipelineResult
    from flujo.engine.session import SessionOptions
    from flujo.engine.store import RunStore
    from flujo.spec.model import AgentStep, Pipeline

EVIDENCE_ORIGINS = ("cli", "sdk", "shadow")


@dataclass
class Example:
    """One captured run: its input, its steps' outputs, what it cost."""

    run_id: str
    spec_sha256: str
    input: Any
    outputs: dict[str, Any]
    cost_usd: float | None
    latency_s: float | None
    created_at: float = 0.0
    """When the example was captured (seconds since the epoch)."""
    failure: str | None = None
    """The captured run's failure cause (None: it succeeded)."""


def captured_counts(store: RunStore, spec_path: str) -> dict[str, int]:
    """Captured runs of the spec by `mode/origin` (evidence or not)."""
    rows = store.query(
        "SELECT r.mode AS mode, r.origin AS origin, COUNT(*) AS n FROM captures c JOIN runs r "
        "ON r.run_id = c.run_id WHERE c.spec_path = ? AND c.step_name = '' "
        "GROUP BY r.mode, r.origin",
        (spec_path,),
    )
    return {f"{row['mode']}/{row['origin']}": int(row["n"]) for row in rows}


def load_examples(
    store: RunStore, spec_path: str, limit: int | None = None, since: float | None = None
) -> list[Example]:
    """The newest captured live runs of the spec that are production evidence; with
    `since`, those captured after it, the oldest first (a bake-in reads them in order)."""
    from flujo.engine.store import infer_cause

    marks = ", ".join("?" * len(EVIDENCE_ORIGINS))
    fresh = "" if since is None else " AND c.created_at > ?"
    order = "c.created_at DESC" if since is None else "c.created_at"
    runs = store.query(
        "SELECT c.run_id AS run_id, c.spec_sha256 AS sha, c.input AS input, "
        "c.created_at AS created_at, r.status AS status, r.cause AS cause, r.error AS error, "
        "r.total_cost_usd AS cost, r.latency_s AS latency FROM captures c JOIN runs r "
        "ON r.run_id = c.run_id WHERE c.spec_path = ? AND c.step_name = '' AND c.truncated = 0 "
        f"AND r.mode = 'live' AND r.origin IN ({marks}){fresh} ORDER BY {order}, c.run_id"
        + ("" if limit is None else " LIMIT ?"),
        (
            spec_path,
            *EVIDENCE_ORIGINS,
            *(() if since is None else (since,)),
            *(() if limit is None else (limit,)),
        ),
    )
    steps: dict[str, dict[str, Any]] = {}
    if runs:
        rows = store.query(
            "SELECT c.run_id AS run_id, c.step_name AS step_name, c.output AS output FROM "
            "captures c JOIN runs r ON r.run_id = c.run_id WHERE c.spec_path = ? "
            "AND c.step_name != '' AND c.truncated = 0 AND r.mode = 'live'",
            (spec_path,),
        )
        wanted = {row["run_id"] for row in runs}
        for row in rows:
            if row["run_id"] in wanted:
                steps.setdefault(row["run_id"], {})[row["step_name"]] = json.loads(row["output"])
    return [
        Example(
            row["run_id"],
            row["sha"],
            json.loads(row["input"]),
            steps.get(row["run_id"], {}),
            row["cost"],
            row["latency"],
            float(row["created_at"]),
            None if row["status"] == "succeeded" else (row["cause"] or infer_cause(row["error"])),
        )
        for row in runs
    ]


def count_examples(store: RunStore, spec_path: str, since: float | None = None) -> int:
    """How many captured live runs of the spec are production evidence (captured after
    `since`, when given)."""
    marks = ", ".join("?" * len(EVIDENCE_ORIGINS))
    fresh = "" if since is None else " AND c.created_at > ?"
    rows = store.query(
        "SELECT COUNT(*) AS n FROM captures c JOIN runs r ON r.run_id = c.run_id "
        "WHERE c.spec_path = ? AND c.step_name = '' AND c.truncated = 0 AND r.mode = 'live' "
        f"AND r.origin IN ({marks}){fresh}",
        (spec_path, *EVIDENCE_ORIGINS, *(() if since is None else (since,))),
    )
    return int(rows[0]["n"])


def affected_steps(baseline: Pipeline, candidate: Pipeline) -> list[str]:
    """Agent and skill steps of the candidate whose configuration (or agent) changed."""
    from flujo.spec.model import AgentStep

    before = {s.name: s for _, s in baseline.walk()}
    names = []
    for _, step in candidate.walk():
        if not isinstance(step, AgentStep):
            continue
        old = before.get(step.name)
        agent = _agent(candidate, step)
        old_agent = _agent(baseline, old) if isinstance(old, AgentStep) else None
        if old is None or old.model_dump() != step.model_dump() or agent != old_agent:
            names.append(step.name)
    return names


def _agent(pipeline: Pipeline, step: AgentStep) -> dict[str, Any] | None:
    uses = step.uses or ""
    if not uses.startswith("agents."):
        return None
    agent = pipeline.agents.get(uses.removeprefix("agents."))
    return agent.model_dump() if agent is not None else None


# -- comparators ---------------------------------------------------------------------------


def _normal_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return " ".join(text.casefold().split()).strip(" .!")


def _numbers_close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= tolerance * max(abs(a), abs(b), 1.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numbers_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            _numbers_close(x, y, tolerance) for x, y in zip(a, b, strict=True)
        )
    return bool(a == b)


def comparator(pipeline: Pipeline, step: AgentStep) -> tuple[str, Callable[[Any, Any], bool]]:
    """How a step's outputs are compared: named in `eval.compare`, else from the agent's
    `output_schema` (required fields equal; numbers within a tolerance), else normalised
    text. `judge` is compared by `Evaluation` itself (it calls a model)."""
    setting = step.eval_
    tolerance = setting.tolerance if setting is not None else 1e-6
    uses = step.uses or ""
    agent = (
        pipeline.agents.get(uses.removeprefix("agents.")) if uses.startswith("agents.") else None
    )
    schema = agent.output_schema if agent is not None else None
    name: str | None = setting.compare if setting is not None and setting.compare else None
    if name is None:
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind == "object" and schema is not None and schema.get("required"):
            name = "json_fields"
        elif kind in ("number", "integer"):
            name = "numeric"
        elif schema is not None:
            name = "exact"
        else:
            name = "text"
    if name == "exact":
        return name, lambda a, b: bool(a == b)
    if name == "numeric":
        return name, lambda a, b: _numbers_close(a, b, tolerance)
    if name == "json_fields":
        required = list((schema or {}).get("required") or [])

        def fields(a: Any, b: Any) -> bool:
            if not (isinstance(a, dict) and isinstance(b, dict)):
                return bool(a == b)
            keys = required or sorted(set(a) | set(b))
            return all(_numbers_close(a.get(k), b.get(k), tolerance) for k in keys)

        return name, fields
    return name or "text", lambda a, b: _normal_text(a) == _normal_text(b)


# -- the report ----------------------------------------------------------------------------


@dataclass
class Disagreement:
    run_id: str
    step: str
    input: Any
    before: Any
    after: Any


@dataclass
class EvalReport:
    spec: str
    candidate: str | None
    mode: str
    """How the evaluation's runs reached their models (live, replay, fake)."""
    steps: list[str] = field(default_factory=list)
    comparators: dict[str, str] = field(default_factory=dict)
    available: int = 0
    examples: int = 0
    agreed: int = 0
    reused_baseline: int = 0
    eval_cost_usd: float = 0.0
    eval_cost_known: bool = True
    before_cost: list[float] = field(default_factory=list)
    after_cost: list[float] = field(default_factory=list)
    before_latency: list[float] = field(default_factory=list)
    after_latency: list[float] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    stopped: str | None = None
    checks_passed: int = 0
    assertions_passed: int = 0
    assertions_total: int = 0
    captured: dict[str, int] = field(default_factory=dict)
    failures_before: dict[str, int] = field(default_factory=dict)
    """Failed runs by cause of the baseline on the compared examples."""
    failures_after: dict[str, int] = field(default_factory=dict)
    """Failed runs by cause of the candidate on the same examples."""
    newest: float | None = None
    """When the newest compared example was captured."""

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.examples if self.examples else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.agreed, self.examples) if self.examples else None

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        data: dict[str, Any] = {
            "spec": self.spec,
            "candidate": self.candidate,
            "mode": self.mode,
            "examples_available": self.available,
            "examples": self.examples,
            "captured_runs": dict(sorted(self.captured.items())),
            "eval_cost_usd": round(self.eval_cost_usd, 8) if self.eval_cost_known else None,
            "stopped": self.stopped,
            "before": _stats(self.before_cost, self.before_latency),
            "after": _stats(self.after_cost, self.after_latency),
        }
        if self.candidate is not None:
            data |= {
                "steps": self.steps,
                "comparators": self.comparators,
                "agreed": self.agreed,
                "agreement": round(self.agreement, 4) if self.agreement is not None else None,
                "interval_95": [round(x, 4) for x in interval] if interval else None,
                "baseline_reused": self.reused_baseline,
                "newest": self.newest,
                "failures": {
                    "before": dict(sorted(self.failures_before.items())),
                    "after": dict(sorted(self.failures_after.items())),
                },
                "disagreements": [
                    {
                        "run_id": d.run_id,
                        "step": d.step,
                        "input": d.input,
                        "before": d.before,
                        "after": d.after,
                    }
                    for d in self.disagreements
                ],
            }
        else:
            data |= {
                "checks_passed": self.checks_passed,
                "pass_rate": round(self.checks_passed / self.examples, 4)
                if self.examples
                else None,
                "assertions_passed": self.assertions_passed,
                "assertions_total": self.assertions_total,
            }
        return data


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _stats(costs: list[float], latencies: list[float]) -> dict[str, Any]:
    return {
        "runs": len(latencies),
        "cost_usd_per_run": round(sum(costs) / len(costs), 8) if costs else None,
        "latency_s_p50": _percentile(latencies, 50),
        "latency_s_p95": _percentile(latencies, 95),
    }


# -- running -------------------------------------------------------------------------------


async def evaluate(
    baseline: Pipeline,
    candidate: Pipeline | None,
    store: RunStore,
    options: SessionOptions,
    *,
    spec_path: str,
    examples: int | None = None,
    max_cost: float | None = None,
    registry: Any = None,
    candidate_label: str | None = None,
    models: Any = None,
    progress: Callable[[int, int], None] | None = None,
    since: float | None = None,
) -> EvalReport:
    """Evaluate `candidate` against `baseline` on the spec's captured examples (a dataset
    run of `baseline` when `candidate` is None). `models` (a `ModelClient`) replaces the
    session's model server (benchmarks, tests); runs are then recorded as `options.mode`.
    `progress(done, total)` is told how many examples have been evaluated (a display).
    With `since`, only examples captured after it count, the oldest first (a bake-in)."""
    from dataclasses import replace

    from flujo.engine.session import session

    options = replace(options, origin="eval", use_store=False, export=False)
    chosen = load_examples(store, spec_path, examples, since)
    label = candidate_label or ("candidate" if candidate is not None else None)
    report = EvalReport(spec_path, label, options.mode)
    report.available = count_examples(store, spec_path, since)
    report.captured = captured_counts(store, spec_path)
    if candidate is not None:
        report.steps = affected_steps(baseline, candidate)
        for name in report.steps:
            report.comparators[name] = comparator(candidate, candidate.step(name))[0]  # type: ignore[arg-type]
    spent: list[float] = []

    def over_budget() -> bool:
        if max_cost is None:
            return False
        per = sum(spent) / report.examples if report.examples else 0.0
        return sum(spent) + per > max_cost

    def cost_of(result: PipelineResult) -> float:
        if result.total_cost_usd is None:
            report.eval_cost_known = False
            return 0.0
        return result.total_cost_usd

    target = candidate or baseline
    if models is not None:
        from flujo.engine.runner import Runner

        @contextlib.asynccontextmanager
        async def given() -> AsyncIterator[Runner]:
            yield Runner(target, models=models, registry=registry, mode=options.mode, origin="eval")

        opened = given()
    else:
        opened = session(target, options, registry=registry)
    async with opened as runner:
        base_runner = None
        for done, example in enumerate(chosen):
            if progress is not None:
                progress(done, len(chosen))
            if over_budget():
                report.stopped = f"--max-cost {max_cost:g} would be crossed by the next example"
                break
            result = await runner.run(example.input)
            used = cost_of(result)
            report.examples += 1
            report.after_latency.append(result.latency_s)
            report.after_cost.append(used)
            if candidate is None:
                spent.append(used)
                _dataset(report, baseline, result)
                continue
            report.newest = max(report.newest or example.created_at, example.created_at)
            _count_failure(report.failures_after, result)
            outputs, before_cost, before_latency = (
                example.outputs,
                example.cost_usd,
                example.latency_s,
            )
            if example.spec_sha256 == baseline.spec_sha256:
                report.reused_baseline += 1
                if example.failure is not None:
                    report.failures_before[example.failure] = (
                        report.failures_before.get(example.failure, 0) + 1
                    )
            else:
                if base_runner is None:
                    from flujo.engine.runner import Runner

                    base_runner = Runner(
                        baseline,
                        models=runner.models,
                        registry=runner.registry,
                        mode=runner.mode,
                        origin="eval",
                    )
                again = await base_runner.run(example.input)
                _count_failure(report.failures_before, again)
                before_cost = cost_of(again)
                used += before_cost
                before_latency = again.latency_s
                outputs = {n: s.output for n, s in again.steps.items() if s.success}
            if before_cost is not None:
                report.before_cost.append(before_cost)
            if before_latency is not None:
                report.before_latency.append(before_latency)
            agree = True
            for name in report.steps:
                if name not in outputs:
                    continue  # the baseline did not reach it: nothing to compare
                record = result.steps.get(name)
                after = record.output if record is not None and record.success else None
                same = (
                    record is not None
                    and record.success
                    and await _same(candidate, name, outputs[name], after, runner, spent)
                )
                if not same:
                    agree = False
                    report.disagreements.append(
                        Disagreement(example.run_id, name, example.input, outputs[name], after)
                    )
            report.agreed += agree
            spent.append(used)
    if progress is not None:
        progress(len(chosen), len(chosen))
    report.eval_cost_usd = sum(spent)
    if candidate is not None:
        save(store, report, baseline.spec_sha256, candidate.spec_sha256)
    return report


def _count_failure(counts: dict[str, int], result: PipelineResult) -> None:
    """Count a failed run under its cause."""
    if result.status == "succeeded":
        return
    from flujo.engine.store import infer_cause

    cause = result.cause or infer_cause(result.error)
    counts[cause] = counts.get(cause, 0) + 1


async def _same(
    candidate: Pipeline, name: str, before: Any, after: Any, runner: Any, spent: list[float]
) -> bool:
    """Whether two outputs of a step agree; a judge's calls are added to `spent`."""
    step: Any = candidate.step(name)
    kind, compare = comparator(candidate, step)
    if kind != "judge":
        return compare(before, after)
    judge = step.eval_.judge if step.eval_ is not None else None
    if judge is None or runner.models is None or judge not in candidate.agents:
        return compare(before, after)
    completion = await runner.models.complete(
        candidate.agents[judge],
        step,
        {"before": before, "after": after, "answer": "same or different"},
        None,
    )
    spent.append(completion.cost_usd or 0.0)
    text = str(completion.output).casefold()
    return "same" in text and "different" not in text


def _dataset(report: EvalReport, pipeline: Pipeline, result: PipelineResult) -> None:
    from flujo.engine.embedded_tests import _judge
    from flujo.engine.policies import bindings_for

    report.checks_passed += result.status == "succeeded"
    bindings = bindings_for(result)
    for i, test in enumerate(pipeline.tests):
        for j, source in enumerate(test.assertions):
            report.assertions_total += 1
            judged = _judge(source, f"tests[{i}].assertions[{j}]", pipeline, bindings)
            report.assertions_passed += judged.passed


def save(store: RunStore, report: EvalReport, baseline_sha: str, candidate_sha: str) -> None:
    store.execute(
        "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?)",
        [(report.spec, baseline_sha, candidate_sha, time.time(), json.dumps(report.to_dict()))],
    )


def stored_evaluation(store: RunStore, candidate_sha: str) -> dict[str, Any] | None:
    """The newest stored evaluation of a candidate spec version, if any."""
    rows = store.query(
        "SELECT report FROM evaluations WHERE candidate_sha256 = ? ORDER BY created_at DESC "
        "LIMIT 1",
        (candidate_sha,),
    )
    return json.loads(rows[0]["report"]) if rows else None
