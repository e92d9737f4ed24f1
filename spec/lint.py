"""Checks beyond the schema: names, references, expressions, skill parameters."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flujo.spec import expressions, paths
from flujo.spec.errors import Diagnostic, Severity
from flujo.spec.model import (
    AgentStep,
    ConditionalStep,
    HitlStep,
    JitStep,
    LoopStep,
    MapStep,
    Pipeline,
    StateMachineStep,
    ValidatorRef,
)
from flujo.spec.registry import StepRegistry
from flujo.spec.templating import TEMPLATE_NAMES, plainly_fine

AGENT_PREFIX = "agents."
IMPORT_PREFIX = "imports."


class _Reporter:
    def __init__(self, pipeline: Pipeline) -> None:
        self.document = pipeline.source
        self.found: list[Diagnostic] = []

    def add(
        self, path: str, message: str, code: str, severity: Severity = "error", offset: int = -1
    ) -> None:
        document = self.document
        if document is None:
            self.found.append(Diagnostic(message, code, "<model>", 1, 1, path, severity))
            return
        diagnostic = document.diagnostic(path, message, code, severity=severity)
        if offset >= 0:
            line, col = document.value_position(path, offset)
            diagnostic = Diagnostic(message, code, document.file, line, col, path, severity)
        self.found.append(diagnostic)

    def add_in_template(
        self, path: str, message: str, code: str, template: str, line: int, name: str
    ) -> None:
        """A problem at `name` on the template's own `line` (1-based) of the scalar at `path`."""
        document = self.document
        text_line = (template.splitlines() or [""])[min(line, len(template.splitlines())) - 1]
        column = max(0, text_line.find(name))
        if document is None or line <= 1:
            start = sum(len(x) + 1 for x in template.splitlines()[: line - 1])
            self.add(path, message, code, offset=start + column)
            return
        first_line, first_col = document.value_position(path, 0)
        diagnostic = Diagnostic(
            message, code, document.file, first_line + line - 1, first_col + column, path
        )
        self.found.append(diagnostic)

    def line_of(self, path: str) -> int | None:
        if self.document is None:
            return None
        return self.document.locate(path)[0]


def check_pipeline(
    pipeline: Pipeline, registry: StepRegistry | None = None, raw: Any = None
) -> list[Diagnostic]:
    """Every problem the schema alone cannot see.

    `raw`: the document's data when `pipeline` is a salvaged copy (subtrees that failed to
    parse replaced): the step names and agent uses in it still count as existing, so the
    checks that depend on a broken subtree report nothing instead of a cascade."""
    registry = registry or StepRegistry()
    report = _Reporter(pipeline)
    steps = list(pipeline.walk())
    raw_names, raw_agents = _declared(raw)

    names: dict[str, str] = {}
    for path, step in steps:
        first = names.setdefault(step.name, path)
        if first != path:
            line = report.line_of(paths.child(first, "name"))
            where = f" (first used at line {line})" if line else f" (first used at {first})"
            report.add(
                paths.child(path, "name"),
                f"duplicate step name '{step.name}'{where}",
                "duplicate-name",
            )

    known = names  # a dict: O(1) membership, and its keys feed the did-you-mean
    for name in raw_names:
        known.setdefault(name, "")
    outputs = _output_properties(pipeline, steps)
    check_expr = _expression_checker(report, known, outputs)
    used_agents: set[str] = set()
    for path, step in steps:
        if isinstance(step, AgentStep):
            _check_agent_step(report, registry, pipeline, path, step, used_agents)
            for where, text in _template_strings(paths.child(path, "input"), step.input):
                _check_template_names(report, where, text)
            template = step.with_.get("template") if step.uses == "template_render" else None
            if isinstance(template, str):
                where = paths.child(paths.child(path, "with"), "template")
                _check_template_names(report, where, template)
                for ref in expressions.template_step_references(template):
                    _check_step_ref(report, known, where, ref)
            if isinstance(step.input, str):
                for ref in expressions.template_step_references(step.input):
                    _check_step_ref(report, known, paths.child(path, "input"), ref)
        elif isinstance(step, ConditionalStep):
            if step.condition_expression is not None:
                check_expr(paths.child(path, "condition_expression"), step.condition_expression)
            if step.condition is not None:
                _check_callable(report, registry, paths.child(path, "condition"), step.condition)
        elif isinstance(step, LoopStep):
            if step.exit_expression is not None:
                check_expr(paths.child(path, "exit_expression"), step.exit_expression)
            if step.exit_condition is not None:
                where = paths.child(path, "exit_condition")
                _check_callable(report, registry, where, step.exit_condition)
        elif isinstance(step, MapStep):
            check_expr(paths.child(path, "over"), step.over)
        elif isinstance(step, HitlStep):
            if step.input_schema is not None:
                _check_schema(report, paths.child(path, "input_schema"), step.input_schema)
            if step.message is not None:
                _check_template_names(report, paths.child(path, "message"), step.message)
                for ref in expressions.template_step_references(step.message):
                    _check_step_ref(report, known, paths.child(path, "message"), ref)
        elif isinstance(step, StateMachineStep):
            _check_state_machine(report, path, step, check_expr)
        elif isinstance(step, JitStep):
            from flujo.spec.jit_check import jit_problems

            for segments, message, code in jit_problems(step, registry):
                report.add(_under(path, segments), message, code)
            for where, text in _template_strings(paths.child(path, "input"), step.input):
                _check_template_names(report, where, text)

    from flujo.spec.type_check import type_problems

    for where, message, code, severity in type_problems(pipeline, registry):
        report.add(where, message, code, severity)

    _unique(
        report, ((f"tests[{i}]", "name", t.name) for i, t in enumerate(pipeline.tests)), "test name"
    )
    for i, test in enumerate(pipeline.tests):
        for j, assertion in enumerate(test.assertions):
            check_expr(f"tests[{i}].assertions[{j}]", assertion)
        for step_name in test.mocks:
            if step_name not in names:
                hint = _did_you_mean(step_name, known)
                report.add(
                    f"tests[{i}].mocks.{step_name}",
                    f"unknown step '{step_name}'{hint}",
                    "unknown-step",
                )
    _unique(
        report,
        ((f"policies[{i}]", "id", p.id) for i, p in enumerate(pipeline.policies)),
        "policy id",
    )
    for i, policy in enumerate(pipeline.policies):
        if policy.when is not None:
            check_expr(f"policies[{i}].when", policy.when)
        check_expr(f"policies[{i}].assert", policy.assert_)

    from flujo.spec.context_check import check_context_reads

    check_context_reads(
        pipeline,
        lambda at, message, offset: report.add(at, message, "context-key", "warning", offset),
    )
    if pipeline.input_schema is not None:
        _check_schema(report, "input_schema", pipeline.input_schema)
    for name, agent in pipeline.agents.items():
        path = paths.child("agents", name)
        if agent.output_schema is not None:
            _check_schema(report, paths.child(path, "output_schema"), agent.output_schema)
        if name not in used_agents and name not in raw_agents:
            report.add(path, f"agent '{name}' is not used by any step", "unused-agent", "warning")
    return report.found


def _check_callable(report: _Reporter, registry: StepRegistry, path: str, ref: str) -> None:
    """A `condition` / `exit_condition` callable: allowed like a skill (never imported)."""
    problem = registry.problem(ref)
    if problem is not None:
        report.add(path, problem, "unknown-skill")


def _check_agent_step(
    report: _Reporter,
    registry: StepRegistry,
    pipeline: Pipeline,
    path: str,
    step: AgentStep,
    used_agents: set[str],
) -> None:
    uses = step.uses
    if uses is not None and uses.startswith(AGENT_PREFIX):
        agent = uses[len(AGENT_PREFIX) :]
        used_agents.add(agent)
        if agent not in pipeline.agents:
            hint = _did_you_mean(agent, list(pipeline.agents))
            report.add(paths.child(path, "uses"), f"unknown agent '{agent}'{hint}", "unknown-agent")
        if step.with_:
            report.add(
                paths.child(path, "with"),
                "`with:` passes parameters to skills; an agent step takes `input:`",
                "schema",
            )
    elif uses is not None and uses.startswith(IMPORT_PREFIX):
        alias = uses[len(IMPORT_PREFIX) :]
        if alias not in pipeline.imports:
            hint = _did_you_mean(alias, list(pipeline.imports))
            report.add(
                paths.child(path, "uses"), f"unknown import '{alias}'{hint}", "unknown-import"
            )
        if step.with_:
            report.add(
                paths.child(path, "with"),
                "`with:` passes parameters to skills; an imported pipeline takes `input:`",
                "schema",
            )
    elif uses is not None:
        _check_skill(report, registry, paths.child(path, "uses"), uses, step.with_, "transform")
    for i, validator in enumerate(step.validators):
        _check_validator(report, registry, f"{path}.validators[{i}]", validator)


def _check_state_machine(
    report: _Reporter, path: str, step: StateMachineStep, check_expr: Callable[[str, str], None]
) -> None:
    states = list(step.states)
    if step.start_state not in step.states:
        hint = _did_you_mean(step.start_state, states)
        message = f"start_state '{step.start_state}' is not a state{hint}"
        report.add(paths.child(path, "start_state"), message, "unknown-state")
    targets = [*states, *step.end_states]
    for i, rule in enumerate(step.transitions):
        where = f"{path}.transitions[{i}]"
        if rule.from_ != "*" and rule.from_ not in step.states:
            message = f"unknown state '{rule.from_}'{_did_you_mean(rule.from_, states)}"
            report.add(paths.child(where, "from"), message, "unknown-state")
        if rule.to not in targets:
            message = f"unknown state '{rule.to}'{_did_you_mean(rule.to, targets)}"
            report.add(paths.child(where, "to"), message, "unknown-state")
        if rule.when is not None:
            check_expr(paths.child(where, "when"), rule.when)


def _check_validator(
    report: _Reporter, registry: StepRegistry, path: str, validator: ValidatorRef
) -> None:
    where = paths.child(path, "uses") if validator.with_ else path
    _check_skill(report, registry, where, validator.uses, validator.with_, "validator", path)


def _check_skill(
    report: _Reporter,
    registry: StepRegistry,
    uses_path: str,
    reference: str,
    params: dict[str, Any],
    wanted: str,
    node_path: str | None = None,
) -> None:
    problem = registry.problem(reference)
    if problem is not None:
        report.add(uses_path, problem, "unknown-skill")
        return
    info = registry.info(reference)
    if info is None:  # a plugin or allow-listed path: its metadata is read when it runs
        return
    if ":" in info.name:  # flujo 0.x's built-ins took (and ignored) any parameter
        return
    if info.kind != wanted:
        report.add(
            uses_path, f"'{reference}' is a {info.kind} skill, not a {wanted}", "wrong-skill-kind"
        )
        return
    params_path = paths.child(node_path or uses_path.rsplit(".", 1)[0], "with")
    for message in info.check_params(params):
        if message.startswith("template syntax error"):
            continue  # reported at the template's own line (`_check_template_names`)
        # A problem that names a parameter given under `with:` is reported at its line.
        named = next((key for key in params if f"'{key}'" in message), None)
        where = paths.child(params_path, named) if named is not None else params_path
        if named is not None:  # a problem inside the parameter's value (a schema's `$ref`)
            where = _under(where, getattr(message, "path", ()))
        report.add(where, message, "skill-params")


_SINGLE_STEP_KEYS = ("fallback", "wrapped_step", "router_agent", "planner")


def _declared(raw: Any) -> tuple[set[str], set[str]]:
    """Step names (`name:` of a mapping in a list or under `fallback:`) and agents named
    by `uses: agents.NAME`, anywhere in a document's data."""
    names: set[str] = set()
    agents: set[str] = set()
    stack: list[tuple[Any, bool]] = [(raw, False)]
    while stack:
        node, is_step = stack.pop()
        if isinstance(node, dict):
            if is_step and isinstance(node.get("name"), str):
                names.add(node["name"])
            uses = node.get("uses")
            if isinstance(uses, str) and uses.startswith(AGENT_PREFIX):
                agents.add(uses[len(AGENT_PREFIX) :])
            stack.extend((v, k in _SINGLE_STEP_KEYS) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((item, True) for item in node)
    return names, agents


def _output_properties(pipeline: Pipeline, steps: list[tuple[str, Any]]) -> dict[str, list[str]]:
    """The properties an agent step's output has, by step name (when its agent's
    `output_schema` is an object that lists them; `OPEN` ends the list when it admits
    others)."""
    found: dict[str, list[str]] = {}
    for _, step in steps:
        uses = getattr(step, "uses", None)
        if not isinstance(step, AgentStep) or not uses or not uses.startswith(AGENT_PREFIX):
            continue
        agent = pipeline.agents.get(uses[len(AGENT_PREFIX) :])
        schema = agent.output_schema if agent is not None else None
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            continue
        if step.fallback is not None:
            continue  # the fallback's output may have another shape
        found[step.name] = [str(p) for p in schema["properties"]]
        if schema.get("additionalProperties") is not False:
            found[step.name].append(OPEN)
    return found


OPEN = "\0open"
"""Marks an output_schema that admits other properties: only near-misses are errors."""


def _check_fields(
    report: _Reporter,
    known: Mapping[str, str],
    outputs: Mapping[str, list[str]],
    path: str,
    tree: Any,
    source: str,
) -> None:
    """`result.FIELD`, `steps.NAME.FIELD` and `steps.NAME.output.PROPERTY` (against the
    agent's `output_schema`): each a field that exists, else an error at it."""
    import ast

    from flujo.spec.expressions.parsing import _Text
    from flujo.spec.fields import RESULT_FIELDS, STEP_FIELDS

    text = _Text(source)
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}

    def key(node: ast.expr) -> tuple[str, int] | None:
        """The attribute or constant-string subscript read by `node`, and where it starts."""
        if isinstance(node, ast.Attribute) and id(node) not in calls:
            return node.attr, text.end(node) - len(node.attr)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            return node.slice.value, text.start(node.slice) + 1
        return None

    def base(node: ast.expr) -> ast.expr:
        return node.value if isinstance(node, ast.Attribute | ast.Subscript) else node

    def is_steps(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "steps"
        found = key(node)
        inner = base(node)
        return found is not None and found[0] == "steps" and _is_name(inner, "result")

    def step_of(node: ast.expr) -> str | None:
        """NAME when `node` is `steps.NAME` (or `result.steps.NAME`)."""
        found = key(node)
        if found is None or not is_steps(base(node)):
            return None
        return found[0] if found[0] in known else None

    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        found = key(node)
        if found is None:
            continue
        name, offset = found
        inner = base(node)
        if _is_name(inner, "result") and name not in RESULT_FIELDS:
            message = f"a run's result has no field '{name}'{_did_you_mean(name, RESULT_FIELDS)}"
            report.add(path, message, "unknown-field", offset=offset)
        elif step_of(inner) is not None and name not in STEP_FIELDS:
            message = f"a step's result has no field '{name}'{_did_you_mean(name, STEP_FIELDS)}"
            report.add(path, message, "unknown-field", offset=offset)
        elif key(inner) is not None and key(inner)[0] == "output":  # type: ignore[index]
            step = step_of(base(inner))
            listed = outputs.get(step) if step is not None else None
            if listed is None or name in listed:
                continue
            properties = [p for p in listed if p != OPEN]
            hint = _did_you_mean(name, properties)
            if OPEN in listed and not hint:
                continue  # an open schema: another property may well be there
            message = (
                f"the output of step '{step}' has no property '{name}' (its agent's "
                f"output_schema has {', '.join(properties) or 'none'}){hint}"
            )
            report.add(path, message, "unknown-field", offset=offset)


def _is_name(node: Any, name: str) -> bool:
    import ast

    return isinstance(node, ast.Name) and node.id == name


def _expression_checker(
    report: _Reporter, known: Mapping[str, str], outputs: Mapping[str, list[str]] | None = None
) -> Callable[[str, str], None]:
    """Checks one expression: syntax, what the sandbox refuses, and the steps it names.

    Every name an expression may bind is accepted wherever the expression is: which
    ones a given field binds is the engine's business."""
    codes = {"refused": "expression-not-allowed", "limit": "expression-too-large"}
    # source -> its problems as (message, code, offset), the steps it names, and its tree
    # when it compiled: an expression repeated through aliases is parsed and compiled once.
    seen: dict[str, tuple[list[tuple[str, str, int]], list[expressions.StepReference], Any]] = {}

    def analyse(
        source: str,
    ) -> tuple[list[tuple[str, str, int]], list[expressions.StepReference], Any]:
        tree = expressions.parse(source)
        if isinstance(tree, expressions.ExpressionProblem):
            return [(tree.message, "expression-syntax", tree.offset)], [], None
        refs = list(expressions.step_references(tree, source))
        try:
            expressions.compile_expression(source, expressions.EXPRESSION_NAMES)
        except expressions.ExpressionError as exc:
            code = codes.get(exc.kind, "expression-syntax")
            return [(exc.message, code, exc.offset)], refs, None
        return [], refs, tree

    def check(path: str, source: str) -> None:
        if source not in seen:
            seen[source] = analyse(source)
        problems, refs, tree = seen[source]
        for message, code, offset in problems:
            report.add(path, message, code, offset=offset)
        if tree is not None:  # it compiled: check the fields it reads
            _check_fields(report, known, outputs or {}, path, tree, source)
        for ref in refs:
            _check_step_ref(report, known, path, ref)

    return check


"""What every template of a spec sees (`engine.runner`'s context; docs/spec.md#templates)."""


def _template_strings(path: str, value: Any) -> Iterable[tuple[str, str]]:
    """The template strings of a step's `input` (a string, or inside mappings and lists)."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_strings(paths.child(path, str(key)), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _template_strings(f"{path}[{index}]", item)


def _check_template_names(report: _Reporter, path: str, template: str) -> None:
    """A name the template reads that no template can see, at its line (it would fail the
    step on its first real run: templates use strict undefined names)."""
    if plainly_fine(template):
        return
    from jinja2 import TemplateSyntaxError, meta, nodes

    from flujo.spec.templating import untrusted_environment

    try:
        tree = untrusted_environment().parse(template)
    except TemplateSyntaxError as exc:
        lines = template.splitlines() or [""]
        line = min(max(exc.lineno or 1, 1), len(lines))
        text = lines[line - 1]
        first = text.strip()[:1] or " "
        message = f"template syntax error: {exc.message}"
        report.add_in_template(path, message, "template-syntax", template, line, first)
        return
    environment = untrusted_environment()
    bad = False
    for kind, found, known in (
        ("filter", tree.find_all(nodes.Filter), environment.filters),
        ("test", tree.find_all(nodes.Test), environment.tests),
    ):
        for used in found:
            if used.name not in known:
                bad = True
                hint = _did_you_mean(used.name, known)
                message = f"a template has no {kind} '{used.name}'{hint}"
                report.add_in_template(
                    path, message, f"unknown-{kind}", template, used.lineno, used.name
                )
    if bad:
        return
    # `context` (flujo 0.x's shared context) is refused at load time with its own error
    try:
        declared = meta.find_undeclared_variables(tree)  # compiles: other checks may fire
    except TemplateSyntaxError as exc:
        report.add_in_template(
            path, f"template error: {exc.message}", "template-syntax", template, 1, " "
        )
        return
    unknown = declared - {*TEMPLATE_NAMES, "context"}
    if not unknown:
        return
    for node in tree.find_all(nodes.Name):
        if node.ctx != "load" or node.name not in unknown:
            continue
        unknown.discard(node.name)
        seen = ", ".join(n for n in TEMPLATE_NAMES if n != "previous_step")
        hint = _did_you_mean(node.name, TEMPLATE_NAMES)
        message = f"a template cannot see '{node.name}' (it sees {seen}){hint}"
        report.add_in_template(path, message, "unknown-name", template, node.lineno, node.name)


def _check_step_ref(
    report: _Reporter, known: Mapping[str, str], path: str, ref: expressions.StepReference
) -> None:
    if ref.name not in known:
        message = f"unknown step '{ref.name}'{_did_you_mean(ref.name, known)}"
        report.add(path, message, "unknown-step", offset=ref.offset)


def _unique(report: _Reporter, items: Iterable[tuple[str, str, str]], what: str) -> None:
    seen: set[str] = set()
    for path, key, value in items:
        if value in seen:
            report.add(paths.child(path, key), f"duplicate {what} '{value}'", "duplicate-name")
        seen.add(value)


def _check_schema(report: _Reporter, path: str, schema: dict[str, Any]) -> None:
    """A schema's problems, each at its place (a `$ref` at its own line)."""
    from flujo.spec.schemas import schema_problems

    what = paths.split(path)[-1]
    for problem in schema_problems(schema, str(what)):
        report.add(_under(path, problem.path), problem, "invalid-schema")


def _under(path: str, segments: Iterable[paths.Segment]) -> str:
    for segment in segments:
        path = paths.child(path, segment)
    return path


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
