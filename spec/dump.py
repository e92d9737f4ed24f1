"""Write a `Pipeline` as canonical YAML."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flujo.spec.model import Pipeline


def dump_pipeline(pipeline: Pipeline) -> str:
    """Canonical text: fields in schema order, defaults left out, multi-line strings as
    literal blocks. `Pipeline.from_yaml(dump_pipeline(p)) == p` for every valid `p`."""
    from flujo.spec.source import make_yaml

    data = pipeline.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data.setdefault("version", pipeline.version)
    ordered = {"version": data.pop("version"), **data}
    yaml = make_yaml()
    stream = io.StringIO()
    yaml.dump(styled(ordered), stream)
    return stream.getvalue()


def styled(value: Any) -> Any:
    """Plain data marked up for ruamel so that it reads back exactly: multi-line strings
    as `|` blocks where that is exact, and strings with control characters or Unicode
    line breaks (which ruamel may write raw, and read back as spaces) double-quoted."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, dict):
        return {_quoted_if_needed(key): styled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [styled(item) for item in value]
    if isinstance(value, str) and _literal_safe(value):
        return LiteralScalarString(value)
    return _quoted_if_needed(value)


def _quoted_if_needed(value: Any) -> Any:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, str) and not value.isprintable():
        return DoubleQuotedScalarString(value)
    return value


def _literal_safe(text: str) -> bool:
    """Whether a `|` block scalar reproduces `text` exactly."""
    if "\n" not in text.rstrip("\n") or text[:1] in (" ", "\n", "\t"):
        return False
    if any(line != line.rstrip(" \t") for line in text.split("\n")):
        return False
    return text.isprintable() or all(ch.isprintable() or ch == "\n" for ch in text)
