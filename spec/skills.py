"""Built-in skills: small, pure, HTTP-free functions that steps and validators can use.

A skill is a plain callable `fn(value, **params)`. A transform returns its output; a
validator returns None when the value passes, or a short reason when it fails. The
`@skill` decorator attaches the metadata the registry (and the Meta-Agent) reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal, TypeVar

SkillKind = Literal["transform", "validator"]
ParamType = Literal["string", "integer", "number", "boolean", "object", "array", "any"]
F = TypeVar("F", bound=Callable[..., Any])

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class Param:
    """One parameter a skill accepts under `with:`."""

    type: ParamType = "any"
    required: bool = False
    description: str = ""

    def accepts(self, value: Any) -> bool:
        if self.type == "any":
            return True
        if isinstance(value, bool) and self.type in ("integer", "number"):
            return False
        return isinstance(value, _PYTHON_TYPES[self.type])


@dataclass(frozen=True)
class SkillInfo:
    """What the registry knows about a skill (the manifest entry)."""

    name: str
    target: str
    summary: str
    kind: SkillKind = "transform"
    input_type: str = "any"
    output_type: str = "any"
    side_effects: tuple[str, ...] = ()
    params: dict[str, Param] = field(default_factory=dict)
    origin: str = "builtin"
    est_cost_usd: float | None = None
    est_latency_s: float | None = None
    est_success: float | None = None
    check: Callable[[dict[str, Any]], list[str]] | None = field(
        default=None, repr=False, compare=False
    )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("check")
        data["side_effects"] = list(self.side_effects)
        return data

    def check_params(self, params: dict[str, Any]) -> list[str]:
        """Problems with `with:` parameters: unknown, missing, wrong type, bad value."""
        import difflib

        problems: list[str] = []
        for key, value in params.items():
            spec = self.params.get(key)
            if spec is None:
                close = difflib.get_close_matches(key, list(self.params), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                known = ", ".join(self.params) or "none"
                problems.append(
                    f"skill '{self.name}' has no parameter '{key}'{hint} (parameters: {known})"
                )
            elif not spec.accepts(value):
                problems.append(f"parameter '{key}' of skill '{self.name}' must be {spec.type}")
        for key, spec in self.params.items():
            if spec.required and key not in params:
                problems.append(f"skill '{self.name}' needs parameter '{key}' under `with:`")
        if not problems and self.check is not None:
            problems.extend(self.check(params))
        return problems


def skill(
    name: str,
    summary: str,
    *,
    kind: SkillKind = "transform",
    input_type: str = "any",
    output_type: str = "any",
    side_effects: tuple[str, ...] = (),
    params: dict[str, Param] | None = None,
    check: Callable[[dict[str, Any]], list[str]] | None = None,
) -> Callable[[F], F]:
    """Attach registry metadata to a skill function (used by built-ins and plugins)."""

    def decorate(fn: F) -> F:
        fn.__flujo_skill__ = SkillInfo(  # type: ignore[attr-defined]
            name=name,
            target=f"{fn.__module__}:{fn.__qualname__}",
            summary=summary,
            kind=kind,
            input_type=input_type,
            output_type=output_type,
            side_effects=side_effects,
            params=params or {},
            check=check,
        )
        return fn

    return decorate


# -- transforms ---------------------------------------------------------------------------


@skill("passthrough", "Return the input unchanged.")
def passthrough(value: Any) -> Any:
    return value


@skill(
    "json_parse",
    "Parse JSON text (a ```json fenced block is accepted) into data.",
    input_type="str",
    output_type="JSON",
)
def json_parse(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return json.loads(text)


REGEX_TIMEOUT_S = 0.5
"""Longest a regex_extract match may run before it is abandoned."""


MAX_PATTERN_LENGTH = 1000
MAX_REPETITION_PRODUCT = 100_000
"""Counted repetitions (`{m,n}`) multiply when nested; compiling `(a{1000}){1000}` alone
takes seconds, so a pattern whose expanded size (every node weighted by the counts of the
repetitions around it) passes this is refused before it is compiled."""


@lru_cache(maxsize=1024)
def pattern_problem(pattern: str) -> str | None:
    """Why a pattern from a spec may not be compiled (regex compilation is unbounded).

    The pattern is parsed (not compiled) by the `regex` module's own parser, so escapes,
    classes, flags and quantifiers are read exactly as `regex.compile` will read them."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"'pattern' is longer than {MAX_PATTERN_LENGTH} characters"
    try:
        size = _expanded_size(pattern)
    except RecursionError:
        return "'pattern' nests too deeply"
    except Exception as exc:  # the parser's own error (or a changed private API)
        return f"invalid regular expression in 'pattern': {exc}"
    if size > MAX_REPETITION_PRODUCT:
        return (
            "'pattern' repeats too much: its {m,n} counts multiply past "
            f"{MAX_REPETITION_PRODUCT:,}"
        )
    return None


def _expanded_size(pattern: str) -> int:
    """Size of the parsed pattern with each repetition's body counted `max(m, n)` times."""
    import importlib

    core: Any = importlib.import_module("regex._regex_core")  # the parser regex.compile runs
    flags = 0
    for _ in range(3):  # a scoped flag such as (?V1) makes the parser start again
        source = core.Source(pattern)
        info = core.Info(flags, source.char_type, {})
        source.ignore_space = bool(info.flags & core.VERBOSE)
        try:
            parsed = core._parse_pattern(source, info)
        except core._UnscopedFlagSet:
            flags = info.global_flags
            continue
        if not source.at_end():
            raise ValueError("unbalanced parenthesis")
        return _node_size(parsed, core.RegexBase, core.GreedyRepeat)
    raise ValueError("inconsistent flags")


def _node_size(node: Any, base: type, repeat: type) -> int:
    children: list[Any] = []
    for value in vars(node).values():
        if isinstance(value, base):
            children.append(value)
        elif isinstance(value, list | tuple):
            children.extend(v for v in value if isinstance(v, base))
    size = sum(_node_size(child, base, repeat) for child in children)
    if isinstance(node, repeat):
        size *= max(getattr(node, "min_count", 0) or 0, getattr(node, "max_count", 0) or 0, 1)
    return min(1 + size, MAX_REPETITION_PRODUCT + 1)


def _check_pattern(params: dict[str, Any]) -> list[str]:
    import regex

    problem = pattern_problem(params["pattern"])
    if problem is not None:
        return [problem]
    try:
        regex.compile(params["pattern"])
    except regex.error as exc:
        return [f"invalid regular expression in 'pattern': {exc}"]
    return []


@skill(
    "regex_extract",
    "Extract the first match (or every match with `all: true`) of a regular expression.",
    input_type="str",
    output_type="str | list[str] | None",
    params={
        "pattern": Param("string", True, "Regular expression."),
        "group": Param("any", False, "Group number or name to return (default: whole match)."),
        "all": Param("boolean", False, "Return every match as a list."),
    },
    check=_check_pattern,
)
def regex_extract(value: Any, pattern: str, group: int | str = 0, all: bool = False) -> Any:
    import regex

    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    compiled = regex.compile(pattern)
    text = str(value)
    if all:
        return [m.group(group) for m in compiled.finditer(text, timeout=REGEX_TIMEOUT_S)]
    match = compiled.search(text, timeout=REGEX_TIMEOUT_S)
    return match.group(group) if match else None


@skill("json_dump", "Write data as compact JSON text.", input_type="JSON", output_type="str")
def json_dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _check_ddl(params: dict[str, Any]) -> list[str]:
    from flujo.spec.sql_check import ddl_problem

    problem = ddl_problem(params["schema"])
    return [problem] if problem else []


@skill(
    "sql_validate",
    "Check that a SQL query compiles against a database schema (SQLite's compiler, "
    "nothing is run): the query comes out (taken out of a ```sql fence), or the step "
    "fails with the reason.",
    input_type="SQL",
    output_type="ValidatedSQL",
    params={"schema": Param("string", True, "CREATE TABLE/VIEW statements of the database.")},
    check=_check_ddl,
)
def sql_validate(value: Any, schema: str) -> str:
    from flujo.spec.sql_check import compile_problem, unfenced

    sql = unfenced(str(value))
    problem = compile_problem(sql, schema)
    if problem is not None:
        raise ValueError(problem)
    return sql


@skill(
    "sql_compiles",
    "Fail when a SQL query does not compile against a database schema (nothing is run).",
    kind="validator",
    params={"schema": Param("string", True, "CREATE TABLE/VIEW statements of the database.")},
    check=_check_ddl,
)
def sql_compiles(value: Any, schema: str) -> str | None:
    from flujo.spec.sql_check import compile_problem, unfenced

    return compile_problem(unfenced(str(value)), schema)


def _check_template(params: dict[str, Any]) -> list[str]:
    from flujo.spec.templating import plainly_fine, untrusted_environment

    if plainly_fine(params["template"]):
        return []
    from jinja2 import TemplateSyntaxError

    try:
        untrusted_environment().parse(params["template"])
    except TemplateSyntaxError as exc:
        return [f"template syntax error on its line {exc.lineno}: {exc.message}"]
    return []


@skill(
    "template_render",
    "Render a Jinja2 template (sandboxed); it sees `input`, `previous` and `steps`, as "
    "every template does.",
    output_type="str",
    params={"template": Param("string", True, "Jinja2 template text.")},
    check=_check_template,
)
def template_render(value: Any, template: str, *, bindings: dict[str, Any] | None = None) -> str:
    """`bindings`: what every template of a spec sees (`input`, `previous`, `steps`), given
    by the engine; without them (called directly), `input` is the value."""
    from flujo.spec.templating import render_bounded, untrusted_environment

    names = bindings if bindings is not None else {"input": value}
    return render_bounded(untrusted_environment().from_string(template), names)


template_render.__flujo_template__ = True  # type: ignore[attr-defined]


# -- validators ---------------------------------------------------------------------------


@skill(
    "non_empty",
    "Fail when the output is empty (blank text, empty list or mapping, null).",
    kind="validator",
)
def non_empty(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return "output is empty"
    if isinstance(value, list | dict | tuple) and not value:
        return "output is empty"
    return None


def _check_schema(params: dict[str, Any]) -> list[str]:
    from flujo.spec.schemas import schema_problems

    return list(schema_problems(params["schema"], "'schema'"))


@skill(
    "json_schema",
    "Fail when the output (data, or JSON text) does not match a JSON Schema.",
    kind="validator",
    params={"schema": Param("object", True, "JSON Schema the output must satisfy.")},
    check=_check_schema,
)
def json_schema(value: Any, schema: dict[str, Any]) -> str | None:
    from flujo.spec.schemas import safe_validator

    if isinstance(value, str):
        try:
            value = json_parse(value)
        except ValueError as exc:
            return f"output is not JSON: {exc}"
    from referencing.exceptions import Unresolvable

    try:
        error = next(iter(safe_validator(schema).iter_errors(value)), None)
    except Unresolvable as exc:
        return f"schema reference {str(exc.ref)[:100]!r} cannot be resolved (only local ones can)"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message}" + (f" at /{where}" if where else "")


@skill(
    "max_length",
    "Fail when the output is longer than `max` characters (text) or items (list).",
    kind="validator",
    params={"max": Param("integer", True, "Largest allowed length.")},
)
def max_length(value: Any, max: int) -> str | None:
    size = len(value) if isinstance(value, str | list | dict | tuple) else len(str(value))
    return f"output has length {size}, more than {max}" if size > max else None


BUILTINS: tuple[Callable[..., Any], ...] = (
    passthrough,
    json_parse,
    json_dump,
    regex_extract,
    sql_validate,
    template_render,
    non_empty,
    json_schema,
    sql_compiles,
    max_length,
)
