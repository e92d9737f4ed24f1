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
    yaml.dump(_styled(ordered), stream)
    return stream.getvalue()


# Line breaks to ruamel's reader that its emitter may still write raw inside a
# single-quoted or plain scalar, where they are read back folded into a space.
_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")


def _styled(value: Any) -> Any:
    """Plain data with multi-line strings marked for `|` block style where that is exact,
    and strings holding a Unicode line break forced into (escaped) double quotes."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, dict):
        return {_quoted_if_breaks(key): _styled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_styled(item) for item in value]
    if isinstance(value, str) and _literal_safe(value):
        return LiteralScalarString(value)
    return _quoted_if_breaks(value)


def _quoted_if_breaks(value: Any) -> Any:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, str) and any(brk in value for brk in _UNICODE_BREAKS):
        return DoubleQuotedScalarString(value)
    return value


def _literal_safe(text: str) -> bool:
    """Whether a `|` block scalar reproduces `text` exactly."""
    if "\n" not in text.rstrip("\n") or text[:1] in (" ", "\n", "\t"):
        return False
    if any(line != line.rstrip(" \t") for line in text.split("\n")):
        return False
    return text.isprintable() or all(ch.isprintable() or ch == "\n" for ch in text)
