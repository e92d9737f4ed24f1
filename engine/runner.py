"""The async runner: executes a loaded spec, step by step, with telemetry.

A run works on the `Pipeline` object it was given, read from its file once before the
run started; a file changed during a run only affects later runs (apply-on-next-run).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.engine import telemetry as tm
from flujo.engine.capture import CaptureSettings
from flujo.engine.cassette_miss import CassetteMiss
from flujo.engine.jit import Ask, JitPlan, PlanBook
from flujo.engine.render import render
from flujo.engine.results import PipelineResult, StepResult
from flujo.engine.store import new_run_id
from flujo.engine.telemetry import NullTelemetry, RunTelemetry, SpanRecord, StepAttributes
from flujo.spec import paths
from flujo.spec.errors import EXIT_INVALID, FlujoError
from flujo.spec.legacy.lenient import MISSING_IS_NONE
from flujo.spec.model import (
    AgenticLoopStep,
    AgentStep,
    CacheStep,
    ConditionalStep,
    DynamicRouterStep,
    HitlStep,
    JitStep,
    LoopStep,
    MapStep,
    ParallelStep,
    Pipeline,
    StateMachineStep,
    StepBase,
    StepList,
)
from flujo.spec.registry import StepRegistry

if TYPE_CHECKING:
    from flujo.engine.agents import ModelClient
    from flujo.engine.checkpoint import Checkpoint, CheckpointWriter
    from flujo.engine.human import Human
    from flujo.engine.store import RunStore
    from flujo.engine.telemetry import OTelExport
    from flujo.spec.model import Agent

AGENT_PREFIX = "agents."
IMPORT_PREFIX = "imports."
CONTEXT_WRITES = "flujo.context.writes"
"""Span attribute: the context keys a step wrote (never their values)."""
_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("flujo_context")
"""The run context of the running branch (parallel branches hold copies)."""
CHECKPOINTED_ORIGINS = frozenset({"cli"})
"""Runs that keep checkpoints by default (with a store): `flujo run`'s, which a person may
resume. From Python, `Runner(checkpoints=True)` asks for them (as a LangGraph checkpointer
or Prefect's result persistence is asked for): they cost more than the engine's own work
on steps that call no model. Checks, tests, evaluations, verifications and shadow runs are
repeated, never resumed, and keep no step outputs."""
FLUSH_EVERY_S = 5.0
"""Spans of a long run are written to the store at least this often."""
INLINE_SPANS = 1_000
"""A SQLite store records the end of a run with at most this many spans still unwritten
on the event loop (a few milliseconds at most): handing the write to a worker thread cost
more CPU than the write itself (a 1-step run 250 -> 145 µs, a 200-step run 2,010 -> 1,590
µs: the thread hop and the spans' data moving to another core). More spans, or a
PostgreSQL store (a network round trip), go to a worker thread so the loop is not held."""


class StepFailed(FlujoError):
    """A step failed after its retries (and its fallback, if any); `cause` says why (one
    of `CAUSES`: model, provider, harness, input, limit, cancelled). Exit code 1 (the run
    failed), as for every error that stops a run."""

    exit_code = EXIT_INVALID

    def __init__(self, step: StepBase, message: str, cause: str = "model") -> None:
        super().__init__(f"step '{step.name}' failed: {message}")
        self.step = step
        self.reason = message
        self.cause = cause


class RunPaused(FlujoError):
    """A `hitl` step got no answer where none can be given now (not at a terminal): the
    run pauses, resumable from its last checkpoint (`flujo runs resume RUN_ID`). Only with
    a run store (checkpoints); without one the step fails."""

    exit_code = EXIT_INVALID

    def __init__(self, step: StepBase, question: str) -> None:
        super().__init__(f"step '{step.name}' waits for an answer: {question}")
        self.step = step
        self.question = question


class InputRejected(FlujoError):
    """The run's input does not satisfy the spec's `input_schema` (never retried; exit 1)."""

    exit_code = EXIT_INVALID


class UsageLimitExceeded(FlujoError):
    """A usage limit was crossed; the run stops at the step that crossed it (exit code 1)."""

    exit_code = EXIT_INVALID

    def __init__(self, step: StepBase, limit: str, value: float, cap: float) -> None:
        super().__init__(
            f"usage limit {limit} = {cap:g} crossed at step '{step.name}' (reached {value:g})"
        )
        self.step = step


class NoModel(FlujoError):
    """A step needs a model and none is configured (retrying cannot help; exit code 1)."""

    exit_code = EXIT_INVALID


class InputError(FlujoError):
    """A step's input cannot be built from the run's input (a template names a missing key):
    the same input fails the same way on every attempt, so it is never retried (exit code 1)."""

    exit_code = EXIT_INVALID


class ValidationFailed(FlujoError):
    """A validator rejected a step's output (the reason is fed back on retry; exit code 1)."""

    exit_code = EXIT_INVALID


@dataclass(slots=True)
class Completion:
    """What a model call returned (not frozen: a frozen dataclass sets each field through
    object.__setattr__, a sixth of what a step costs the engine)."""

    output: Any
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    cached_input_tokens: int = 0
    """Of `input_tokens`, those served from the provider's prompt cache."""


@dataclass(slots=True)
class _AgentPlan:
    """What running an agent step reads of its definition, read once per step: an
    attribute of the spec's pydantic models costs several times one of a plain object,
    and a step reads a dozen on every run."""

    name: str
    kind: str
    yaml_path: str
    """Its spans' (`Runner._attrs`): under the jit step for a jit plan's step."""
    input: Any
    uses: str | None
    agent_uses: str | None
    """`uses` when it names one of the spec's agents (a model call), else None."""
    templated: bool
    """Whether its `uses:` sees templates (a skill's: not an agent's, nor an import's)."""
    max_retries: int
    timeout_s: float | None
    writes_context: bool
    """`updates_context` or `sink_to`."""
    attributes: StepAttributes
    """Its spans' attributes (`Runner._attrs`)."""
    agent: Agent | None = None
    """The agent of `agent_uses`, once an attempt looked it up (`Runner.agent`)."""
    provider: str | None = None
    """Its model's provider (`gen_ai.system`), with `agent`."""
    checks: list[tuple[str, dict[str, Any]]] | None = None
    """`Runner.checks`, once an attempt's output was judged."""


class Runner:
    """Runs one spec; reusable for many runs (concurrently too)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        models: ModelClient | None = None,
        registry: StepRegistry | None = None,
        store: RunStore | None = None,
        export: OTelExport | None = None,
        evaluate: Callable[[str, dict[str, Any]], Any] | None = None,
        trace: bool = True,
        human: Human | None = None,
        mode: str = "live",
        origin: str = "sdk",
        capture: CaptureSettings | None = None,
        plans: PlanBook | None = None,
        prices_version: str | None = None,
        checkpoints: bool | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.checkpoint_runs = checkpoints
        """Whether runs keep checkpoints (with a store); None: by origin (`flujo run`'s do)."""
        if prices_version is None:
            from flujo.engine.pricing import table_version

            prices_version = table_version(getattr(models, "prices", None))
        self.prices_version = prices_version
        """The version of the price table that computes this runner's costs."""
        self.plans = plans or PlanBook(None, "off")
        """Where the plans of `jit` steps are recorded or replayed from."""
        self._jit: dict[int, asyncio.Task[JitPlan]] = {}
        self.capture = capture or CaptureSettings.for_pipeline(pipeline)
        """Which runs' inputs and outputs are captured (see `flujo.engine.capture`)."""
        self.mode = mode
        """How runs reach models: live, replay, fake or mock (recorded with each run)."""
        self.origin = origin
        """What starts the runs: cli, sdk, test, check, verification, eval or shadow."""
        self.human = human
        self.trace = trace
        self.models = models
        self.registry = registry or StepRegistry()
        self.store = store
        self.export = export
        self.evaluate = evaluate or _default_evaluate
        self._skills: dict[str, tuple[Callable[..., Any], bool]] = {}
        self._packed: dict[int, tuple[Agent, list[tuple[str, dict[str, Any]]]] | None] = {}
        self._checks: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self._agents: dict[int, Agent] = {}
        self._agent_plans: dict[int, _AgentPlan] = {}
        self._checkpoints: CheckpointWriter | None = None
        self.cache_memory: dict[tuple[str, str], tuple[float, str]] = {}
        """Outputs of `kind: cache` steps when there is no store (see engine/cached.py)."""
        self._attrs: dict[int, StepAttributes] = {}
        self._owner: dict[int, Pipeline] = {}  # id(step) -> the pipeline it is written in
        pending = [pipeline]
        while pending:
            spec = pending.pop()
            pending.extend(p for p in spec.imported.values() if p is not pipeline)
            for _, step in spec.walk():
                self._owner[id(step)] = spec
                attributes = {
                    tm.YAML_PATH: step.yaml_path,
                    tm.YAML_LINE: step.line,
                    tm.STEP_NAME: step.name,
                    tm.STEP_KIND: step.kind,
                }
                if spec is not pipeline:  # an imported step: its path is in its own file
                    attributes[tm.YAML_FILE] = spec.file
                self._attrs[id(step)] = StepAttributes(attributes)

    async def run(
        self,
        input: Any = None,
        *,
        run_id: str | None = None,
        mocks: dict[str, Any] | None = None,
        origin: str | None = None,
    ) -> PipelineResult:
        """Run the pipeline on `input`; never raises for a failing step (see `status`).

        `mocks` gives fixed outputs by step name: those steps are not executed (a run with
        mocks and no model calls is recorded with mode `mock`). `origin` overrides the
        runner's for this run.
        """
        run = _Run(self, input, run_id or new_run_id(), mocks or {}, origin or self.origin)
        return await run.execute()

    async def resume(
        self,
        run_id: str,
        *,
        answers: dict[str | None, str] | None = None,
        force: bool = False,
        origin: str | None = None,
    ) -> PipelineResult:
        """Continue the run `run_id` (or a unique prefix) from its last checkpoint, as a new
        run that records `resumed_from`: the steps after it see the context and the step
        outputs the earlier run left. `answers` answer `hitl` steps (text, parsed as the
        step's `input_schema` says) by step name, or (key None) the first question asked.
        Raises ResumeRefused when the spec changed since the run started (a changed spec
        applies on the next run, never to one in flight), the run succeeded, was resumed
        already or is still running; NoSuchRun when no run matches. `force`:
        resume a run marked running by a process on another host."""
        from flujo.engine.checkpoint import ResumeRefused, resume_point

        if self.store is None:
            raise ResumeRefused("resuming a run needs the run store its checkpoints are in")
        earlier, checkpoint = await asyncio.to_thread(
            resume_point, self.store, run_id, self.pipeline, force=force
        )
        new_id = new_run_id()
        if earlier["status"] == "running":  # its process is gone (killed, crashed)
            await asyncio.to_thread(
                self.store.mark_interrupted,
                earlier["run_id"],
                f"the process running it ended before the run finished; resumed as {new_id}",
            )
        run = _Run(self, checkpoint.input, new_id, {}, origin or self.origin)
        run.resume_from(earlier["run_id"], checkpoint, answers or {})
        return await run.execute()

    async def jit_plan(self, step: JitStep, ask: Ask) -> tuple[JitPlan, bool]:
        """The plan of a `jit` step, made once per runner (concurrent runs share it), and
        whether this call made it; its steps are registered with yaml_paths under the
        step's."""
        from flujo.engine.jit import make_plan

        task = self._jit.get(id(step))
        made = task is None or (task.done() and task.exception() is not None)
        if made:
            task = asyncio.ensure_future(make_plan(step, self.registry, self.plans, ask))
            self._jit[id(step)] = task
        assert task is not None
        plan = await asyncio.shield(task)
        root = paths.child(step.yaml_path, "jit")
        for path, inner in plan.fragment.walk():
            if id(inner) not in self._attrs:
                self._owner[id(inner)] = plan.fragment
                self._attrs[id(inner)] = StepAttributes(
                    {
                        tm.YAML_PATH: f"{root}.{path}",
                        tm.YAML_LINE: step.line,
                        tm.STEP_NAME: inner.name,
                        tm.STEP_KIND: inner.kind,
                    }
                )
        return plan, made

    def packed(self, step: AgentStep) -> tuple[Agent, list[tuple[str, dict[str, Any]]]] | None:
        """For a step that `uses:` a model-backed skill (`text_to_sql`): the agent it runs
        as (its prompt rendered from the step's `with:`) and the checks of its output."""
        key = id(step)
        if key in self._packed:  # looked up once per step: this is on every model call
            return self._packed[key]
        pack = self.registry.model_skill(step.uses or "")
        entry = None
        if pack is not None:
            from flujo.spec.model import Agent

            agent = Agent.model_validate(pack.agent_data(step.with_))
            entry = (agent, pack.checks(step.with_))
        self._packed[key] = entry
        return entry

    def agent(self, step: AgentStep, uses: str) -> Agent:
        """The agent a step `uses: agents.NAME` (looked up once per step)."""
        found = self._agents.get(id(step))
        if found is None:
            found = self._owner[id(step)].agents[uses[len(AGENT_PREFIX) :]]
            self._agents[id(step)] = found
        return found

    def agent_plan(self, step: AgentStep) -> _AgentPlan:
        """What running `step` reads of its definition (worked out once per step)."""
        found = self._agent_plans.get(id(step))
        if found is None:
            uses, config, attributes = step.uses, step.config, self._attrs[id(step)]
            found = _AgentPlan(
                name=step.name,
                kind=step.kind,
                yaml_path=attributes[tm.YAML_PATH],
                input=step.input,
                uses=uses,
                agent_uses=uses if uses is not None and uses.startswith(AGENT_PREFIX) else None,
                templated=uses is not None and not uses.startswith((AGENT_PREFIX, IMPORT_PREFIX)),
                max_retries=config.max_retries,
                timeout_s=config.timeout_s,
                writes_context=bool(step.updates_context or step.sink_to is not None),
                attributes=attributes,
            )
            self._agent_plans[id(step)] = found
        return found

    def checkpoints(self) -> CheckpointWriter:
        """The writer of this runner's checkpoints (runs with a store keep them)."""
        if self._checkpoints is None:
            from flujo.engine.checkpoint import CheckpointWriter

            assert self.store is not None
            self._checkpoints = CheckpointWriter(self.store)
        return self._checkpoints

    def checks(self, step: AgentStep) -> list[tuple[str, dict[str, Any]]]:
        """What judges a step's output, in order: its validators, then the checks of the
        model-backed skill it uses (worked out once per step)."""
        found = self._checks.get(id(step))
        if found is None:
            packed = self.packed(step)
            found = [(v.uses, v.with_) for v in step.validators]
            found += packed[1] if packed is not None else []
            self._checks[id(step)] = found
        return found

    def skill(self, reference: str) -> tuple[Callable[..., Any], bool]:
        """The callable behind an allowed `uses:` (cached) and whether it is async."""
        entry = self._skills.get(reference)
        if entry is None:
            fn = self.registry.resolve(reference)
            entry = (fn, inspect.iscoroutinefunction(fn))
            self._skills[reference] = entry
        return entry


async def run(
    spec: Pipeline | str | Path,
    input: Any = None,
    *,
    run_id: str | None = None,
    mocks: dict[str, Any] | None = None,
    **options: Any,
) -> PipelineResult:
    """Run a spec once: `await flujo.run("flows/triage.yaml", {"ticket": "…"})`.

    `spec` is a loaded `Pipeline`, a file path or YAML text (raises `SpecError` when it
    is invalid); `options` go to `Runner` (models, registry, store, …).
    """
    if not isinstance(spec, Pipeline):
        spec = Pipeline.from_yaml(spec, registry=options.get("registry"))
    return await Runner(spec, **options).run(input, run_id=run_id, mocks=mocks)


async def resume(
    spec: Pipeline | str | Path,
    run_id: str,
    *,
    answers: dict[str | None, str] | None = None,
    force: bool = False,
    **options: Any,
) -> PipelineResult:
    """Continue a run that stopped from its last checkpoint:
    `await flujo.resume("flows/triage.yaml", run_id, store=RunStore(…))`.

    `spec` as for `run` (it must be the version the run started with: a changed spec is
    refused with `ResumeRefused`); `options` go to `Runner` and must include the `store`
    holding the run's checkpoints. See `Runner.resume`."""
    if not isinstance(spec, Pipeline):
        spec = Pipeline.from_yaml(spec, registry=options.get("registry"))
    return await Runner(spec, **options).resume(run_id, answers=answers, force=force)


def _default_evaluate(source: str, bindings: dict[str, Any]) -> Any:
    from flujo.spec.expressions import evaluate

    return evaluate(source, bindings)


class _Run:
    """State of one run."""

    def __init__(
        self, runner: Runner, input: Any, run_id: str, mocks: dict[str, Any], origin: str
    ) -> None:
        pipeline = runner.pipeline
        self.runner = runner
        self.mocks = mocks
        self.pipeline = pipeline
        mode = runner.mode
        if mocks and mode == "live":  # mocked outputs are not what a model does
            mode = "mock"
        self.result = PipelineResult(
            run_id,
            pipeline.spec_sha256,
            input=input,
            mode=mode,
            origin=origin,
            prices_version=runner.prices_version,
        )
        telemetry = RunTelemetry if runner.trace else NullTelemetry
        self.telemetry = telemetry(run_id, pipeline.spec_sha256, mode, origin)
        self.limits = pipeline.usage_limits
        self.cost = 0.0
        self.cost_known = True
        self.tokens = 0
        self.last_flush = time.monotonic()
        self.written = 0
        """`telemetry.spans[:written]` were handed to the store (by a long run's flushes)."""
        self.written_open: list[SpanRecord] = []
        """Of those, the spans still open when written: written again, once they end."""
        self.initial_context = initial_context(pipeline, input)
        exported = runner.export is not None and runner.export.enabled
        self.captured = (
            (runner.store is not None or exported) and not mocks and runner.capture.sampled()
        )
        self.step_inputs: dict[str, Any] = {}
        self.human = runner.human
        self.resumed: tuple[str, Checkpoint] | None = None
        """The run this one continues and the checkpoint it starts from."""
        self.touched: set[str] = set()
        """Names of the step results changed since the last checkpoint."""
        wanted = runner.checkpoint_runs
        self.checkpointing = runner.store is not None and (
            origin in CHECKPOINTED_ORIGINS if wanted is None else wanted
        )
        """Whether this run keeps checkpoints (see `flujo.engine.checkpoint`)."""

    def resume_from(
        self, run_id: str, checkpoint: Checkpoint, answers: dict[str | None, str]
    ) -> None:
        """Start from `checkpoint` of run `run_id` instead of the first step."""
        from flujo.engine.human import GivenAnswers

        self.resumed = (run_id, checkpoint)
        self.result.resumed_from = run_id
        self.initial_context = copy.deepcopy(checkpoint.context)
        self.result.steps = checkpoint.step_results()
        self.cost, self.cost_known, self.tokens = (
            checkpoint.cost_usd,
            checkpoint.cost_known,
            checkpoint.tokens,
        )
        self.cost_before, self.tokens_before = checkpoint.cost_usd, checkpoint.tokens
        if answers:
            self.human = GivenAnswers(answers, self.human)

    cost_before = 0.0
    """What the run resumed from had spent (usage limits count it; the totals do not)."""
    tokens_before = 0

    # -- the run ----------------------------------------------------------------------------

    async def execute(self) -> PipelineResult:
        runner, result = self.runner, self.result
        source = self.pipeline.source
        if runner.store is not None:
            runner.store.begin_run(
                run_id=result.run_id,
                spec_sha256=result.spec_sha256,
                spec_text=source.text if source is not None else self.pipeline.to_yaml(),
                spec_path=source.file if source is not None else None,
                pipeline=self.pipeline.name,
                trace_id=self.telemetry.trace_id,
                mode=result.mode,
                origin=result.origin,
                prices_version=result.prices_version,
                resumed_from=self.resumed[0] if self.resumed else None,
            )
        attributes: dict[str, Any] = {tm.YAML_LINE: 1, tm.PRICES_VERSION: result.prices_version}
        if self.resumed is not None:
            earlier, checkpoint = self.resumed
            attributes[tm.RESUMED_FROM] = earlier
            attributes[tm.RESUMED_AFTER] = checkpoint.yaml_path
        span = self.telemetry.start(
            f"flujo.run {self.pipeline.name or 'pipeline'}", None, attributes
        )
        started = time.perf_counter()
        token = _CONTEXT.set(self.initial_context)
        legacy = source is not None and source.lenient  # 0.x read a missing value as None
        lenient = MISSING_IS_NONE.set(legacy)
        try:
            if self.resumed is None:
                self._check_input()
            result.output = await self.top_level(span)
            result.status = "succeeded"
            if self.pipeline.policies:
                self._judge_policies(span)
        except (StepFailed, UsageLimitExceeded) as exc:
            result.status, result.error = "failed", str(exc)
            result.error_path = self._path(exc.step)
            result.cause = exc.cause if isinstance(exc, StepFailed) else "limit"
        except InputRejected as exc:
            result.status, result.error = "failed", str(exc)
            result.error_path, result.cause = "input_schema", "input"
        except RunPaused as exc:
            result.status = "paused"
            result.error = (
                f"{exc}; answer it with `flujo runs resume {result.run_id} --answer VALUE`"
            )
            result.error_path = self._path(exc.step)
        except asyncio.CancelledError:
            result.status, result.error = "cancelled", "the run was cancelled"
            result.cause = "cancelled"
            await self._finish(span, started)
            raise
        except Exception as exc:  # a bug in Flujo: record it, then let it surface
            result.status, result.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            await self._finish(span, started)
            raise
        finally:
            result.context = _CONTEXT.get()
            _CONTEXT.reset(token)
            MISSING_IS_NONE.reset(lenient)
        await self._finish(span, started)
        return result

    def _path(self, step: StepBase) -> str:
        """A step's yaml_path as its spans give it (a jit plan's step: under the jit step)."""
        found = self.runner._attrs.get(id(step))
        return str(found[tm.YAML_PATH]) if found is not None else step.yaml_path

    def _check_input(self) -> None:
        schema = self.pipeline.input_schema
        if schema is None:
            return
        from jsonschema.validators import validator_for

        error = next(iter(validator_for(schema)(schema).iter_errors(self.result.input)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            raise InputRejected(
                f"the input does not match input_schema: {error.message}"
                + (f" at /{where}" if where else "")
            )

    def _judge_policies(self, span: SpanRecord) -> None:
        """Runtime guardrail: a failing FAIL_RUN policy fails the run."""
        from flujo.engine.policies import evaluate_policies

        result = self.result
        result.total_cost_usd = self.cost if self.cost_known else None
        result.total_tokens = self.tokens
        result.policies = evaluate_policies(self.pipeline, result)
        for judged in result.policies:
            span.event(
                "flujo.policy",
                **{
                    "flujo.policy.id": judged.id,
                    "flujo.policy.action": judged.action,
                    "flujo.policy.outcome": judged.outcome,
                },
            )
            failing = judged.action == "FAIL_RUN" and judged.outcome in ("failed", "error")
            if failing and result.status == "succeeded":
                result.status = "failed"
                result.error = f"policy '{judged.id}' failed: {judged.explanation}"
                result.error_path = judged.yaml_path

    async def _finish(self, span: SpanRecord, started: float) -> None:
        result = self.result
        result.latency_s = time.perf_counter() - started
        result.total_cost_usd = self.cost if self.cost_known else None
        result.total_tokens = self.tokens
        if self.resumed is not None:  # the totals of this run's own work
            if result.total_cost_usd is not None:
                result.total_cost_usd = self.cost - self.cost_before
            result.total_tokens = self.tokens - self.tokens_before
        span.attributes[tm.COST] = result.total_cost_usd
        if self.checkpointing:  # what a resume needs is written before the end
            written = self.runner.checkpoints().flush(result.run_id)
            problem = await asyncio.shield(asyncio.wrap_future(written))
            if problem is not None:
                span.event("flujo.checkpoint.failed", message=problem)
        if result.error:
            span.event("flujo.run.failed", message=result.error, path=result.error_path or "")
        if result.cause is not None:
            span.attributes[tm.CAUSE] = result.cause
        span.end(result.status == "succeeded", result.error)
        store, export = self.runner.store, self.runner.export
        if store is not None:
            # shielded: a cancelled run is still recorded whole
            unwritten = self._unwritten()
            if len(unwritten) <= INLINE_SPANS and store.backend == "sqlite":
                store.finish_run(result, unwritten)
            else:
                await asyncio.shield(asyncio.to_thread(store.finish_run, result, unwritten))
            kept = self.checkpointing or self.resumed is not None  # (a resumed run's moved)
            if kept and result.status == "succeeded":  # nothing to resume: outputs not kept
                await asyncio.shield(asyncio.to_thread(store.drop_checkpoints, result.run_id))
        rows = self._capture_rows() if self.captured else []
        if rows and store is not None:
            await asyncio.shield(asyncio.to_thread(self._capture, store, rows))
        if export is not None and export.enabled:
            if rows:  # sent with the run's spans (kept out of the local store's spans)
                from flujo.engine.capture import capture_events

                for name, attributes in capture_events(rows, self.runner.capture.keep):
                    span.event(name, **attributes)
            await asyncio.to_thread(export.export, self.telemetry)

    def _capture_rows(self) -> list[tuple[Any, ...]]:
        from flujo.engine.capture import capture_rows

        source = self.pipeline.source
        path = source.file if source is not None else None
        return capture_rows(self.result, self.step_inputs, self.runner.capture, path)

    def _capture(self, store: RunStore, rows: list[tuple[Any, ...]]) -> None:
        from flujo.engine.capture import write_captures

        write_captures(store, rows, rows[0][3], self.runner.capture.keep)

    async def _flush(self, store: RunStore) -> None:
        """Write the spans so far (a long run's spans reach the store while it runs)."""
        self.last_flush = time.monotonic()
        await asyncio.to_thread(store.write_spans, self.result.run_id, self._unwritten())

    def _unwritten(self) -> list[SpanRecord]:
        """The spans the store has not seen as they are: those started since the last
        write, and those that were open then (each flush writes what changed, not the whole
        run again: a long run's writes stay linear in its spans)."""
        spans = self.telemetry.spans
        batch = [*self.written_open, *spans[self.written :]]
        self.written = len(spans)
        self.written_open = [span for span in batch if not span.end_ns]
        return batch

    # -- checkpoints ------------------------------------------------------------------------

    async def top_level(self, span: SpanRecord) -> Any:
        """The spec's steps, from the first or from the checkpoint resumed; with a store, a
        checkpoint after each (see `flujo.engine.checkpoint`)."""
        from flujo.engine.checkpoint import START

        steps, store = self.pipeline.steps, self.runner.store
        previous, start = self.result.input, 0
        if self.resumed is not None:
            earlier, checkpoint = self.resumed
            previous, start = checkpoint.output, checkpoint.step_index + 1
            span.event(
                "flujo.run.resumed",
                **{"run_id": earlier, "after": checkpoint.yaml_path, "step_index": start},
            )
            if store is not None:  # this run continues from them, and can be resumed in turn
                await asyncio.to_thread(store.move_checkpoints, earlier, self.result.run_id)
        elif self.checkpointing:
            self._checkpoint(START, None, previous, span)
        for index in range(start, len(steps)):
            step = steps[index]
            previous = await self.step(step, self.result.input, previous, span)
            if self.checkpointing:
                self._checkpoint(index, step, previous, span)
            if store is not None and time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
                await self._flush(store)
        return previous

    def _checkpoint(self, index: int, step: StepBase | None, output: Any, span: SpanRecord) -> None:
        """Take the run's state after top-level step `index` and hand it to the writer (a
        value JSON cannot hold is not kept: a resume starts from the checkpoint before)."""
        from flujo.engine.checkpoint import START, NotCheckpointable, row, step_fields

        if step is None:
            where = ("", "")
        else:
            where = (self.runner._attrs[id(step)][tm.YAML_PATH], step.name)
        steps = self.result.steps
        state: dict[str, Any] = {"cost_usd": self.cost, "cost_known": self.cost_known}
        state["tokens"] = self.tokens
        if index == START:
            state["input"] = self.result.input
        state["steps"] = {name: step_fields(steps[name]) for name in self.touched}  # last
        try:
            taken = row(self.result.run_id, index, where, output, _CONTEXT.get(), state)
        except NotCheckpointable as exc:
            span.event("flujo.checkpoint.skipped", step=where[1], reason=str(exc))
            return  # the steps' results go with the next checkpoint
        self.touched.clear()
        self.runner.checkpoints().put(taken)

    # -- step lists and kinds ---------------------------------------------------------------

    async def steps(
        self, steps: list[Any], scope_input: Any, previous: Any, parent: SpanRecord
    ) -> Any:
        store = self.runner.store
        for step in steps:
            previous = await self.step(step, scope_input, previous, parent)
            if store is not None and time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
                await self._flush(store)
        return previous

    def step(
        self, step: StepBase, scope_input: Any, previous: Any, parent: SpanRecord
    ) -> Coroutine[Any, Any, Any]:
        """The coroutine that runs one step (of any kind): a plain call handing back the
        kind's own coroutine, so a step costs one coroutine fewer."""
        if self.mocks and step.name in self.mocks:
            return self._mocked_step(step, parent)
        if isinstance(step, AgentStep):
            return self.agent_step(step, scope_input, previous, parent)
        return self._composite_step(step, scope_input, previous, parent)

    async def _mocked_step(self, step: StepBase, parent: SpanRecord) -> Any:
        return self._mocked(step, parent)

    async def _composite_step(
        self, step: StepBase, scope_input: Any, previous: Any, parent: SpanRecord
    ) -> Any:
        record = self._record(step)
        span = self._span(step, parent, record)
        started = time.perf_counter()
        try:
            if isinstance(step, ParallelStep):
                output = await self.parallel(step, scope_input, previous, span)
            elif isinstance(step, ConditionalStep):
                output = await self.conditional(step, scope_input, previous, span)
            elif isinstance(step, LoopStep):
                output = await self.loop(step, scope_input, previous, span, record)
            elif isinstance(step, MapStep):
                output = await self.map(step, scope_input, previous, span)
            elif isinstance(step, HitlStep):
                output = await self.hitl(step, scope_input, previous, span)
            elif isinstance(step, StateMachineStep):
                output = await self.state_machine(step, scope_input, previous, span)
            elif isinstance(step, JitStep):
                output = await self.jit(step, scope_input, previous, span)
            elif isinstance(step, CacheStep):
                from flujo.engine.cached import run_cache

                output = await run_cache(self, step, scope_input, previous, span)
            elif isinstance(step, DynamicRouterStep):
                from flujo.engine.delegating import run_router

                output = await run_router(self, step, scope_input, previous, span)
            elif isinstance(step, AgenticLoopStep):
                from flujo.engine.delegating import run_agentic_loop

                output = await run_agentic_loop(self, step, scope_input, previous, span, record)
            else:  # pragma: no cover - the schema admits no other kinds
                raise StepFailed(step, f"unknown kind {step.kind}")
        except BaseException as exc:
            record.success, record.error = False, _reason(exc)
            span.attributes[tm.CAUSE] = cause_of(exc)
            span.end(False, record.error)
            raise
        finally:
            record.latency_s += time.perf_counter() - started
        record.success, record.error, record.output = True, None, output
        self._write_context(step, output, span)
        span.end(True)
        return output

    async def parallel(
        self, step: ParallelStep, scope_input: Any, previous: Any, span: SpanRecord
    ) -> Any:
        outputs = await self.branches(
            step.branches, list(step.branches), step.on_branch_failure, scope_input, previous, span
        )
        return outputs if step.merge == "dict" else list(outputs.values())

    async def branches(
        self,
        branches: dict[str, StepList],
        names: list[str],
        on_failure: str,
        scope_input: Any,
        previous: Any,
        span: SpanRecord,
    ) -> dict[str, Any]:
        """Run the branches `names` concurrently; their outputs by name (failed branches
        left out when `on_failure` is `ignore`)."""
        ignore = on_failure == "ignore"
        before = _CONTEXT.get()
        contexts: dict[str, dict[str, Any]] = {}

        async def branch(name: str) -> Any:
            # each branch works on its own copy of the context (tasks copy the variable)
            own = contexts[name] = copy.deepcopy(before)
            _CONTEXT.set(own)
            try:
                return await self.steps(branches[name].steps, scope_input, previous, span)
            except StepFailed as exc:
                if not ignore:
                    raise
                span.event("flujo.branch.failed", branch=name, message=str(exc))
                del contexts[name]
                return _FAILED

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(branch(name)) for name in names]
        except* (StepFailed, UsageLimitExceeded, RunPaused) as failures:
            raise failures.exceptions[0] from None
        outputs = {name: task.result() for name, task in zip(names, tasks, strict=True)}
        snapshot = copy.deepcopy(before)
        for name in names:  # what a branch changed, in branch order: the later wins
            _merge_changes(before, snapshot, contexts.get(name, snapshot))
        return {name: out for name, out in outputs.items() if out is not _FAILED}

    async def conditional(
        self, step: ConditionalStep, scope_input: Any, previous: Any, span: SpanRecord
    ) -> Any:
        if step.condition is not None:
            value = await self._callable(step, step.condition, previous)
        else:
            value = self._expression(step, step.condition_expression or "''", scope_input, previous)
        key = str(value).lower() if isinstance(value, bool) else str(value)
        chosen = step.branches.get(key)
        span.event("flujo.branch.chosen", branch=key if chosen is not None else "default")
        if chosen is None:
            chosen = step.default
        if chosen is None:
            return previous
        return await self.steps(chosen.steps, scope_input, previous, span)

    async def loop(
        self,
        step: LoopStep,
        scope_input: Any,
        previous: Any,
        span: SpanRecord,
        record: StepResult,
    ) -> Any:
        output = previous
        for iteration in range(1, step.max_loops + 1):
            record.attempts = iteration
            output = await self.steps(step.body.steps, scope_input, output, span)
            done = False
            if step.exit_expression is not None:
                extra = {"output": output, "iteration": iteration}
                done = self._expression(step, step.exit_expression, scope_input, output, extra)
            if not done and step.exit_condition is not None:
                done = bool(await self._callable(step, step.exit_condition, output))
            if done:
                span.event("flujo.loop.exit", iteration=iteration)
                return output
        span.event("flujo.loop.max_loops", iteration=step.max_loops)
        return output

    async def map(self, step: MapStep, scope_input: Any, previous: Any, span: SpanRecord) -> Any:
        items = self._expression(step, step.over, scope_input, previous)
        if not isinstance(items, list | tuple):
            raise StepFailed(step, f"`over` must give a list, got {type(items).__name__}")
        outputs = []
        for item in items:
            outputs.append(await self.steps(step.body.steps, item, item, span))
        return outputs

    async def hitl(self, step: HitlStep, scope_input: Any, previous: Any, span: SpanRecord) -> Any:
        from flujo.engine.human import NoAnswer, answer_problem

        human = self.human
        if human is None:
            raise StepFailed(
                step,
                "this step asks a person and nobody can answer here: run it with "
                "`flujo run` in a terminal, replay recorded answers, or give it a mock in tests",
                "harness",
            )
        try:
            question = str(render(step.message or "", self._context(scope_input, previous)))
        except MemoryError:
            raise  # a limit of the process, never a step's failure
        except Exception as exc:
            raise StepFailed(step, f"message template: {_reason(exc)}") from None
        span.event("flujo.hitl.asked", message=question)
        try:
            answer = await human.answer(step, question)
        except NoAnswer as exc:
            if exc.resumable and self.checkpointing:
                span.event("flujo.hitl.paused", reason=str(exc))
                raise RunPaused(step, question) from None
            raise StepFailed(step, str(exc), "harness") from None
        problem = answer_problem(step.input_schema, answer)
        if problem is not None:
            raise StepFailed(step, f"the answer does not satisfy input_schema: {problem}")
        return answer

    async def state_machine(
        self, step: StateMachineStep, scope_input: Any, previous: Any, span: SpanRecord
    ) -> Any:
        state, output, moves = step.start_state, previous, 0
        while state not in step.end_states:
            failure: StepFailed | None = None
            try:
                output = await self.steps(step.states[state].steps, scope_input, output, span)
            except StepFailed as exc:
                failure = exc
            outcome = "failure" if failure is not None else "success"
            following = self._transition(step, state, outcome, scope_input, output)
            if following is None:
                if failure is not None:
                    raise failure
                break
            moves += 1
            if moves > step.max_transitions:
                raise StepFailed(
                    step, f"more than {step.max_transitions} transitions (max_transitions)"
                )
            span.event("flujo.state.transition", **{"from": state, "to": following, "on": outcome})
            state = following
        return output

    def _transition(
        self, step: StateMachineStep, state: str, outcome: str, scope_input: Any, output: Any
    ) -> str | None:
        for rule in step.transitions:
            if rule.from_ not in (state, "*") or rule.on != outcome:
                continue
            if rule.when is None or self._expression(step, rule.when, scope_input, output):
                return rule.to
        return None

    # -- plain steps: agents and skills -----------------------------------------------------

    async def jit(self, step: JitStep, scope_input: Any, previous: Any, span: SpanRecord) -> Any:
        """Plan (once per runner), then run the plan's steps under this step's span."""
        from flujo.engine.jit import JitRefused

        value = previous
        if step.input is not None:
            try:
                value = render(step.input, self._context(scope_input, previous))
            except Exception as exc:
                raise StepFailed(step, f"input template: {_reason(exc)}", "input") from None
        building: list[float | None] = [0.0]  # what this run's builder calls cost

        async def ask(agent: Agent, planner: AgentStep, prompt: Any, feedback: str | None) -> Any:
            return await self._ask_planner(agent, planner, prompt, feedback, building)

        started = time.perf_counter()
        try:
            plan, made = await self.runner.jit_plan(step, ask)
        except JitRefused as exc:
            raise StepFailed(step, str(exc), exc.cause) from None
        span.attributes.update(plan.attributes())
        span.attributes.update(_plan_source(made, self.runner.plans.mode, building[0], started))
        spent, output = self.cost, value
        limit = step.budget.max_cost_usd
        for inner in plan.fragment.steps:
            output = await self.step(inner, value, output, span)
            if limit is not None and self.cost - spent > limit:
                raise UsageLimitExceeded(step, "budget.max_cost_usd", self.cost - spent, limit)
        return output

    async def _ask_planner(
        self,
        agent: Agent,
        step: AgentStep,
        prompt: Any,
        feedback: str | None,
        spent: list[float | None],
    ) -> Any:
        """A model builder's reply; its cost and tokens count in the run's (and in
        `spent`: None once a cost is unknown)."""
        models = self.runner.models
        if models is None:
            raise NoModel("a jit step's model builder needs a model: use --fake or --replay DIR")
        completion = await models.complete(agent, step, prompt, feedback)
        self.tokens += completion.input_tokens + completion.output_tokens
        if completion.cost_usd is None:
            self.cost_known = False
            spent[0] = None
        else:
            self.cost += completion.cost_usd
            if spent[0] is not None:
                spent[0] += completion.cost_usd
        return completion.output

    async def agent_step(
        self, step: AgentStep, scope_input: Any, previous: Any, parent: SpanRecord
    ) -> Any:
        plan = self.runner._agent_plans.get(id(step)) or self.runner.agent_plan(step)
        name = plan.name
        self.touched.add(name)  # `_record`, with what it reads read once
        steps = self.result.steps
        record = steps.get(name)
        if record is None:
            record = steps[name] = StepResult(name, plan.kind, plan.yaml_path)
        value = previous
        if plan.input is not None:
            try:
                value = render(plan.input, self._context(scope_input, previous))
            except MemoryError:
                raise  # a limit of the process, never a step's failure
            except Exception as exc:  # the same input fails every attempt: never retried
                record.success, record.error = False, f"input template: {_reason(exc)}"
                span = self._span(step, parent, record)
                span.attributes[tm.CAUSE] = "input"
                span.end(False, record.error)
                raise StepFailed(step, record.error, "input") from None
        if self.captured:
            self.step_inputs.setdefault(name, value)
        agent_uses, timeout_s = plan.agent_uses, plan.timeout_s
        # what a template_render skill sees (agents and imports see no templates)
        bindings = self._context(scope_input, previous) if plan.templated else None
        feedback: str | None = None
        error = "no attempt was made"
        cause = "model"
        start = self.telemetry.start
        for attempt in range(1, plan.max_retries + 2):
            record.attempts += 1  # `_span`, with what it reads read once
            span = start(name, parent, plan.attributes, attempt)
            started = time.perf_counter()
            try:
                if agent_uses is not None:  # `call`'s first case, without its coroutine
                    agent = plan.agent
                    if agent is None:
                        agent = plan.agent = self.runner.agent(step, agent_uses)
                        plan.provider = agent.model.split(":", 1)[0]
                    called = self._model_call(
                        step, agent, value, feedback, span, record, plan.provider
                    )
                else:
                    called = self.call(step, value, feedback, span, record, bindings)
                if timeout_s is not None:
                    async with asyncio.timeout(timeout_s):
                        output = await called
                else:
                    output = await called
                checks = plan.checks
                if checks is None:
                    checks = plan.checks = self.runner.checks(step)
                if checks:
                    problem = self._validate(checks, output)
                    if problem is not None:
                        raise ValidationFailed(problem)
            except (UsageLimitExceeded, asyncio.CancelledError, RunPaused) as exc:
                record.latency_s += time.perf_counter() - started
                record.success, record.error = False, _reason(exc)
                span.attributes[tm.CAUSE] = cause_of(exc)
                span.end(False, record.error)
                raise
            except (CassetteMiss, NoModel, InputError) as exc:  # retrying cannot help
                record.latency_s += time.perf_counter() - started
                missing = exc.for_step(step.name) if isinstance(exc, CassetteMiss) else exc
                record.success, record.error = False, str(missing)
                cause = cause_of(exc)
                span.attributes[tm.CAUSE] = cause
                span.end(False, record.error)
                raise StepFailed(step, record.error, cause) from None
            except MemoryError:
                raise
            except StepFailed as exc:  # an imported pipeline failed: its cause is kept
                record.latency_s += time.perf_counter() - started
                error, cause = _reason(exc), exc.cause
                span.attributes[tm.CAUSE] = cause
                span.end(False, error)
                if cause not in RETRYABLE:
                    record.success, record.error = False, error
                    raise StepFailed(step, error, cause) from None
                if attempt <= plan.max_retries:
                    delay = _backoff(step.config.backoff, attempt)
                    span.event("flujo.retry", attempt=attempt + 1, delay_s=delay)
                    await asyncio.sleep(delay)
                continue
            except Exception as exc:
                record.latency_s += time.perf_counter() - started
                error = _reason(exc, timeout_s)
                cause = cause_of(exc)
                span.attributes[tm.CAUSE] = cause
                status = _status_code(exc)
                if status is not None:
                    span.attributes[tm.HTTP_STATUS] = status
                if isinstance(exc, ValidationFailed):  # fed back to the agent on retry
                    feedback = error
                    span.event("flujo.validator.failed", message=error)
                    error = f"validator failed: {error}"
                else:
                    span.event(
                        "exception",
                        **{"exception.type": type(exc).__name__, "exception.message": error},
                    )
                span.end(False, error)
                if attempt <= plan.max_retries:
                    delay = _backoff(step.config.backoff, attempt)
                    span.event("flujo.retry", attempt=attempt + 1, delay_s=delay)
                    await asyncio.sleep(delay)
                continue
            record.latency_s += time.perf_counter() - started
            record.success, record.error, record.output = True, None, output
            if plan.writes_context:
                self._write_context(step, output, span)
            span.end(True)
            return output
        record.success, record.error = False, error
        if step.fallback is not None:
            parent.event("flujo.fallback", step=step.name, fallback=step.fallback.name)
            try:
                output = await self.agent_step(step.fallback, scope_input, previous, parent)
            except StepFailed as exc:
                raise StepFailed(step, f"{error}; fallback: {exc.reason}", exc.cause) from None
            record.output = output
            return output
        raise StepFailed(step, error, cause)

    async def call(
        self,
        step: AgentStep,
        value: Any,
        feedback: str | None,
        span: SpanRecord,
        record: StepResult,
        bindings: dict[str, Any] | None = None,
    ) -> Any:
        """Run the step's `uses:` once; `bindings` are what its templates see."""
        uses = step.uses
        if uses is None:
            return value
        if uses.startswith(AGENT_PREFIX):
            agent = self.runner.agent(step, uses)
            return await self._model_call(step, agent, value, feedback, span, record)
        packed = self.runner.packed(step)
        if packed is not None:  # a model-backed skill: a call of its agent
            return await self._model_call(step, packed[0], value, feedback, span, record)
        if uses.startswith(IMPORT_PREFIX):
            imported = self.runner._owner[id(step)].imported[uses[len(IMPORT_PREFIX) :]]
            source = imported.source  # a 0.x file reads missing values as 0.x did
            lenient = MISSING_IS_NONE.set(source is not None and source.lenient)
            try:
                return await self.steps(imported.steps, value, value, span)
            finally:
                MISSING_IS_NONE.reset(lenient)
        fn, is_async = self.runner.skill(uses)
        if getattr(fn, "__flujo_context__", False):  # flujo 0.x's context skills
            output = fn(value, context=_CONTEXT.get(), **step.with_)
            if step.updates_context:  # the skill wrote the context itself
                span.attributes[CONTEXT_WRITES] = (
                    [str(value.get("path", ""))] if isinstance(value, dict) else []
                )
        elif getattr(fn, "__flujo_template__", False) and bindings is not None:
            output = fn(value, **step.with_, bindings=bindings)  # templates see what docs say
        elif _is_factory(fn):  # flujo 0.x: a factory given the params makes the callable
            made = fn(**step.with_)
            made = getattr(made, "run", made)
            output = made(value)
            return await output if inspect.isawaitable(output) else output
        else:
            output = fn(value, **step.with_)
        return await output if is_async else output

    async def _model_call(
        self,
        step: AgentStep,
        agent: Agent,
        value: Any,
        feedback: str | None,
        span: SpanRecord,
        record: StepResult,
        provider: str | None = None,
    ) -> Any:
        """One model call of `agent`; `provider` is its model's (read from it when not
        given)."""
        models = self.runner.models
        if models is None:
            raise NoModel(
                "this step calls a model and none is configured: set OPENAI_BASE_URL (and "
                "OPENAI_API_KEY), use --replay DIR or --fake, or give the step a mock in tests"
            )
        completion = await models.complete(agent, step, value, feedback)
        record.model = completion.model
        record.input_tokens += completion.input_tokens
        record.output_tokens += completion.output_tokens
        attributes = span.attributes
        attributes[tm.GEN_AI_SYSTEM] = provider or agent.model.split(":", 1)[0]
        attributes[tm.GEN_AI_MODEL] = completion.model
        attributes[tm.GEN_AI_INPUT_TOKENS] = completion.input_tokens
        attributes[tm.GEN_AI_OUTPUT_TOKENS] = completion.output_tokens
        if completion.cached_input_tokens:
            attributes[tm.GEN_AI_CACHED_INPUT_TOKENS] = completion.cached_input_tokens
        attributes[tm.COST] = completion.cost_usd
        self.tokens += completion.input_tokens + completion.output_tokens
        if completion.cost_usd is None:
            self.cost_known = False
            record.cost_usd = None
        else:
            self.cost += completion.cost_usd
            if record.cost_usd is not None:
                record.cost_usd += completion.cost_usd
        if self.limits is not None:
            self._check_limits(step)
        return completion.output

    def _check_limits(self, step: StepBase) -> None:
        limits = self.limits
        if limits is None:
            return
        if limits.total_cost_usd is not None and self.cost > limits.total_cost_usd:
            raise UsageLimitExceeded(step, "total_cost_usd", self.cost, limits.total_cost_usd)
        if limits.total_tokens is not None and self.tokens > limits.total_tokens:
            raise UsageLimitExceeded(step, "total_tokens", self.tokens, limits.total_tokens)

    def _validate(self, checks: list[tuple[str, dict[str, Any]]], output: Any) -> str | None:
        """The first problem of the output by a step's `checks` (`Runner.checks`)."""
        for uses, given in checks:
            fn, _ = self.runner.skill(uses)
            problem = fn(output, **given)
            if problem:
                return f"{uses}: {problem}"
        return None

    def _mocked(self, step: StepBase, parent: SpanRecord) -> Any:
        record = self._record(step)
        span = self._span(step, parent, record)
        span.attributes["flujo.step.mocked"] = True
        record.success, record.error, record.output = True, None, self.mocks[step.name]
        self._write_context(step, record.output, span)
        span.end(True)
        return record.output

    # -- helpers ----------------------------------------------------------------------------

    def _record(self, step: StepBase) -> StepResult:
        self.touched.add(step.name)
        steps = self.result.steps
        record = steps.get(step.name)
        if record is None:
            path = self.runner._attrs[id(step)][tm.YAML_PATH]
            record = StepResult(step.name, step.kind, path)
            steps[step.name] = record
        return record

    def _span(
        self, step: StepBase, parent: SpanRecord, record: StepResult, attempt: int = 1
    ) -> SpanRecord:
        if step.kind not in ("loop", "agentic_loop"):
            record.attempts += 1
        return self.telemetry.start(step.name, parent, self.runner._attrs[id(step)], attempt)

    def _context(self, scope_input: Any, previous: Any) -> dict[str, Any]:
        # `previous_step` is flujo 0.x's name for `previous`
        return {
            "input": scope_input,
            "previous": previous,
            "previous_step": previous,
            "steps": self.result.steps,
            "context": Fields(_CONTEXT.get()),
        }

    def _write_context(self, step: StepBase, output: Any, span: SpanRecord) -> None:
        """`updates_context` and `sink_to`: the only ways a step's output enters the run
        context; the keys written are recorded in the span."""
        if not step.updates_context and step.sink_to is None:
            return
        context = _CONTEXT.get()
        written: list[str] = list(span.attributes.get(CONTEXT_WRITES, []))
        if step.sink_to is not None:
            from flujo.spec.legacy.builtins import context_write

            context_write(context, step.sink_to, output)
            written.append(step.sink_to)
        elif step.updates_context and CONTEXT_WRITES not in span.attributes:
            if isinstance(output, str) and output.lstrip().startswith("{"):
                output = _json_object(output)  # 0.x merges a JSON object given as text
            if isinstance(output, dict):
                for key, value in output.items():
                    context[str(key)] = value
                    written.append(str(key))
            else:
                span.event("flujo.context.ignored", reason="the output is not a mapping")
        span.attributes[CONTEXT_WRITES] = written

    async def _callable(self, step: StepBase, reference: str, output: Any) -> Any:
        """An allow-listed `condition` / `exit_condition` callable, called with (output,
        context) as flujo 0.x did."""
        try:
            fn, is_async = self.runner.skill(reference)
            value = fn(output, _CONTEXT.get())
            return await value if is_async else value
        except MemoryError:
            raise
        except Exception as exc:
            raise StepFailed(step, f"{reference}: {_reason(exc)}", "harness") from None

    def _expression(
        self,
        step: StepBase,
        source: str,
        scope_input: Any,
        previous: Any,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        bindings = self._context(scope_input, previous)
        bindings["output"] = previous
        if extra:
            bindings.update(extra)
        try:
            return self.runner.evaluate(source, bindings)
        except MemoryError:
            raise
        except Exception as exc:
            raise StepFailed(step, f"expression {source!r}: {_reason(exc)}") from None


_FAILED = object()


class Fields(dict[str, Any]):
    """The run context as templates see it: `context.items` is the key `items` when there
    is one (as on 0.x's context objects), not the mapping's method."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and dict.__contains__(self, name):
            value = dict.__getitem__(self, name)
            return Fields(value) if type(value) is dict else value
        return super().__getattribute__(name)


def _json_object(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _is_factory(fn: Callable[..., Any]) -> bool:
    """A flujo 0.x skill factory (`make_x(**params) -> callable`): no positional parameter."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    kinds = [p.kind for p in parameters]
    return (
        bool(kinds)
        and inspect.Parameter.VAR_KEYWORD in kinds
        and not any(k in positional or k == inspect.Parameter.VAR_POSITIONAL for k in kinds)
    )


def _merge_changes(target: dict[str, Any], base: dict[str, Any], branch: dict[str, Any]) -> None:
    """Apply to `target` what `branch` changed from `base`, mapping by mapping."""
    for key, value in branch.items():
        old = base.get(key, _FAILED)
        both = isinstance(value, dict) and isinstance(target.get(key), dict)
        if both and (old is _FAILED or isinstance(old, dict)):
            _merge_changes(target[key], old if isinstance(old, dict) else {}, value)
        elif old is _FAILED or old != value:
            target[key] = value


def initial_context(pipeline: Pipeline, input: Any) -> dict[str, Any]:
    """The run context a run starts with: a copy of the input when it is a mapping (0.x's
    initial context data), else empty; flujo 0.x files (and those migrated with 0.x reading
    kept) also start with the fields 0.x's
    context has: `initial_prompt` (the input), `scratchpad`, `import_artifacts`."""
    context: dict[str, Any] = {}
    source = pipeline.source
    if source is not None and source.lenient:
        prompt = input if isinstance(input, str) or input is None else str(input)
        context.update(initial_prompt=prompt or "", scratchpad={}, import_artifacts={})
    if isinstance(input, dict):
        context.update(copy.deepcopy(input))
    return context


RETRYABLE = frozenset({"model", "provider"})
"""Causes of failure that another attempt may not repeat."""


def cause_of(exc: BaseException) -> str:
    """The cause of a failed attempt (see `flujo.engine.store.CAUSES`)."""
    if isinstance(exc, StepFailed):
        return exc.cause
    if isinstance(exc, ValidationFailed):
        return "model"
    if isinstance(exc, UsageLimitExceeded):
        return "limit"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, CassetteMiss | NoModel | RunPaused):
        return "harness"
    if isinstance(exc, InputError | InputRejected):
        return "input"
    if isinstance(exc, TimeoutError | ConnectionError):
        return "provider"
    names = {kind.__name__ for kind in type(exc).__mro__}
    if names & {"APIError", "HTTPError", "TransportError"}:
        return "provider"  # openai's and httpx's errors, without importing them here
    return "model"


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _reason(exc: BaseException, timeout: float | None = None) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, StepFailed):
        return exc.reason
    text = str(exc) or type(exc).__name__
    return (
        text
        if isinstance(exc, ValidationFailed | UsageLimitExceeded)
        else (f"{type(exc).__name__}: {text}")
    )


def _plan_source(made: bool, book: str, cost: float | None, started: float) -> dict[str, Any]:
    """How a run got its jit plan and, when it built it, what building cost and took."""
    from flujo.engine.jit import BUILDER_COST, BUILDER_LATENCY, PLAN_SOURCE

    if book == "replay":
        return {PLAN_SOURCE: "replayed"}
    if not made:
        return {PLAN_SOURCE: "reused"}
    found: dict[str, Any] = {
        PLAN_SOURCE: "built",
        BUILDER_LATENCY: round(time.perf_counter() - started, 6),
    }
    if cost is not None:
        found[BUILDER_COST] = cost
    return found


def _backoff(backoff: Any, attempt: int) -> float:
    delay = min(backoff.max_s, backoff.initial_s * backoff.multiplier ** (attempt - 1))
    return float(delay * random.uniform(0.5, 1.5) if backoff.jitter else delay)
