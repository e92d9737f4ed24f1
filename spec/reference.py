"""The spec reference in Markdown, rendered from the Pydantic models themselves.

Every step kind, node and field of `flujo.spec.model` (and of `.github/flujo.yml` in
`flujo.spec.config`) with its type, default, constraints and description, so the reference
cannot drift from the code. `flujo schema --markdown` prints it; `./dev docs` writes it to
docs/spec-reference.md, and a test checks the committed file is current.
"""

from __future__ import annotations

import datetime
import inspect
import json
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, StringConstraints
from pydantic.fields import FieldInfo

COMMAND = "flujo schema --markdown -o docs/spec-reference.md"


def reference_markdown() -> str:
    """The whole reference, ending with one newline."""
    from flujo.spec.config import RepoConfig
    from flujo.spec.model import FORMAT_VERSION, STEP_KINDS, SUPPORTED_VERSIONS, Pipeline

    step_models: list[type[BaseModel]] = list(STEP_KINDS.values())
    others = [m for m in _models_reached(Pipeline) if m is not Pipeline and m not in step_models]
    others = [m for m in others if not _is_step_base(m)]
    config_models = _models_reached(RepoConfig)
    supported = ", ".join(f"`{v}`" for v in SUPPORTED_VERSIONS)

    out = [
        "# Spec reference",
        "",
        f"<!-- Generated from spec/model.py and spec/config.py by `{COMMAND}`"
        " (`./dev docs`). Do not edit by hand. -->",
        "",
        f'Format version `{FORMAT_VERSION}` (`version: "{FORMAT_VERSION}"`; this Flujo reads'
        f" {supported}). Every node rejects unknown keys, with a did-you-mean. The format"
        " is explained in [spec.md](spec.md); this page lists every field.",
        "",
        "Types: `name` is letters, digits, `_` and `-`, starting with a letter or `_` (at most"
        " 64 characters); `expression` is a non-empty string of at most 4,096 characters in"
        " the [expression language](spec.md#expressions).",
        "",
        "## Contents",
        "",
        f"- [Pipeline]({_anchor(_heading(Pipeline))}): the document",
        "- [Steps](#steps): "
        + ", ".join(f"[`{kind}`]({_anchor(_heading(m))})" for kind, m in STEP_KINDS.items()),
        "- Other nodes: " + ", ".join(f"[{m.__name__}]({_anchor(_heading(m))})" for m in others),
        "- [Expression fields](#expression-fields): `result.FIELD`, `steps.NAME.FIELD`",
        "- [Repository configuration](#repository-configuration-githubflujoyml): "
        + ", ".join(f"[{m.__name__}]({_anchor(_heading(m))})" for m in config_models),
        "",
    ]
    out += _section(Pipeline, level=2)
    out += [
        "## Steps",
        "",
        "A step is chosen by its `kind` (default `step`). Every kind has `name` (unique across"
        " the whole pipeline), `kind` and `description`.",
        "",
    ]
    for model in step_models:
        out += _section(model, level=3)
    out += ["## Other nodes", ""]
    for model in others:
        out += _section(model, level=3)
    from flujo.spec import fields

    out += fields.reference_markdown()
    out += [
        "## Repository configuration (`.github/flujo.yml`)",
        "",
        "Read from `.github/flujo.yml` (or `.yaml`) at the root of the repository; without"
        " one, the defaults apply.",
        "",
    ]
    for model in config_models:
        out += _section(model, level=3)
    return "\n".join(out).rstrip("\n") + "\n"


# -- sections ---------------------------------------------------------------------------


def _heading(model: type[BaseModel]) -> str:
    kind = _kind_of(model)
    return f"{model.__name__} (`kind: {kind}`)" if kind is not None else model.__name__


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return "#" + slug.replace(" ", "-")


def _section(model: type[BaseModel], level: int) -> list[str]:
    lines = [f"{'#' * level} {_heading(model)}", ""]
    doc = " ".join(inspect.cleandoc(model.__doc__ or "").split())
    if doc:
        lines += [doc, ""]
    lines += ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        cells = [f"`{key}`", _field_type(field), _default(field), field.description or ""]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, ""]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _kind_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is None or get_origin(field.annotation) is not Literal:
        return None
    (kind,) = get_args(field.annotation)
    return str(kind)


def _is_step_base(model: type[BaseModel]) -> bool:
    from flujo.spec.model import StepBase

    return issubclass(model, StepBase)


def _models_reached(root: type[BaseModel]) -> list[type[BaseModel]]:
    """`root` and every model its fields refer to, in first-reached order (breadth first)."""
    seen: list[type[BaseModel]] = [root]
    queue = [root]
    while queue:
        model = queue.pop(0)
        for field in model.model_fields.values():
            for found in _models_in(field.annotation):
                if found not in seen:
                    seen.append(found)
                    queue.append(found)
    return seen


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found += _models_in(arg)
    return found


# -- types and defaults -----------------------------------------------------------------

_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    datetime.date: "date (YYYY-MM-DD)",
    Any: "any",
    type(None): "null",
}


def _field_type(field: FieldInfo) -> str:
    text = _type(field.annotation, field.metadata)
    limits = _limits(field.metadata)
    return f"{text} ({limits})" if limits else text


def _type(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    named = _named_string(metadata)
    if named is not None and annotation is str:
        return named
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}]({_anchor(_heading(annotation))})"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        inner, *extra = args
        if get_origin(inner) in (Union, types.UnionType) and all(
            _is_step_base(get_args(a)[0]) for a in get_args(inner)
        ):
            return "[step](#steps)"
        return _type(inner, extra)
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"map of {_type(args[0])} to {_type(args[1])}"
    raise TypeError(f"the reference cannot render the type {annotation!r}: teach spec/reference.py")


def _named_string(metadata: list[Any] | tuple[Any, ...]) -> str | None:
    from flujo.spec.model import Expression, Name

    for kind, alias in (("name", Name), ("expression", Expression)):
        constraints = [m for m in get_args(alias)[1:] if isinstance(m, StringConstraints)]
        if constraints and constraints[0] in metadata:
            return kind
    return None


def _limits(metadata: list[Any]) -> str:
    """Bounds from the field's constraints (annotated-types objects, read by attribute)."""
    words = {
        "ge": "≥ {}",
        "gt": "> {}",
        "le": "≤ {}",
        "lt": "< {}",
        "min_length": "length ≥ {}",
        "max_length": "length ≤ {}",
    }
    parts = []
    for item in metadata:
        if isinstance(item, StringConstraints):
            continue  # `name` and `expression` are explained once, at the top
        for attribute, text in words.items():
            value = getattr(item, attribute, None)
            if value is not None and not (attribute == "min_length" and value == 0):
                parts.append(text.format(value))
        if getattr(item, "pattern", None):
            parts.append(f"matches `{item.pattern}`")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [item.model_dump(mode="json") for item in value]
    return f"`{json.dumps(value, ensure_ascii=False, default=str)}`"
