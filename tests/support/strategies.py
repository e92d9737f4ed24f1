"""Hypothesis strategies for Flujo specs.

`pipelines()` builds valid `Pipeline` models of every step kind, nested several levels
deep, full of strings that are awkward for YAML. With `checked=True` (the default) the
references inside them are also meaningful (known skills and agents, expressions that
parse and name existing steps), so `flujo.spec.load.check` reports no errors and
`Pipeline.from_yaml` (which runs those checks) accepts them. With `checked=False`
every string field, `uses:` and expressions included, may be any awkward text: such a
pipeline is only schema-valid.
"""

from __future__ import annotations

import keyword
import re
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from flujo.spec.expressions import template_step_references
from flujo.spec.model import Pipeline

# Strings YAML likes to turn into something else, or that need quoting, escaping or a
# block style to survive.
AWKWARD_TEXT: tuple[str, ...] = (
    "",
    " ",
    "1",
    "-1",
    "+1",
    "1.5",
    "1e3",
    "1_000",
    "0x10",
    "0o17",
    "0b101",
    "007",
    ".5",
    "true",
    "True",
    "FALSE",
    "yes",
    "No",
    "on",
    "off",
    "y",
    "null",
    "Null",
    "NULL",
    "~",
    ".inf",
    "-.Inf",
    ".nan",
    "2024-01-01",
    "2001-12-14t21:59:43.10-05:00",
    "12:30:00",
    "1:30",
    "a: b",
    "a:b",
    "key: value # not a comment",
    "# not a comment",
    "a #b",
    "a# b",
    "- item",
    "? question",
    "[1, 2]",
    "{a: 1}",
    "{{ input }}",
    "&anchor",
    "*alias",
    "!tag",
    "!!str",
    "%YAML 1.2",
    "@at",
    "`tick",
    "|",
    "> folded",
    "'",
    '"',
    "'single'",
    '"double"',
    "it's",
    "\\",
    "\\n",
    "---",
    "...",
    "<<",
    "=",
    ",",
    " leading space",
    "trailing space ",
    "  both  ",
    "tab\tinside",
    "\t",
    "line\nbreak",
    "trailing newline\n",
    "two trailing newlines\n\n",
    "\nleading newline",
    "\n",
    "\n\n",
    "a\n\nb",
    "a\n  indented",
    "a\n\tindented by tab",
    "a\n#b",
    "a\n---\nb",
    "a\n...\nb",
    "a \nb",
    "a\n \nb",
    "crlf\r\nline",
    "cr\rline",
    "é ü ñ ß",
    "日本語のテキスト",
    "emoji 😀🎉",
    "RTL שלום",
    "\u00a0nbsp",
    "zero\u200bwidth",
    "nel\x85inside",
    "\x85",
    "ls\u2028ps\u2029",
    "bell\x07",
    "nul\x00",
    "\ufeffbom",
    "del\x7f",
    "esc\x1b[0m",
    "multi\nline with: colon\nand # hash\n",
)

# Valid step, agent and policy names that look like other YAML values.
AWKWARD_NAMES: tuple[str, ...] = (
    "true",
    "True",
    "null",
    "None",
    "yes",
    "No",
    "on",
    "y",
    "inf",
    "nan",
    "_",
    "__",
    "_1",
    "e1",
    "x-",
    "a--b",
    "if",
    "class",
    "steps",
    "input",
    "A" * 64,
)

MODELS = ("openai:gpt-4o", "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku", "x:true", "a:1")
VALIDATOR_SKILLS = ("non_empty", "json_schema", "max_length")
TRANSFORM_SKILLS = ("passthrough", "json_parse", "regex_extract", "template_render")

awkward_text: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(AWKWARD_TEXT),
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.lists(st.sampled_from(AWKWARD_TEXT), min_size=2, max_size=3).map("".join),
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=8),
        min_size=2,
        max_size=3,
    ).map("\n".join),
)
"""Any text, biased towards strings YAML would misread without care."""

long_text: st.SearchStrategy[str] = st.integers(820, 900).map(lambda n: "word " * n)
"""Longer than the emitter's line width (4096), with spaces it could fold the line at."""

names: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(AWKWARD_NAMES),
    # `^[A-Za-z_][A-Za-z0-9_-]{0,63}$`, spelled out: much faster than `st.from_regex`.
    st.builds(
        str.__add__,
        st.sampled_from(string.ascii_letters + "_"),
        st.text(string.ascii_letters + string.digits + "_-", max_size=63),
    ),
)
"""Strings that satisfy the `Name` pattern."""

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    awkward_text,
)

json_data: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(awkward_text, children, max_size=3)
    ),
    max_leaves=4,
)
"""JSON-compatible data (what `input:`, `with:` and test inputs may hold)."""

# A JSON Schema (draft 2020-12, the default of `jsonschema.validators.validator_for`).
json_schemas: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])},
        optional={
            "description": awkward_text,
            "enum": st.lists(json_scalars, min_size=1, max_size=2),
            "minLength": st.integers(0, 100),
        },
    ),
    lambda children: st.one_of(
        st.builds(
            lambda props, required: {
                "type": "object",
                "properties": props,
                "required": sorted(set(required) & set(props)),
            },
            st.dictionaries(awkward_text, children, max_size=2),
            st.lists(awkward_text, max_size=2),
        ),
        st.builds(lambda items: {"type": "array", "items": items}, children),
    ),
    max_leaves=3,
)


# Strategies used inside `pipeline_data`, built once (building them per draw is slow).
nonempty_text = awkward_text.filter(bool)
short_text = awkward_text.filter(lambda s: len(s) <= 200)
_test_names = awkward_text.filter(lambda s: 0 < len(s) <= 200)
_unchecked_expressions = awkward_text.filter(lambda s: 0 < len(s) <= 4096)
_literals = awkward_text.filter(lambda s: len(s) < 1000)
_brace_free_text = awkward_text.filter(lambda s: "{" not in s and "}" not in s)
# Text a template check will not read as a reference to a step.
_free_text = awkward_text.filter(lambda s: not template_step_references(s))


def _brace_free(value: Any) -> bool:
    """No `{` or `}` in any text of `value`: an `input:` is a template, and a stray brace
    may not parse as one (`{{`), which a checked pipeline must not hold."""
    if isinstance(value, str):
        return "{" not in value and "}" not in value
    if isinstance(value, dict):
        return all(_brace_free(k) and _brace_free(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_brace_free, value))
    return True


_plain_json_data = json_data.filter(_brace_free)
_params = st.dictionaries(awkward_text, json_data, max_size=3)
_unchecked_validators = st.one_of(
    nonempty_text,
    st.fixed_dictionaries(
        {"uses": nonempty_text},
        optional={"with": st.dictionaries(awkward_text, json_data, max_size=2)},
    ),
)
_regex_options = st.fixed_dictionaries({}, optional={"group": json_data, "all": st.booleans()})
_configs = st.fixed_dictionaries(
    {},
    optional={
        "max_retries": st.integers(0, 100),
        "timeout_s": st.floats(0, 86400, exclude_min=True),
        "backoff": st.fixed_dictionaries(
            {},
            optional={
                "initial_s": st.floats(0, 3600),
                "multiplier": st.floats(1, 10),
                "max_s": st.floats(0, 3600),
                "jitter": st.booleans(),
            },
        ),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1, exclude_min=True),
    },
)
_parallel_options = st.fixed_dictionaries(
    {},
    optional={
        "merge": st.sampled_from(["dict", "list"]),
        "on_branch_failure": st.sampled_from(["fail", "ignore"]),
    },
)
_models = st.sampled_from(MODELS) | st.from_regex(r"\A[A-Za-z0-9_.-]+:\S+\Z", fullmatch=True)
_agent_options = st.fixed_dictionaries(
    {}, optional={"temperature": st.floats(0, 2), "max_tokens": st.integers(1, 10**9)}
)
_usage_limits = st.fixed_dictionaries(
    {},
    optional={
        "total_cost_usd": st.floats(0, 1e6, exclude_min=True),
        "total_tokens": st.integers(1, 10**12),
    },
)
_unchecked_schemas = st.dictionaries(awkward_text, json_data, max_size=3)
_branch_keys = st.lists(awkward_text, min_size=1, max_size=2, unique=True)


def _identifier_like(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def step_ref(name: str) -> str:
    """`steps.NAME` in the spelling Python's parser reads as a reference to NAME."""
    return f"steps.{name}" if _identifier_like(name) else f"steps[{name!r}]"


@dataclass
class _Draft:
    """Mutable state while one pipeline is drawn."""

    checked: bool
    budget: int
    step_names: set[str] = field(default_factory=set)
    agents: list[str] = field(default_factory=list)
    # (node, key, what): fields filled once every step name is known.
    pending: list[tuple[dict[str, Any], str, str]] = field(default_factory=list)

    def unique_name(self, draw: st.DrawFn, taken: set[str]) -> str:
        name = draw(names)
        suffix = 0
        while name in taken:
            suffix += 1
            name = f"{name[: 60 - len(str(suffix))]}_{suffix}"
        taken.add(name)
        return name


def _expression(draw: st.DrawFn, draft: _Draft) -> str:
    """An expression that parses and refers only to steps that exist (when checked)."""
    if not draft.checked:
        return draw(_unchecked_expressions)
    kind = draw(st.integers(0, 5))
    if kind == 0 and draft.step_names:
        ref = step_ref(draw(st.sampled_from(sorted(draft.step_names))))
        return draw(st.sampled_from([f"{ref}.output", f"{ref}.output.ok == True", ref]))
    if kind == 1:
        return f"input == {draw(_literals)!r}"
    if kind == 2:
        return f"len(input) > {draw(st.integers(0, 10**6))}"
    if kind == 3:
        return "  result.output  "
    if kind == 4:
        return "(input.a\n and not input.b)\n"
    return draw(st.sampled_from(["input", "input.category", "True", "result.total_cost_usd < 0.5"]))


def _validator(draw: st.DrawFn, draft: _Draft) -> Any:
    if not draft.checked:
        return draw(_unchecked_validators)
    skill = draw(st.sampled_from(VALIDATOR_SKILLS))
    if skill == "non_empty":
        return draw(st.sampled_from(["non_empty", {"uses": "non_empty"}]))
    if skill == "json_schema":
        return {"uses": "json_schema", "with": {"schema": draw(json_schemas)}}
    return {"uses": "max_length", "with": {"max": draw(st.integers(0, 10**9))}}


def _uses_and_with(draw: st.DrawFn, draft: _Draft, step: dict[str, Any]) -> None:
    if not draft.checked:
        if draw(st.booleans()):
            step["uses"] = draw(nonempty_text)
        params = draw(_params)
        if params:
            step["with"] = params
        return
    uses = draw(st.sampled_from([None, *TRANSFORM_SKILLS, "agents", "agents"]))
    if uses == "agents" and draft.agents:
        step["uses"] = f"agents.{draw(st.sampled_from(draft.agents))}"
    elif uses == "regex_extract":
        step["uses"] = uses
        step["with"] = {"pattern": re.escape(draw(awkward_text))} | draw(_regex_options)
    elif uses == "template_render":
        step["uses"] = uses
        text = draw(_brace_free_text) + draw(st.sampled_from(["", "{{ input }}"]))
        step["with"] = {"template": text}
    elif uses in TRANSFORM_SKILLS:
        step["uses"] = uses


def _agent_step(draw: st.DrawFn, draft: _Draft, *, fallback_depth: int = 0) -> dict[str, Any]:
    step: dict[str, Any] = {"name": draft.unique_name(draw, draft.step_names)}
    if draw(st.booleans()):
        step["kind"] = "step"
    if draw(st.booleans()):
        step["description"] = draw(awkward_text)
    _uses_and_with(draw, draft, step)
    input_kind = draw(st.integers(0, 3))
    if input_kind == 1:
        step["input"] = draw(_brace_free_text if draft.checked else _free_text)
    elif input_kind == 2:
        step["input"] = draw(_plain_json_data if draft.checked else json_data)
    elif input_kind == 3:  # a template, which may name any step
        draft.pending.append((step, "input", "template"))
    if draw(st.booleans()):
        step["config"] = draw(_configs)
    if draw(st.booleans()):
        step["validators"] = [_validator(draw, draft) for _ in range(draw(st.integers(0, 2)))]
    if fallback_depth < 2 and draw(st.integers(0, 3)) == 0:
        step["fallback"] = _agent_step(draw, draft, fallback_depth=fallback_depth + 1)
    return step


def _step_list(
    draw: st.DrawFn,
    draft: _Draft,
    depth: int,
    min_size: int = 0,
    spine: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """`{"steps": [...]}`; with a `spine`, one of the steps continues it."""
    count = draw(st.integers(min_size, 2 if draft.budget > 0 else max(min_size, 1)))
    if spine is not None:
        count = max(count - 1, 0)
    steps = [_step(draw, draft, depth) for _ in range(count)]
    if spine is not None:
        steps.insert(draw(st.integers(0, len(steps))), _step(draw, draft, depth, spine=spine))
    return {"steps": steps}


_CONTAINERS = ("parallel", "conditional", "loop", "map", "state_machine")
"""Kinds the generator nests steps in (cache, dynamic_router and agentic_loop are
covered by tests/engine/test_delegating_kinds.py)."""


def _step(
    draw: st.DrawFn, draft: _Draft, depth: int, *, spine: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A random step. With a `spine` of container kinds it is a container of the first
    kind, holding the rest of the spine: deep nesting of every kind is then common without
    making every pipeline big."""
    draft.budget -= 1
    can_nest = depth < 4 and draft.budget > 0
    if spine:
        kind = spine[0]
    else:
        kind = draw(st.sampled_from(("step", "hitl", *_CONTAINERS) if can_nest else ("step",)))
    if kind == "step":
        return _agent_step(draw, draft)
    if kind == "hitl":
        return _hitl_step(draw, draft)
    step: dict[str, Any] = {"name": draft.unique_name(draw, draft.step_names), "kind": kind}
    if draw(st.booleans()):
        step["description"] = draw(awkward_text)
    inner = spine[1:] if spine else None  # the first step list carries the spine on

    def steps(min_size: int = 0, carry: bool = False) -> dict[str, Any]:
        return _step_list(draw, draft, depth + 1, min_size, inner if carry else None)

    if kind == "parallel":
        branch_names: set[str] = set()
        count = draw(st.integers(1, 2))
        step["branches"] = {
            draft.unique_name(draw, branch_names): steps(carry=i == 0) for i in range(count)
        }
        step |= draw(_parallel_options)
    elif kind == "conditional":
        draft.pending.append((step, "condition_expression", "expression"))
        keys = draw(_branch_keys)
        step["branches"] = {key: steps(carry=i == 0) for i, key in enumerate(keys)}
        if draw(st.booleans()):
            step["default"] = steps()
    elif kind == "loop":
        step["body"] = steps(min_size=1, carry=True)
        if draw(st.booleans()):
            step["max_loops"] = draw(st.integers(1, 10_000))
        if draw(st.booleans()):
            draft.pending.append((step, "exit_expression", "expression"))
    elif kind == "state_machine":
        state_names: set[str] = set()
        count = draw(st.integers(1, 2))
        step["states"] = {
            draft.unique_name(draw, state_names): steps(carry=i == 0) for i in range(count)
        }
        states = list(step["states"])
        step["start_state"] = draw(st.sampled_from(states))
        ends = ["finished"] if draw(st.booleans()) and "finished" not in states else []
        if ends:
            step["end_states"] = ends
        rules: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(0, 2))):
            rule = {
                "from": draw(st.sampled_from([*states, "*"])),
                "to": draw(st.sampled_from([*states, *ends])),
            }
            if draw(st.booleans()):
                rule["on"] = draw(st.sampled_from(["success", "failure"]))
            if draw(st.booleans()):
                draft.pending.append((rule, "when", "expression"))
            rules.append(rule)
        if rules:
            step["transitions"] = rules
        if draw(st.booleans()):
            step["max_transitions"] = draw(st.integers(1, 10_000))
    else:
        draft.pending.append((step, "over", "expression"))
        step["body"] = steps(min_size=1, carry=True)
    return step


def _hitl_step(draw: st.DrawFn, draft: _Draft) -> dict[str, Any]:
    step: dict[str, Any] = {"name": draft.unique_name(draw, draft.step_names), "kind": "hitl"}
    if draw(st.booleans()):
        draft.pending.append((step, "message", "template"))
    if draw(st.booleans()):
        step["input_schema"] = draw(json_schemas if draft.checked else _unchecked_schemas)
    return step


def _template(draw: st.DrawFn, draft: _Draft) -> str:
    known = sorted(n for n in draft.step_names if _identifier_like(n))
    ref = f"steps.{draw(st.sampled_from(known))}.output" if known else "input"
    return draw(st.sampled_from([f"{{{{ {ref} }}}}", f"Value: {{{{ {ref} }}}}\nDone.\n"]))


def _agent(draw: st.DrawFn, draft: _Draft) -> dict[str, Any]:
    agent: dict[str, Any] = {"model": draw(_models)}
    if draw(st.booleans()):
        agent["system_prompt"] = draw(awkward_text)
    if draw(st.booleans()):
        agent["output_schema"] = draw(json_schemas if draft.checked else _unchecked_schemas)
    return agent | draw(_agent_options)


@st.composite
def pipeline_data(draw: st.DrawFn, *, checked: bool = True, max_steps: int = 4) -> dict[str, Any]:
    """The plain data of a valid pipeline (what `Pipeline.model_validate` takes)."""
    draft = _Draft(checked=checked, budget=draw(st.integers(0, max_steps)))  # 0: `steps: []`
    agent_names: set[str] = set()
    agents = {
        draft.unique_name(draw, agent_names): _agent(draw, draft)
        for _ in range(draw(st.integers(0, 2)))
    }
    draft.agents = list(agents)
    data: dict[str, Any] = {"steps": []}
    # Containers of distinct kinds stacked in the first step.
    spine = draw(st.permutations(_CONTAINERS))[: draw(st.integers(0, len(_CONTAINERS)))]
    if spine:
        data["steps"].append(_step(draw, draft, depth=0, spine=tuple(spine)))
    while draft.budget > 0 and len(data["steps"]) < 3:
        data["steps"].append(_step(draw, draft, depth=0))
    for node, key, what in draft.pending:
        node[key] = _template(draw, draft) if what == "template" else _expression(draw, draft)

    if draw(st.booleans()):
        data["version"] = draw(st.sampled_from(["1", "0.1"]))
    if draw(st.booleans()):
        data["name"] = draw(short_text)
    if draw(st.booleans()):
        data["description"] = draw(awkward_text | long_text)
    if agents:
        data["agents"] = agents
    tests = []
    for _ in range(draw(st.integers(0, 2))):
        test: dict[str, Any] = {
            "name": draw(_test_names.filter(lambda s: all(s != t["name"] for t in tests))),
            "assertions": [_expression(draw, draft) for _ in range(draw(st.integers(1, 2)))],
        }
        if draw(st.booleans()):
            test["input"] = draw(json_data)
        if draw(st.booleans()):
            test["description"] = draw(awkward_text)
        if draft.step_names and draw(st.booleans()):
            mocked = st.sampled_from(sorted(draft.step_names)) if checked else names
            test["mocks"] = draw(st.dictionaries(mocked, json_data, max_size=2))
        if draw(st.booleans()):
            test["tags"] = draw(st.lists(names, max_size=2))
        tests.append(test)
    if tests:
        data["tests"] = tests
    policy_ids: set[str] = set()
    policies = []
    for _ in range(draw(st.integers(0, 2))):
        policy: dict[str, Any] = {
            "id": draft.unique_name(draw, policy_ids),
            "assert": _expression(draw, draft),
        }
        if draw(st.booleans()):
            policy["when"] = _expression(draw, draft)
        if draw(st.booleans()):
            policy["description"] = draw(awkward_text)
        if draw(st.booleans()):
            policy["action"] = draw(st.sampled_from(["FAIL_RUN", "REQUIRE_APPROVAL", "WARN"]))
        policies.append(policy)
    if policies:
        data["policies"] = policies
    if draw(st.booleans()):
        data["usage_limits"] = draw(_usage_limits)
    return data


def pipelines(*, checked: bool = True) -> st.SearchStrategy[Pipeline]:
    """Valid `Pipeline` models (see the module docstring for `checked`)."""
    return pipeline_data(checked=checked).map(Pipeline.model_validate)


def step_depth(pipeline: Pipeline) -> int:
    """How many step lists deep the most nested step sits (top-level steps are at 1)."""
    return max((path.count(".steps[") + 1 for path, _ in pipeline.walk()), default=0)
