"""JSON Schemas written in specs (`output_schema`, the `json_schema` validator, `hitl`
`input_schema`) are untrusted: checked here at validate time, and validated with a
validator that can never fetch anything and never backtracks without bound.

* A `$ref` (or `$dynamicRef`, `$recursiveRef`) must be a local fragment (`#/$defs/x`,
  `#/definitions/x`, `#anchor`); a `$id` may not name a scheme or host. Anything else
  could read a file (`file:///…`, printed back in an error), reach the network
  (`http://…`) or never end (`file:///dev/zero`).
* `pattern` and `patternProperties` regexes are measured like `regex_extract`
  patterns (`skills.pattern_problem`) before the metaschema check compiles them.
* `safe_validator` gives a validator whose reference registry retrieves nothing and
  whose `pattern`, `patternProperties` and `additionalProperties` match through the
  `regex` module with a timeout.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
"""Keywords whose values are instance data, not schemas (not searched for `$ref`)."""
PATTERN_TIMEOUT_S = 0.5
"""Longest one schema pattern may take to match one string."""


class SchemaProblem(str):
    """A problem message that also carries where it is inside the schema."""

    path: tuple[str | int, ...] = ()

    def __new__(cls, message: str, path: tuple[str | int, ...] = ()) -> SchemaProblem:
        problem = super().__new__(cls, message)
        problem.path = path
        return problem


def schema_problems(schema: Any, what: str = "schema") -> list[SchemaProblem]:
    """Every reason `schema` may not be used, each with its place inside the schema."""
    from flujo.spec.skills import pattern_problem

    problems: list[SchemaProblem] = []
    keywords = list(_keywords(schema))
    unevaluated = next((p for p, k, _ in keywords if k == "unevaluatedProperties"), None)
    if unevaluated is not None and any(k == "patternProperties" for _, k, _ in keywords):
        # jsonschema matches patternProperties with `re` (unbounded) to find the keys
        # unevaluatedProperties sees; that path cannot be given a timeout.
        message = (
            f"{what}: `unevaluatedProperties` cannot be combined with `patternProperties` "
            "(its pattern matching could not be bounded in time)"
        )
        problems.append(SchemaProblem(message, (*unevaluated, "unevaluatedProperties")))
    for path, key, value in keywords:
        if key in REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
            problems.append(
                SchemaProblem(
                    f"{what}: `{key}: {value[:100]}` is not allowed; only local references "
                    "such as `#/$defs/name` are",
                    (*path, key),
                )
            )
        elif key == "$id" and isinstance(value, str):
            parts = urlsplit(value)
            if parts.scheme or parts.netloc:
                problems.append(
                    SchemaProblem(
                        f"{what}: `$id: {value[:100]}` may not name a scheme or host",
                        (*path, key),
                    )
                )
        elif key == "pattern" and isinstance(value, str):
            problem = pattern_problem(value)
            if problem is not None:
                problems.append(SchemaProblem(f"{what}: {problem}", (*path, key)))
        elif key == "patternProperties" and isinstance(value, dict):
            for pattern in value:
                problem = pattern_problem(str(pattern))
                if problem is not None:
                    where = (*path, key, pattern)
                    problems.append(SchemaProblem(f"{what}: {problem}", where))
    if problems or plainly_valid(schema):
        return problems
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        pointer = "/".join(str(p) for p in exc.path)
        message = f"{what} is not a valid JSON Schema: {exc.message}"
        message += f" (at /{pointer})" if pointer else ""
        return [SchemaProblem(message, tuple(exc.path))]
    return []


_SIMPLE_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_SUBSCHEMA = frozenset({"items", "additionalProperties", "not"})
_COUNTS = frozenset(
    {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
)
_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_TEXTS = frozenset({"title", "description", "$comment", "format"})
_ANYTHING = frozenset({"const", "default"})


def plainly_valid(schema: Any) -> bool:
    """Whether `schema` uses only the common keywords (`type`, `properties`, `required`,
    `enum`, `items`, bounds, …), each with a value the JSON Schema metaschema accepts: then
    it is valid without importing jsonschema (a tenth of a second of a small spec's
    check). False means "not sure": the metaschema decides. Type tests are jsonschema's."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key == "type":
            names = value if isinstance(value, list) else [value]
            fine = (
                bool(names)
                and all(isinstance(n, str) and n in _SIMPLE_TYPES for n in names)
                and len(set(names)) == len(names)
            )
        elif key == "properties":
            fine = isinstance(value, dict) and all(
                isinstance(name, str) and plainly_valid(sub) for name, sub in value.items()
            )
        elif key in _SUBSCHEMA:
            fine = plainly_valid(value)
        elif key == "required":
            fine = (
                isinstance(value, list)
                and all(isinstance(n, str) for n in value)
                and len(set(value)) == len(value)
            )
        elif key in ("enum", "examples"):
            fine = isinstance(value, list)
        elif key in _COUNTS:
            fine = type(value) is int and value >= 0
        elif key in _BOUNDS:
            fine = type(value) in (int, float) and math.isfinite(value)
        elif key == "uniqueItems":
            fine = isinstance(value, bool)
        elif key in _TEXTS:
            fine = isinstance(value, str)
        else:
            fine = key in _ANYTHING
        if not fine:
            return False
    return True


def _keywords(schema: Any) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    """(path of the holding object, key, value) for every key of every object in the
    schema, outside instance data (`enum`, `const`, …); iterative."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                yield path, str(key), value
                if key not in DATA_KEYWORDS:
                    stack.append(((*path, str(key)), value))
        elif isinstance(node, list):
            stack.extend(((*path, i), item) for i, item in enumerate(node))


def _refuse(uri: str) -> Any:
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


@lru_cache(maxsize=1)
def _registry() -> Any:
    """A reference registry holding nothing that retrieves nothing (no file, no network)."""
    from referencing import Registry

    return Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _search(pattern: str, text: str) -> bool | None:
    """Whether `pattern` matches in `text`; None when it is refused or takes too long."""
    import regex

    from flujo.spec.skills import pattern_problem

    if pattern_problem(pattern) is not None:
        return None
    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT_S) is not None
    except (TimeoutError, regex.error):
        return None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield ValidationError(f"pattern {pattern!r} could not be matched (refused or too slow)")
    elif not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield ValidationError(f"pattern {pattern!r} could not be matched against {key!r}")
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            joined = ", ".join(repr(each) for each in sorted(extras))
            verb = "does" if len(extras) == 1 else "do"
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            unexpected = ", ".join(repr(each) for each in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({unexpected} {verb} unexpected)"
            )


@lru_cache(maxsize=16)
def _safe_class(base: Any) -> Any:
    from jsonschema.validators import extend

    overrides = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    }
    wanted = {k: v for k, v in overrides.items() if k in base.VALIDATORS}
    return extend(base, wanted)  # type: ignore[no-untyped-call]


def safe_validator(schema: Any) -> Any:
    """A jsonschema validator for an untrusted schema: references resolve only inside the
    schema itself, and patterns match through `regex` with a timeout."""
    from jsonschema.validators import validator_for

    return _safe_class(validator_for(schema))(schema, registry=_registry())
