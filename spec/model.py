"""The pipeline spec as frozen Pydantic models.

Every node knows where it came from (`yaml_path`, `line`, `col`) once loaded from a
file; those locations are not part of equality, so a spec written back and read again
compares equal to the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StringConstraints,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

if TYPE_CHECKING:
    from flujo.spec.registry import StepRegistry
    from flujo.spec.source import SourceDocument

FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("0.1", "1")

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"),
    Field(description="A name: letters, digits, `_` and `-`, starting with a letter or `_`."),
]
Expression = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    Field(description="An expression in Flujo's sandboxed expression language."),
]


class SpecNode(BaseModel):
    """Base of every spec node: frozen, strict about unknown keys, aware of its place."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        allow_inf_nan=False,
        validate_by_alias=True,
        serialize_by_alias=True,
        # Built once, as part of `Pipeline` (below); a node class validated on its own is
        # built on first use. Building each class as it is defined made a cold
        # `flujo validate` generate the step kinds' schemas four times over.
        defer_build=True,
    )

    _yaml_path: str = PrivateAttr(default="")
    _line: int | None = PrivateAttr(default=None)
    _col: int | None = PrivateAttr(default=None)

    def _private(self, name: str) -> Any:
        """A private attribute, read without pydantic's `__getattr__` (which raises and
        catches two AttributeErrors on every read of one)."""
        private = self.__pydantic_private__
        return private[name] if private is not None and name in private else getattr(self, name)

    @property
    def yaml_path(self) -> str:
        """Where this node sits in the document, e.g. `steps[2].branches.main.steps[0]`."""
        return str(self._private("_yaml_path"))

    @property
    def line(self) -> int | None:
        """1-based line of this node in its file (None when not loaded from a file)."""
        line: int | None = self._private("_line")
        return line

    @property
    def col(self) -> int | None:
        """1-based column of this node in its file (None when not loaded from a file)."""
        col: int | None = self._private("_col")
        return col

    def __eq__(self, other: object) -> bool:
        # Locations are deliberately excluded: equal specs are equal wherever they came from.
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]


class Backoff(SpecNode):
    """Delay between retries: `initial_s * multiplier**attempt`, capped at `max_s`."""

    initial_s: float = Field(1.0, ge=0, le=3600, description="Delay before the first retry.")
    multiplier: float = Field(2.0, ge=1, le=10, description="Factor applied to each next delay.")
    max_s: float = Field(30.0, ge=0, le=3600, description="Longest delay between two attempts.")
    jitter: bool = Field(True, description="Randomise each delay by up to ±50% to spread load.")


class StepConfig(SpecNode):
    """How a step is executed."""

    max_retries: int = Field(0, ge=0, le=100, description="Retries after the first attempt.")
    timeout_s: float | None = Field(
        None, gt=0, le=86400, description="Seconds one attempt may take (no limit when unset)."
    )
    backoff: Backoff = Field(default_factory=Backoff, description="Delay between retries.")
    temperature: float | None = Field(
        None, ge=0, le=2, description="Overrides the agent's sampling temperature for this step."
    )
    top_p: float | None = Field(
        None, gt=0, le=1, description="Overrides the agent's nucleus sampling for this step."
    )


class ValidatorRef(SpecNode):
    """A validator skill applied to a step's output; `uses: name` or just `name`."""

    uses: str = Field(min_length=1, description="Validator skill name or allowed `module:attr`.")
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="Parameters passed to the validator."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"uses": value} if isinstance(value, str) else value

    @model_serializer(mode="wrap")
    def _short_form(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if info.exclude_defaults and not self.with_:
            return self.uses
        return data


class Agent(SpecNode):
    """An LLM agent that steps can use as `uses: agents.NAME`."""

    model: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+:\S+$",
        description="Provider and model, e.g. `openai:gpt-4o-mini`.",
    )
    system_prompt: str = Field("", description="Instructions sent as the system message.")
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the agent's output must satisfy (structured output)."
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int | None = Field(None, gt=0, description="Most tokens the agent may generate.")


class StepList(SpecNode):
    """A nested sequence of steps, written as `steps: [...]`."""

    steps: list[Step] = Field(description="Steps run in order.")


def _kind_is_required(schema: dict[str, Any]) -> None:
    # In a file, only `kind: step` may be left out; the schema must say so, or editors
    # could not tell the kinds apart.
    kind = schema["properties"]["kind"]
    if kind.get("default") != "step":
        schema["required"] = ["kind", *schema.get("required", [])]


class StepBase(SpecNode):
    """Fields every kind of step has."""

    model_config = ConfigDict(json_schema_extra=_kind_is_required)

    name: Name = Field(description="Unique name of the step across the whole pipeline.")
    kind: str = Field(description="Kind of step.")
    description: str | None = Field(None, description="What the step is for (for people).")
    critical: bool = Field(
        False,
        description="The step's output matters for safety, money or compliance: every "
        "suggested change to it is high risk.",
    )
    updates_context: bool = Field(
        False,
        description="Merge the step's output (a mapping) into the run's `context`.",
    )
    sink_to: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
        description="Store the step's output in the run's `context` at this (dotted) key.",
    )

    @model_serializer(mode="wrap")
    def _kind_first(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        head = {"name": data.pop("name", self.name)}
        kind = data.pop("kind", None)
        if self.kind != "step":
            head["kind"] = self.kind
        elif kind is not None:
            head["kind"] = kind
        return head | data

    def children(self) -> Iterator[tuple[str, StepList]]:
        """Nested step lists with their field path relative to this step."""
        return iter(())

    def inner_steps(self) -> Iterator[tuple[str, AgentStep]]:
        """Single plain steps nested in this one (a fallback, a cached step, a router,
        a planner and its tools), with their field path relative to this step."""
        return iter(())

    def step_names(self) -> list[str]:
        """This step's name and those of every step nested in it (fallbacks included),
        depth first in document order."""
        names = [self.name]
        for _, step_list in self.children():
            for inner in step_list.steps:
                names.extend(inner.step_names())
        for _, single in self.inner_steps():
            names.extend(single.step_names())
        return names


class StepEval(SpecNode):
    """How `flujo eval` compares this step's outputs before and after a change."""

    compare: Literal["exact", "json_fields", "numeric", "judge"] | None = Field(
        None,
        description="`exact`: equal JSON; `json_fields`: equal on the output schema's required "
        "fields; `numeric`: numbers within `tolerance`; `judge`: the agent `judge` answers "
        "same/different. Unset: chosen from the agent's `output_schema` (normalised text "
        "without one).",
    )
    tolerance: float = Field(
        1e-6, ge=0, description="Largest relative difference `numeric` counts as agreement."
    )
    judge: Name | None = Field(
        None, description="Agent of this spec that answers `same` or `different` (for `judge`)."
    )


class AgentStep(StepBase):
    """`kind: step` (the default): run an agent or a skill once."""

    kind: Literal["step"] = Field("step", description="Kind of step (`step` is the default).")
    uses: str | None = Field(
        None,
        min_length=1,
        description="`agents.NAME`, a registry skill name, or an allowed `module:attr`; "
        "a step without `uses` passes its input through.",
    )
    input: Any = Field(
        None,
        description="Input of the step: a template string such as `{{ steps.fetch.output }}`, "
        "or data. Defaults to the previous step's output.",
    )
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="Parameters passed to the skill."
    )
    config: StepConfig = Field(default_factory=StepConfig, description="Retries and timeouts.")
    validators: list[ValidatorRef] = Field(
        default_factory=list, description="Checks on the output; a failure triggers a retry."
    )
    fallback: AgentStep | None = Field(
        None, description="Step run instead when this one fails after its retries."
    )
    eval_: StepEval | None = Field(
        None, alias="eval", description="How `flujo eval` compares this step's outputs."
    )

    def inner_steps(self) -> Iterator[tuple[str, AgentStep]]:
        if self.fallback is not None:
            yield "fallback", self.fallback


class ParallelStep(StepBase):
    """`kind: parallel`: run named branches concurrently and merge their outputs."""

    kind: Literal["parallel"] = Field("parallel", description="Kind of step.")
    branches: dict[Name, StepList] = Field(
        min_length=1, description="Branches run concurrently, by name."
    )
    merge: Literal["dict", "list"] = Field(
        "dict", description="`dict`: output maps branch name to output; `list`: in branch order."
    )
    on_branch_failure: Literal["fail", "ignore"] = Field(
        "fail", description="`fail` the step when a branch fails, or `ignore` the branch."
    )

    def children(self) -> Iterator[tuple[str, StepList]]:
        from flujo.spec.paths import child

        for branch, steps in self.branches.items():
            yield child("branches", branch), steps


class ConditionalStep(StepBase):
    """`kind: conditional`: run the branch whose name equals the condition's value."""

    kind: Literal["conditional"] = Field("conditional", description="Kind of step.")
    condition_expression: Expression | None = Field(
        None, description="Expression whose value (as text) picks the branch."
    )
    condition: str | None = Field(
        None,
        min_length=1,
        description="Instead of `condition_expression`: an allow-listed callable "
        "`module:attr` called with (previous output, context); its value picks the branch.",
    )
    branches: dict[str, StepList] = Field(min_length=1, description="Branches by value.")
    default: StepList | None = Field(None, description="Branch run when no other matches.")

    @model_validator(mode="after")
    def _one_condition(self) -> ConditionalStep:
        if (self.condition_expression is None) == (self.condition is None):
            raise ValueError("give exactly one of `condition_expression` and `condition`")
        return self

    @field_validator("branches", mode="before")
    @classmethod
    def _yaml11_keys(cls, value: Any) -> Any:
        # `true:` / `false:` branch keys come from YAML as booleans.
        if isinstance(value, dict):
            return {(str(k).lower() if isinstance(k, bool) else k): v for k, v in value.items()}
        return value

    def children(self) -> Iterator[tuple[str, StepList]]:
        from flujo.spec.paths import child

        for branch, steps in self.branches.items():
            yield child("branches", branch), steps
        if self.default is not None:
            yield "default", self.default


class LoopStep(StepBase):
    """`kind: loop`: run `body` until `exit_expression` is true or `max_loops` is reached."""

    kind: Literal["loop"] = Field("loop", description="Kind of step.")
    body: StepList = Field(description="Steps run on each iteration.")
    max_loops: int = Field(5, ge=1, le=10_000, description="Most iterations.")
    exit_expression: Expression | None = Field(
        None, description="Checked after each iteration; the loop ends when it is true."
    )
    exit_condition: str | None = Field(
        None,
        min_length=1,
        description="An allow-listed callable `module:attr` called with (output, context) "
        "after each iteration; the loop ends when it returns true.",
    )

    def children(self) -> Iterator[tuple[str, StepList]]:
        yield "body", self.body


class MapStep(StepBase):
    """`kind: map`: run `body` once per item of the list that `over` evaluates to."""

    kind: Literal["map"] = Field("map", description="Kind of step.")
    over: Expression = Field(description="Expression giving the list to map over.")
    body: StepList = Field(description="Steps run for each item (the item is `input`).")

    def children(self) -> Iterator[tuple[str, StepList]]:
        yield "body", self.body


class HitlStep(StepBase):
    """`kind: hitl`: ask a person; their answer (checked against `input_schema`) is the output."""

    kind: Literal["hitl"] = Field("hitl", description="Kind of step.")
    message: str | None = Field(
        None, description="What the person is asked (a template over `input` and `previous`)."
    )
    input_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the answer must satisfy; a text answer when unset."
    )


class Transition(SpecNode):
    """A state machine rule: after state `from` ends with outcome `on` (and `when` holds),
    go to state `to`."""

    from_: str = Field(alias="from", min_length=1, description="State name, or `*` for any.")
    on: Literal["success", "failure"] = Field(
        "success", description="Outcome of the state's steps this rule reacts to."
    )
    to: str = Field(min_length=1, description="Next state (or an end state).")
    when: Expression | None = Field(
        None, description="Extra condition over `output` (the state's output)."
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml11_on(cls, value: Any) -> Any:
        # An unquoted `on:` key is the boolean true in YAML 1.1 parsers.
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if k is True else k): v for k, v in value.items()}
        return value


class StateMachineStep(StepBase):
    """`kind: state_machine`: run named states, moving between them by `transitions`
    until an end state is reached (at most `max_transitions` moves)."""

    kind: Literal["state_machine"] = Field("state_machine", description="Kind of step.")
    start_state: Name = Field(description="State run first.")
    end_states: list[Name] = Field(
        default_factory=list, description="Reaching one of these states ends the machine."
    )
    states: dict[Name, StepList] = Field(min_length=1, description="Steps of each state.")
    transitions: list[Transition] = Field(
        default_factory=list,
        description="Rules, first match wins; with none matching, the machine ends.",
    )
    max_transitions: int = Field(
        50, ge=1, le=10_000, description="Most moves between states before the step fails."
    )

    @field_validator("end_states", mode="before")
    @classmethod
    def _one_end_state(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def children(self) -> Iterator[tuple[str, StepList]]:
        from flujo.spec.paths import child

        for state, steps in self.states.items():
            yield child("states", state), steps


class JitBudget(SpecNode):
    """What the plan of a `jit` step may use: it can never go beyond this."""

    max_cost_usd: float | None = Field(
        None,
        gt=0,
        description="Most the plan may cost per run, in USD: plans estimated above it are not "
        "made, and the run fails when its steps spend more.",
    )
    max_steps: int = Field(4, ge=1, le=12, description="Most steps a plan may have.")
    allow: list[str] | None = Field(
        None,
        description="Skills a plan may use (default: every typed skill the registry allows; "
        "never more than the registry allows).",
    )


class JitStep(StepBase):
    """`kind: jit`: a goal turned into a validated sub-pipeline of typed skills at run
    time (see the marketplace docs), run with spans under this step's yaml_path."""

    kind: Literal["jit"] = Field("jit", description="Kind of step.")
    goal: str = Field(min_length=1, max_length=2000, description="What the plan must achieve.")
    input: Any = Field(
        None,
        description="Input of the plan (a template, or data); defaults to the previous output.",
    )
    input_type: str = Field("str", description="Type of the plan's input (e.g. `str`).")
    output_type: str = Field(description="Type the plan must produce (e.g. `ValidatedSQL`).")
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="Parameters given to every skill of the plan that declares them "
        "(e.g. `schema`).",
    )
    budget: JitBudget = Field(default_factory=JitBudget, description="Limits of the plan.")
    builder: str = Field(
        "offline",
        pattern=r"^(offline|openai:[A-Za-z0-9_.:-]+)$",
        description="`offline`: the marketplace planner; `openai:MODEL`: a model proposes the "
        "plan (through the guard; the planner's answer is its example).",
    )
    minimize: Literal["cost", "latency"] = Field("cost", description="What the plan minimises.")
    min_success: float = Field(
        0.0, ge=0, le=1, description="Least estimated success of the plan (measured figures only)."
    )
    max_attempts: int = Field(
        3, ge=1, le=5, description="Plans asked of a model builder, each told why the last failed."
    )


def _plain_step_shorthand(value: Any, name: str) -> Any:
    """`agents.NAME` (or any `uses:` reference) written where a plain step goes: the step
    `{name: NAME, uses: value}`."""
    return {"name": name, "uses": value} if isinstance(value, str) else value


def _derived_name(*parts: str) -> str:
    return "_".join(parts)[:64]


def _shorthand_schema(*fields: str, mapping: str | None = None) -> Any:
    """Schema hook: `fields` (and the values of the mapping field `mapping`) may also be
    written as a `uses:` string, as the before-validators read them."""

    def extra(schema: dict[str, Any]) -> None:
        _kind_is_required(schema)
        properties = schema["properties"]
        for name in fields:
            properties[name] = {
                "anyOf": [{"type": "string", "minLength": 1}, properties[name]],
                "description": properties[name].get("description", ""),
            }
        if mapping is not None:
            patterns = properties[mapping]["patternProperties"]
            for pattern, values in patterns.items():
                patterns[pattern] = {"anyOf": [{"type": "string", "minLength": 1}, values]}

    return extra


class CacheStep(StepBase):
    """`kind: cache`: run `wrapped_step`, reusing its output for an equal input within
    `ttl_s` (kept in the run store, keyed by the step's definition and the input)."""

    kind: Literal["cache"] = Field("cache", description="Kind of step.")
    wrapped_step: AgentStep = Field(description="The plain step whose output is reused.")
    ttl_s: float = Field(
        3600, gt=0, le=30 * 86400, description="Seconds a stored output is reused."
    )

    def inner_steps(self) -> Iterator[tuple[str, AgentStep]]:
        yield "wrapped_step", self.wrapped_step


class DynamicRouterStep(StepBase):
    """`kind: dynamic_router`: `router_agent` (an agent or skill) names the branches to
    run (a list of names, or one name); they run concurrently, as in `parallel`."""

    model_config = ConfigDict(json_schema_extra=_shorthand_schema("router_agent"))

    kind: Literal["dynamic_router"] = Field("dynamic_router", description="Kind of step.")
    router_agent: AgentStep = Field(
        description="Plain step (or just its `uses:`, e.g. `agents.router`) whose output "
        "names the branches to run: a list of branch names, or one name."
    )
    branches: dict[Name, StepList] = Field(
        min_length=1, description="Branches the router may choose, by name."
    )
    on_branch_failure: Literal["fail", "ignore"] = Field(
        "fail", description="`fail` the step when a branch fails, or `ignore` the branch."
    )

    @model_validator(mode="before")
    @classmethod
    def _router_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("router_agent"), str):
            name = _derived_name(str(value.get("name", "router")), "router")
            value = {**value, "router_agent": _plain_step_shorthand(value["router_agent"], name)}
        return value

    def children(self) -> Iterator[tuple[str, StepList]]:
        from flujo.spec.paths import child

        for branch, steps in self.branches.items():
            yield child("branches", branch), steps

    def inner_steps(self) -> Iterator[tuple[str, AgentStep]]:
        yield "router_agent", self.router_agent


class AgenticLoopStep(StepBase):
    """`kind: agentic_loop`: the `planner` is asked, turn by turn, for a command:
    `{"type": "run_agent", "agent_name": TOOL, "input_data": …}` runs one of `tools`
    (its output goes back to the planner), `{"type": "finish", "final_answer": …}` ends
    the loop with that answer. At most `max_loops` turns, within the run's usage limits."""

    model_config = ConfigDict(json_schema_extra=_shorthand_schema("planner", mapping="tools"))

    kind: Literal["agentic_loop"] = Field("agentic_loop", description="Kind of step.")
    planner: AgentStep = Field(
        description="Plain step (or just its `uses:`, e.g. `agents.planner`) that answers "
        "each turn with a command; it is given `{goal, history}`."
    )
    tools: dict[Name, AgentStep] = Field(
        default_factory=dict,
        description="Tools the planner may run, by name: plain steps, or just their `uses:`.",
    )
    max_loops: int = Field(10, ge=1, le=1000, description="Most planner turns.")
    output_template: str | None = Field(
        None,
        description="Template over `previous_step` (the final answer) and `context` giving "
        "the step's output; the final answer itself when unset.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        name = str(value.get("name", "loop"))
        value = dict(value)
        if isinstance(value.get("planner"), str):
            value["planner"] = _plain_step_shorthand(
                value["planner"], _derived_name(name, "planner")
            )
        tools = value.get("tools")
        if isinstance(tools, dict):
            value["tools"] = {
                key: _plain_step_shorthand(tool, _derived_name(name, str(key)))
                for key, tool in tools.items()
            }
        return value

    def inner_steps(self) -> Iterator[tuple[str, AgentStep]]:
        from flujo.spec.paths import child

        yield "planner", self.planner
        for name, tool in self.tools.items():
            yield child("tools", name), tool


STEP_KINDS: dict[str, type[StepBase]] = {
    "step": AgentStep,
    "parallel": ParallelStep,
    "conditional": ConditionalStep,
    "loop": LoopStep,
    "map": MapStep,
    "hitl": HitlStep,
    "state_machine": StateMachineStep,
    "jit": JitStep,
    "cache": CacheStep,
    "dynamic_router": DynamicRouterStep,
    "agentic_loop": AgenticLoopStep,
}


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("kind", "step")
        return kind if isinstance(kind, str) else None
    return getattr(value, "kind", None)


Step = Annotated[
    Annotated[AgentStep, Tag("step")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[ConditionalStep, Tag("conditional")]
    | Annotated[LoopStep, Tag("loop")]
    | Annotated[MapStep, Tag("map")]
    | Annotated[HitlStep, Tag("hitl")]
    | Annotated[StateMachineStep, Tag("state_machine")]
    | Annotated[JitStep, Tag("jit")]
    | Annotated[CacheStep, Tag("cache")]
    | Annotated[DynamicRouterStep, Tag("dynamic_router")]
    | Annotated[AgenticLoopStep, Tag("agentic_loop")],
    Discriminator(_step_kind),
]


class SpecTest(SpecNode):
    """An embedded test: run the pipeline on `input` and check `assertions`."""

    name: str = Field(min_length=1, max_length=200, description="Name of the test.")
    description: str | None = Field(None, description="What the test checks (for people).")
    input: Any = Field(None, description="Input given to the pipeline.")
    assertions: list[Expression] = Field(
        min_length=1, description="Expressions over `result` that must all be true."
    )
    mocks: dict[Name, Any] = Field(
        default_factory=dict,
        description="Fixed outputs by step name: those steps are not run in this test.",
    )
    tags: list[Name] = Field(default_factory=list, description="Labels for selecting tests.")


class Policy(SpecNode):
    """A rule checked before merge and at run time: if `when`, then `assert`."""

    id: Name = Field(description="Unique id of the policy.")
    description: str | None = Field(None, description="Why the policy exists (for people).")
    when: Expression | None = Field(None, description="The policy applies only when this holds.")
    assert_: Expression = Field(alias="assert", description="What must hold.")
    action: Literal["FAIL_RUN", "REQUIRE_APPROVAL", "WARN"] = Field(
        "FAIL_RUN",
        description="`FAIL_RUN` fails the run and blocks merges; `REQUIRE_APPROVAL` blocks "
        "merges unless a maintainer overrides it; `WARN` only reports.",
    )


class UsageLimits(SpecNode):
    """Caps that stop a run cleanly when crossed."""

    total_cost_usd: float | None = Field(None, gt=0, description="Most a run may cost, in USD.")
    total_tokens: int | None = Field(None, gt=0, description="Most tokens a run may use.")


class Capture(SpecNode):
    """Sampling of step inputs and outputs at run time (captured examples for `flujo eval`).

    Environment variables override it: `FLUJO_CAPTURE_RATE`, `FLUJO_CAPTURE_MAX_BYTES`.
    Keys and tokens are always redacted, whatever `redact` says."""

    rate: float = Field(0.0, ge=0, le=1, description="Share of runs captured (0 to 1).")
    max_bytes: int = Field(
        16384, ge=64, le=1_048_576, description="Longest captured value (JSON, UTF-8 bytes)."
    )
    redact: list[Annotated[str, StringConstraints(min_length=1, max_length=1000)]] = Field(
        default_factory=list,
        description="Regular expressions whose matches are replaced by `[REDACTED]`.",
    )
    keep: int = Field(
        1000, ge=1, le=1_000_000, description="Most captured runs the store keeps per spec."
    )


class TelemetrySettings(SpecNode):
    """What a run records beyond its spans."""

    capture: Capture | None = Field(None, description="Captured examples (off when unset).")


class Pipeline(SpecNode):
    """A Flujo pipeline spec (the root of the document)."""

    model_config = ConfigDict(title="Flujo pipeline")

    version: str = Field(
        FORMAT_VERSION, description=f"Format version; `{FORMAT_VERSION}` (or `0.1` blueprints)."
    )
    name: str | None = Field(None, max_length=200, description="Name of the pipeline.")
    description: str | None = Field(None, description="What the pipeline does (for people).")
    agents: dict[Name, Agent] = Field(default_factory=dict, description="Agents by name.")
    imports: dict[Name, str] = Field(
        default_factory=dict,
        description="Other spec files by alias (paths relative to this file, inside the "
        "repository); a step runs one with `uses: imports.ALIAS`.",
    )
    steps: list[Step] = Field(description="Steps run in order.")
    tests: list[SpecTest] = Field(default_factory=list, description="Embedded tests.")
    policies: list[Policy] = Field(default_factory=list, description="Policies.")
    usage_limits: UsageLimits | None = Field(None, description="Cost and token caps per run.")
    input_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema the run's input must satisfy; checked before the first step "
        "(a mismatch fails the run at once, as an `input` failure).",
    )
    telemetry: TelemetrySettings | None = Field(
        None, description="Telemetry settings: captured examples."
    )

    _source: SourceDocument | None = PrivateAttr(default=None)
    _sha256: str | None = PrivateAttr(default=None)
    _imported: dict[str, Pipeline] = PrivateAttr(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value not in SUPPORTED_VERSIONS:
            supported = ", ".join(f"'{v}'" for v in SUPPORTED_VERSIONS)
            raise ValueError(f"unsupported version '{value}'; this Flujo reads {supported}")
        return value

    # -- loading and writing -------------------------------------------------------

    @classmethod
    def from_yaml(
        cls, text_or_path: str | Path, *, registry: StepRegistry | None = None
    ) -> Pipeline:
        """Load a spec from YAML text or a file path; raises SpecError with every problem.

        A `Path` (or a one-line string naming an existing file or ending in `.yml`/`.yaml`)
        is read as a file; anything else is YAML text.
        """
        from flujo.spec.load import load_pipeline

        return load_pipeline(text_or_path, registry=registry)

    def to_yaml(self) -> str:
        """The canonical YAML text of this spec (defaults left out)."""
        from flujo.spec.dump import dump_pipeline

        return dump_pipeline(self)

    # -- source ----------------------------------------------------------------------

    @property
    def spec_sha256(self) -> str:
        """SHA-256 of the file's bytes with LF line endings (of `to_yaml()` if built in code)."""
        source = self.source
        if source is not None:
            return source.sha256
        if self._private("_sha256") is None:
            from flujo.spec.source import spec_sha256

            self._sha256 = spec_sha256(self.to_yaml().encode("utf-8"))
        return str(self._private("_sha256"))

    @property
    def source(self) -> SourceDocument | None:
        """The parsed file this spec was loaded from, if any."""
        source: SourceDocument | None = self._private("_source")
        return source

    @property
    def file(self) -> str | None:
        source = self.source
        return source.file if source is not None else None

    @property
    def imported(self) -> dict[str, Pipeline]:
        """The pipelines named in `imports:`, loaded from their files, by alias."""
        imported: dict[str, Pipeline] = self._private("_imported")
        return imported

    def locate(self, yaml_path: str) -> tuple[int, int]:
        """1-based (line, col) of `yaml_path` in the source file."""
        if self._source is None:
            raise LookupError("this pipeline was not loaded from YAML")
        return self._source.locate(yaml_path)

    def path_at(self, line: int) -> str:
        """yaml_path of the most specific node at (or just before) a 1-based line."""
        if self._source is None:
            raise LookupError("this pipeline was not loaded from YAML")
        return self._source.path_at(line)

    # -- traversal -------------------------------------------------------------------

    def walk(self) -> Iterator[tuple[str, StepBase]]:
        """Every step (fallbacks included), depth first in document order, with its path."""
        stack: list[tuple[str, StepBase]] = [
            (f"steps[{i}]", s) for i, s in reversed(list(enumerate(self.steps)))
        ]
        while stack:
            path, step = stack.pop()
            yield path, step
            nested: list[tuple[str, StepBase]] = []
            for field_path, step_list in step.children():
                base = f"{path}.{field_path}.steps"
                nested.extend((f"{base}[{i}]", s) for i, s in enumerate(step_list.steps))
            nested.extend((f"{path}.{field}", inner) for field, inner in step.inner_steps())
            stack.extend(reversed(nested))

    def step(self, name: str) -> StepBase:
        """The step called `name` (KeyError if there is none)."""
        for _, step in self.walk():
            if step.name == name:
                return step
        raise KeyError(name)


StepList.model_rebuild()
Pipeline.model_rebuild()  # the one model every load validates: built at import
