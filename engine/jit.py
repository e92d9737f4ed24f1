"""`kind: jit` at run time: a plan of typed skills for the step's goal, validated like a
spec, run as an ephemeral sub-pipeline whose steps' yaml_paths sit under the step's
(`steps[2].jit.steps[0]`).

A plan is made once per runner and step. The offline builder asks the marketplace
planner (`MarketplaceQuery`); an `openai:MODEL` builder is asked through a guard that
shows it the typed skills with their figures and the planner's answer as an example,
and rejects a reply that names an unknown or disallowed skill, breaks the chain of
types, exceeds the budget or is not a valid pipeline, telling it why, at most
`max_attempts` times. Whatever the builder, the plan is checked the same way: a plan
can never use a skill the registry does not allow nor spend beyond the step's budget.

With `--record DIR` each plan is written to `DIR/plans/`; with `--replay DIR` (and in
`flujo test`) it is read from there, so replays run the same plan. A missing recording
fails the step as a cassette miss does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flujo.spec.errors import EXIT_INVALID, FlujoError

if TYPE_CHECKING:
    from flujo.spec.model import Agent, AgentStep, JitStep, Pipeline
    from flujo.spec.registry import StepRegistry
    from flujo.spec.skill_figures import Listing

PLANS_FOLDER = "plans"
PLAN_SHA = "flujo.jit.plan_sha256"
PLAN_SKILLS = "flujo.jit.plan"
PLAN_BUILDER = "flujo.jit.builder"
PLAN_REJECTED = "flujo.jit.rejected"
PLAN_SOURCE = "flujo.jit.plan_source"
"""How the run got its plan: `built` (by the builder, in this run), `reused` (built earlier
by the same process) or `replayed` (read from the cassette)."""
BUILDER_COST = "flujo.jit.builder_cost_usd"
"""What building the plan cost in this run (a model builder's calls; 0 for `offline`)."""
BUILDER_LATENCY = "flujo.jit.builder_latency_s"
"""How long building the plan took in this run."""
Ask = Callable[["Agent", "AgentStep", Any, str | None], Awaitable[Any]]


class JitRefused(FlujoError):
    """No valid plan could be made for a `jit` step (the step fails with the reasons)."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, cause: str = "input") -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class JitPlan:
    """A validated plan: its skills, the pipeline they make, and how it was made."""

    skills: tuple[str, ...]
    builder: str
    fragment: Pipeline
    sha256: str
    rejected: tuple[str, ...] = ()
    """Why earlier replies of a model builder were refused."""

    def attributes(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            PLAN_SKILLS: " → ".join(self.skills),
            PLAN_SHA: self.sha256,
            PLAN_BUILDER: self.builder,
        }
        if self.rejected:
            found[PLAN_REJECTED] = list(self.rejected)
        return found


class PlanBook:
    """Plans kept in `<cassette>/plans/`: `record` writes each plan made, `replay` reads
    them, `off` neither."""

    def __init__(self, folder: Path | None, mode: Literal["record", "replay", "off"]) -> None:
        self.folder = None if folder is None else Path(folder) / PLANS_FOLDER
        self.mode = mode if folder is not None else "off"

    def recall(self, key: str, step: JitStep) -> dict[str, Any]:
        assert self.folder is not None
        try:
            return json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise JitRefused(
                f"no recorded plan for jit step '{step.name}' in {self.folder.parent}; "
                "record one with --record DIR",
                "harness",
            ) from None

    def keep(self, key: str, step: JitStep, plan: JitPlan) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {"step": step.name, "goal": step.goal, "skills": list(plan.skills)}
        entry |= {"builder": plan.builder, "plan_sha256": plan.sha256}
        text = json.dumps(entry, indent=2, ensure_ascii=False) + "\n"
        (self.folder / f"{key}.json").write_text(text, encoding="utf-8")


def plan_key(step: JitStep) -> str:
    """What the plan depends on: the step's goal, types, parameters, budget and builder."""
    facts = step.model_dump(
        mode="json",
        include={"name", "goal", "input_type", "output_type", "with_", "budget", "builder"},
    )
    facts |= {"minimize": step.minimize, "min_success": step.min_success}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


async def make_plan(
    step: JitStep, registry: StepRegistry, book: PlanBook, ask: Ask | None
) -> JitPlan:
    """The step's plan: recalled (replay), or built and checked (and recorded)."""
    key = plan_key(step)
    if book.mode == "replay":
        data = book.recall(key, step)
        plan = checked(step, tuple(data.get("skills", ())), registry, str(data.get("builder")))
        if isinstance(plan, str):
            raise JitRefused(f"the recorded plan of '{step.name}' is not valid now: {plan}")
        return plan
    plan = await build(step, registry, ask)
    if book.mode == "record":
        book.keep(key, step, plan)
    return plan


async def build(step: JitStep, registry: StepRegistry, ask: Ask | None) -> JitPlan:
    listing = _listings(registry)
    example = _planner(step, listing)
    if step.builder == "offline":
        if isinstance(example, str):
            raise JitRefused(f"no plan for '{step.goal}': {example}")
        plan = checked(step, example, registry, "offline")
        if isinstance(plan, str):  # the planner only offers what the checks accept
            raise JitRefused(f"the planner's plan was refused: {plan}")
        return plan
    if ask is None:
        raise JitRefused(
            f"jit step '{step.name}' asks {step.builder} for a plan and no model is "
            "configured: use --fake, --replay DIR, or set OPENAI_BASE_URL",
            "harness",
        )
    return await _ask_model(step, registry, ask, listing, example)


def checked(
    step: JitStep, skills: tuple[str, ...], registry: StepRegistry, builder: str
) -> JitPlan | str:
    """The plan, or why it cannot run: every check a plan must pass, whoever made it."""
    from flujo.spec.errors import SpecError
    from flujo.spec.figures import money
    from flujo.spec.fragment import fragment, fragment_text
    from flujo.spec.load import load_pipeline
    from flujo.spec.skill_packs import model_skills

    if not skills:
        return "the plan has no skills"
    if len(skills) > step.budget.max_steps:
        return (
            f"the plan has {len(skills)} steps, more than budget.max_steps {step.budget.max_steps}"
        )
    by_name = {item.name: item for item in _listings(registry)}
    allowed = step.budget.allow
    source = step.input_type
    for name in skills:
        item = by_name.get(name)
        if item is None or (item.origin != "model" and registry.problem(name) is not None):
            return f"'{name}' is not a skill the registry allows"
        if allowed is not None and name not in allowed:
            return f"'{name}' is not in the step's budget.allow"
        if not item.plannable or item.input_type != source:
            return f"'{name}' takes {item.input_type}, but the plan has {source} there"
        source = item.output_type
    if source != step.output_type:
        return f"the plan ends with {source}, not {step.output_type}"
    figures = [by_name[n].figures for n in skills]
    cost = sum(f.cost_usd for f in figures if f is not None)
    limit = step.budget.max_cost_usd
    if limit is not None and cost > limit:
        return f"the plan is estimated at {money(cost)} per run, over budget.max_cost_usd {limit}"
    declared = {info.name: set(info.params) for info in registry.manifest() if info.name in skills}
    packs = model_skills()
    for name in skills:
        if name in packs:
            missing = [p for p, spec in packs[name].params.items() if spec.required]
            missing = [p for p in missing if p not in step.with_]
            if missing:
                return f"'{name}' needs `with: {{{missing[0]}: …}}` on the jit step"
    data = fragment(skills, step.with_, name=step.name, declared=declared, prefix=step.name)
    text = fragment_text(data)
    try:
        pipeline = load_pipeline(text, registry=registry)
    except SpecError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        return f"the plan is not a valid pipeline: {first.message if first else exc}"
    sha = hashlib.sha256(text.encode()).hexdigest()
    return JitPlan(skills, builder, pipeline, sha)


def _listings(registry: StepRegistry) -> list[Listing]:
    from flujo.spec.skill_figures import Manifest, listings

    local = Path(".flujo") / "skill-figures.json"
    return listings(registry, Manifest.load(local if local.is_file() else None))


def _planner(step: JitStep, found: list[Listing]) -> tuple[str, ...] | str:
    """The marketplace planner's best plan for the step, or why there is none."""
    from flujo.spec.marketplace import MarketplaceQuery
    from flujo.spec.skill_figures import offers

    answer = MarketplaceQuery(
        step.input_type,
        step.output_type,
        step.minimize,
        step.min_success,
        allow=step.budget.allow,
        max_steps=step.budget.max_steps,
        max_cost_usd=step.budget.max_cost_usd,
        limit=1,
    ).run(offers(found))
    if not answer.feasible:
        return str(answer.explanation)
    return tuple(answer.plans[0].names)


_GUIDE = """\
You plan pipelines of typed skills. A plan is a list of skill names: the first takes the
input type, each next one takes the type the previous one gives, the last gives the
output type. Use only the skills listed, at most {max_steps} of them{cost}.
Answer with JSON: {{"skills": ["name", ...]}}.

Skills (name: input -> output; figures per call and where they come from):
{skills}
"""
_REPLY_SCHEMA = {
    "type": "object",
    "required": ["skills"],
    "properties": {"skills": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
}


async def _ask_model(
    step: JitStep,
    registry: StepRegistry,
    ask: Ask,
    found: list[Listing],
    example: tuple[str, ...] | str,
) -> JitPlan:
    from flujo.spec.model import Agent, AgentStep

    allowed = [
        i
        for i in found
        if i.plannable and (step.budget.allow is None or i.name in step.budget.allow)
    ]
    lines = [f"- {i.name}: {i.input_type} -> {i.output_type}; {i.badge}" for i in allowed]
    cost = (
        f", estimated at most ${step.budget.max_cost_usd} per run"
        if step.budget.max_cost_usd is not None
        else ""
    )
    agent = Agent(
        model=step.builder,
        system_prompt=_GUIDE.format(
            max_steps=step.budget.max_steps, cost=cost, skills="\n".join(lines)
        ),
        output_schema=_REPLY_SCHEMA,
        temperature=0,
    )
    planner = AgentStep(name=f"{step.name[:48]}-planner", uses="agents.planner")
    prompt = f"Goal: {step.goal}\nInput type: {step.input_type}\nOutput type: {step.output_type}"
    if not isinstance(example, str):
        prompt += f'\nExample of a valid plan: {{"skills": {json.dumps(list(example))}}}'
    rejected: list[str] = []
    feedback: str | None = None
    for _ in range(step.max_attempts):
        reply = await ask(agent, planner, prompt, feedback)
        skills = _skills_of(reply)
        plan = (
            checked(step, skills, registry, step.builder) if skills else "the reply names no skills"
        )
        if not isinstance(plan, str):
            return JitPlan(plan.skills, plan.builder, plan.fragment, plan.sha256, tuple(rejected))
        rejected.append(plan)
        feedback = f"That plan was refused: {plan}. Answer with another plan."
    raise JitRefused(
        f"{step.builder} gave no valid plan in {step.max_attempts} attempts: "
        + "; ".join(rejected),
        "model",
    )


def _skills_of(reply: Any) -> tuple[str, ...]:
    if isinstance(reply, str):
        try:
            reply = json.loads(reply)
        except ValueError:
            return ()
    skills = reply.get("skills") if isinstance(reply, dict) else None
    if not isinstance(skills, list) or not all(isinstance(s, str) for s in skills):
        return ()
    return tuple(skills)
