"""yaml_path strings (`steps[2].branches.main.steps[0]`) and their JSON Pointer twins."""

from __future__ import annotations

import json
import re

Segment = str | int

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def child(parent: str, segment: Segment) -> str:
    """The path of `segment` under `parent`; keys that are not plain names are quoted."""
    if isinstance(segment, int):
        return f"{parent}[{segment}]"
    if _PLAIN_KEY.match(segment):
        return f"{parent}.{segment}" if parent else segment
    return f"{parent}[{json.dumps(segment, ensure_ascii=False)}]"


def join(segments: list[Segment]) -> str:
    path = ""
    for segment in segments:
        path = child(path, segment)
    return path


def split(path: str) -> list[Segment]:
    """Parse a yaml_path into keys and indexes; raises ValueError on malformed input."""
    segments: list[Segment] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None or (match.group(1) is not None and pos > 0 and path[pos] != "."):
            raise ValueError(f"malformed yaml_path {path!r} at character {pos + 1}")
        name, index, quoted = match.groups()
        if name is not None:
            segments.append(name)
        elif index is not None:
            segments.append(int(index))
        else:
            segments.append(json.loads(quoted))
        pos = match.end()
    return segments


def to_pointer(path: str) -> str:
    """`steps[2].config` -> `/steps/2/config` (RFC 6901)."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in split(path))


def from_pointer(pointer: str, data: object = None) -> str:
    """`/steps/2/config` -> `steps[2].config`.

    Numeric tokens are indexes when `data` shows a list there (or when no data is
    given); `-` (append) is kept as a key.
    """
    if pointer == "":
        return ""
    if not pointer.startswith("/"):
        raise ValueError(f"JSON Pointer must start with '/': {pointer!r}")
    segments: list[Segment] = []
    node = data
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        is_index = token.isdigit() and (data is None or isinstance(node, list))
        segment: Segment = int(token) if is_index else token
        segments.append(segment)
        if isinstance(node, list) and isinstance(segment, int) and segment < len(node):
            node = node[segment]
        elif isinstance(node, dict):
            node = node.get(token)
        else:
            node = None
    return join(segments)
