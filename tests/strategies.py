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
from dataclasses import dataclass, field
from typing import Any

from flujo.spec.expressions import template_step_references
from flujo.spec.model import Pipeline
from hypothesis import strategies as st

NAME_PATTERN = r"\A[A-Za-z_][A-Za-z0-9_-]{0,63}\Z"

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
    st.text(max_size=20),
    # Longer than the emitter's line width (4096), with spaces it could fold at.
    st.integers(820, 900).map(lambda n: "word " * n),
    st.lists(st.sampled_from(AWKWARD_TEXT), min_size=2, max_size=3).map("".join),
    st.lists(
        st.text(st.characters(blacklist_characters="\n"), max_size=12), min_size=2, max_size=4
    ).map("\n".join),
)
"""Any text, biased towards strings YAML would misread without care."""

names: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(AWKWARD_NAMES), st.from_regex(NAME_PATTERN, fullmatch=True)
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
    max_leaves=8,
)
"""JSON-compatible data (what `input:`, `with:` and test inputs may hold)."""

# A JSON Schema (draft 2020-12, the default of `jsonschema.validators.validator_for`).
json_schemas: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])},
        optional={
            "description": awkward_text,
            "title": awkward_text,
            "const": json_scalars,
            "enum": st.lists(json_scalars, min_size=1, max_size=3),
            "minLength": st.integers(0, 100),
            "default": json_data,
        },
    ),
    lambda children: st.one_of(
        st.builds(
            lambda props, required: {
                "type": "object",
                "properties": props,
                "required": sorted(set(required) & set(props)),
            },
            st.dictionaries(awkward_text, children, max_size=3),
            st.lists(awkward_text, max_size=3),
        ),
        st.builds(lambda items: {"type": "array", "items": items}, children),
    ),
    max_leaves=6,
)


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
    pending: list[tuple[dict[str, Any], str, str]] = field(default_factory=list)

    def unique_name(self, draw: st.DrawFn, taken: set[str]) -> str:
        name = draw(names)
        suffix = 0
        while name in taken:
            suffix += 1
            name = f"{name[: 60 - len(str(suffix))]}_{suffix}"
        taken.add(name)
        return name


_EXPRESSION_KINDS = ("input", "step", "literal", "number", "spaced", "multiline")


def _expression(draw: st.DrawFn, draft: _Draft) -> str:
    """An expression that parses and refers only to steps that exist (when checked)."""
    if not draft.checked:
        return draw(awkward_text.filter(lambda s: 0 < len(s) <= 4096))
    known = sorted(draft.step_names)
    kind = draw(
        st.sampled_from(_EXPRESSION_KINDS if known else _EXPRESSION_KINDS[:1] + ("literal",))
    )
    if kind == "step":
        ref = step_ref(draw(st.sampled_from(known)))
        return draw(st.sampled_from([f"{ref}.output", f"{ref}.output.ok == True", ref]))
    if kind == "literal":
        return f"input == {draw(awkward_text.filter(lambda s: len(s) < 1000))!r}"
    if kind == "number":
        return f"len(input) > {draw(st.integers(0, 10**6))}"
    if kind == "spaced":
        return "  result.output  "
    if kind == "multiline":
        return "(input.a\n and not input.b)\n"
    return draw(st.sampled_from(["input", "input.category", "True", "result.total_cost_usd < 0.5"]))


def _free_text(draw: st.DrawFn, draft: _Draft) -> str:
    """Awkward text that a template check will not read as a step reference."""
    return draw(awkward_text.filter(lambda s: not template_step_references(s)))


def _validator(draw: st.DrawFn, draft: _Draft) -> Any:
    if not draft.checked:
        return draw(
            st.one_of(
                awkward_text.filter(bool),
                st.fixed_dictionaries(
                    {"uses": awkward_text.filter(bool)},
                    optional={"with": st.dictionaries(awkward_text, json_data, max_size=2)},
                ),
            )
        )
    skill = draw(st.sampled_from(VALIDATOR_SKILLS))
    if skill == "non_empty":
        return draw(st.sampled_from(["non_empty", {"uses": "non_empty"}]))
    if skill == "json_schema":
        return {"uses": "json_schema", "with": {"schema": draw(json_schemas)}}
    return {"uses": "max_length", "with": {"max": draw(st.integers(0, 10**9))}}


def _config(draw: st.DrawFn) -> dict[str, Any]:
    backoff = st.fixed_dictionaries(
        {},
        optional={
            "initial_s": st.floats(0, 3600),
            "multiplier": st.floats(1, 10),
            "max_s": st.floats(0, 3600),
            "jitter": st.booleans(),
        },
    )
    return draw(
        st.fixed_dictionaries(
            {},
            optional={
                "max_retries": st.integers(0, 100),
                "timeout_s": st.floats(0, 86400, exclude_min=True),
                "backoff": backoff,
                "temperature": st.floats(0, 2),
                "top_p": st.floats(0, 1, exclude_min=True),
            },
        )
    )


def _uses_and_with(draw: st.DrawFn, draft: _Draft, step: dict[str, Any]) -> None:
    if not draft.checked:
        uses = draw(st.none() | awkward_text.filter(bool))
        if uses is not None:
            step["uses"] = uses
        params = draw(st.dictionaries(awkward_text, json_data, max_size=3))
        if params:
            step["with"] = params
        return
    choices = [None, *TRANSFORM_SKILLS] + (["agents"] * 2 if draft.agents else [])
    uses = draw(st.sampled_from(choices))
    if uses == "agents":
        step["uses"] = f"agents.{draw(st.sampled_from(draft.agents))}"
    elif uses == "regex_extract":
        step["uses"] = uses
        params: dict[str, Any] = {"pattern": re.escape(draw(awkward_text))}
        params |= draw(
            st.fixed_dictionaries({}, optional={"group": json_data, "all": st.booleans()})
        )
        step["with"] = params
    elif uses == "template_render":
        step["uses"] = uses
        text = draw(awkward_text.filter(lambda s: "{" not in s and "}" not in s))
        step["with"] = {"template": text + draw(st.sampled_from(["", "{{ input }}"]))}
    elif uses is not None:
        step["uses"] = uses


def _agent_step(draw: st.DrawFn, draft: _Draft, *, fallback_depth: int = 0) -> dict[str, Any]:
    step: dict[str, Any] = {"name": draft.unique_name(draw, draft.step_names)}
    if draw(st.booleans()):
        step["kind"] = "step"
    if draw(st.booleans()):
        step["description"] = draw(awkward_text)
    _uses_and_with(draw, draft, step)
    input_kind = draw(st.sampled_from(["none", "text", "data", "template"]))
    if input_kind == "text":
        step["input"] = _free_text(draw, draft)
    elif input_kind == "data":
        step["input"] = draw(json_data)
    elif input_kind == "template":
        # Filled in once every step name is known (a template may name any step).
        draft.pending.append((step, "input", "template"))
    if draw(st.booleans()):
        step["config"] = _config(draw)
    if draw(st.booleans()):
        step["validators"] = [_validator(draw, draft) for _ in range(draw(st.integers(0, 3)))]
    if fallback_depth < 2 and draw(st.integers(0, 3)) == 0:
        step["fallback"] = _agent_step(draw, draft, fallback_depth=fallback_depth + 1)
    return step


def _step_list(draw: st.DrawFn, draft: _Draft, depth: int, min_size: int = 0) -> dict[str, Any]:
    count = draw(st.integers(min_size, 3))
    return {"steps": [_step(draw, draft, depth) for _ in range(count)]}


def _step(draw: st.DrawFn, draft: _Draft, depth: int) -> dict[str, Any]:
    draft.budget -= 1
    kinds = ["step"]
    if depth < 4 and draft.budget > 0:
        kinds += ["parallel", "conditional", "loop", "map"]
    kind = draw(st.sampled_from(kinds))
    if kind == "step":
        return _agent_step(draw, draft)
    step: dict[str, Any] = {"name": draft.unique_name(draw, draft.step_names), "kind": kind}
    if draw(st.booleans()):
        step["description"] = draw(awkward_text)
    if kind == "parallel":
        branch_names: set[str] = set()
        count = draw(st.integers(1, 3))
        step["branches"] = {
            draft.unique_name(draw, branch_names): _step_list(draw, draft, depth + 1)
            for _ in range(count)
        }
        step |= draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "merge": st.sampled_from(["dict", "list"]),
                    "on_branch_failure": st.sampled_from(["fail", "ignore"]),
                },
            )
        )
    elif kind == "conditional":
        draft.pending.append((step, "condition_expression", "expression"))
        keys = draw(st.lists(awkward_text, min_size=1, max_size=3, unique=True))
        step["branches"] = {key: _step_list(draw, draft, depth + 1) for key in keys}
        if draw(st.booleans()):
            step["default"] = _step_list(draw, draft, depth + 1)
    elif kind == "loop":
        step["body"] = _step_list(draw, draft, depth + 1, min_size=1)
        if draw(st.booleans()):
            step["max_loops"] = draw(st.integers(1, 10_000))
        if draw(st.booleans()):
            draft.pending.append((step, "exit_expression", "expression"))
    else:
        draft.pending.append((step, "over", "expression"))
        step["body"] = _step_list(draw, draft, depth + 1, min_size=1)
    return step


def _template(draw: st.DrawFn, draft: _Draft) -> str:
    known = sorted(n for n in draft.step_names if _identifier_like(n))
    ref = f"steps.{draw(st.sampled_from(known))}.output" if known else "input"
    return draw(st.sampled_from([f"{{{{ {ref} }}}}", f"Value: {{{{ {ref} }}}}\nDone.\n"]))


def _agent(draw: st.DrawFn, draft: _Draft) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "model": draw(
            st.sampled_from(MODELS) | st.from_regex(r"\A[A-Za-z0-9_.-]+:\S+\Z", fullmatch=True)
        )
    }
    if draw(st.booleans()):
        agent["system_prompt"] = draw(awkward_text)
    if draw(st.booleans()):
        agent["output_schema"] = draw(
            json_schemas if draft.checked else st.dictionaries(awkward_text, json_data)
        )
    agent |= draw(
        st.fixed_dictionaries(
            {}, optional={"temperature": st.floats(0, 2), "max_tokens": st.integers(1, 10**9)}
        )
    )
    return agent


@st.composite
def pipeline_data(draw: st.DrawFn, *, checked: bool = True, max_steps: int = 14) -> dict[str, Any]:
    """The plain data of a valid pipeline (what `Pipeline.model_validate` takes)."""
    draft = _Draft(checked=checked, budget=draw(st.integers(1, max_steps)))
    agent_names: set[str] = set()
    agents = {
        draft.unique_name(draw, agent_names): _agent(draw, draft)
        for _ in range(draw(st.integers(0, 3)))
    }
    draft.agents = list(agents)
    data: dict[str, Any] = {"steps": []}
    while draft.budget > 0 and len(data["steps"]) < 4:
        data["steps"].append(_step(draw, draft, depth=0))
    for node, key, what in draft.pending:
        node[key] = _template(draw, draft) if what == "template" else _expression(draw, draft)

    if draw(st.booleans()):
        data["version"] = draw(st.sampled_from(["1", "0.1"]))
    if draw(st.booleans()):
        data["name"] = draw(awkward_text.filter(lambda s: len(s) <= 200))
    if draw(st.booleans()):
        data["description"] = draw(awkward_text)
    if agents:
        data["agents"] = agents
    test_names: set[str] = set()
    tests = []
    for _ in range(draw(st.integers(0, 2))):
        name = draw(awkward_text.filter(lambda s: 0 < len(s) <= 200 and s not in test_names))
        test_names.add(name)
        test: dict[str, Any] = {
            "name": name,
            "assertions": [_expression(draw, draft) for _ in range(draw(st.integers(1, 3)))],
        }
        if draw(st.booleans()):
            test["input"] = draw(json_data)
        if draw(st.booleans()):
            test["description"] = draw(awkward_text)
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
            policy["action"] = draw(st.sampled_from(["FAIL_RUN", "WARN"]))
        policies.append(policy)
    if policies:
        data["policies"] = policies
    if draw(st.booleans()):
        data["usage_limits"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "total_cost_usd": st.floats(0, 1e6, exclude_min=True),
                    "total_tokens": st.integers(1, 10**12),
                },
            )
        )
    return data


def pipelines(*, checked: bool = True) -> st.SearchStrategy[Pipeline]:
    """Valid `Pipeline` models (see the module docstring for `checked`)."""
    return pipeline_data(checked=checked).map(Pipeline.model_validate)


def step_depth(pipeline: Pipeline) -> int:
    """How many step lists deep the most nested step sits (top-level steps are at 1)."""
    return max((path.count(".steps[") + 1 for path, _ in pipeline.walk()), default=0)
