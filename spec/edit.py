"""Apply an RFC 6902 JSON Patch to YAML text so that only the patched lines change.

ruamel.yaml's round trip keeps comments and key order but rewrites some formatting
(spaces inside flow mappings, whitespace on blank lines, mixed indentation). So the
patch is applied to the round-trip tree, both the unpatched and the patched tree are
dumped, and the difference between those two dumps is merged into the original text
with a three-way line merge. Lines the patch did not touch stay byte-identical. The
result is checked to load to exactly what the patch gives on the plain data; if the
merge cannot guarantee that, the whole document is written by ruamel instead.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.spec import paths
from flujo.spec.source import make_yaml, parse, parse_with_tree

if TYPE_CHECKING:
    from ruamel.yaml import YAML


class PatchError(ValueError):
    """A patch that is malformed or does not apply; the message names the operation."""


@dataclass(frozen=True)
class PatchResult:
    text: str
    exact: bool
    """True when every line outside the patched ones is byte-identical to the input."""


def apply_patch(text: str, patch: list[dict[str, Any]] | str, *, file: str = "<string>") -> str:
    """The text of `text` with `patch` applied; see `patch_text`."""
    return patch_text(text, patch, file=file).text


def patch_text(
    text: str, patch: list[dict[str, Any]] | str, *, file: str = "<string>"
) -> PatchResult:
    """Apply `patch` (a list of operations or its JSON text) to the YAML `text`.

    Raises PatchError when the patch is malformed, a path does not exist, or a `test`
    operation fails (nothing is applied then), and SpecError when `text` is not YAML.
    """
    import jsonpatch

    operations = _operations(patch)
    newline = "\r\n" if "\r\n" in text else "\n"
    original = text.replace("\r\n", "\n")

    yaml = _styled_yaml(original)
    document, tree = parse_with_tree(original, file, yaml)
    expected = _apply(jsonpatch, operations, copy.deepcopy(document.data))
    base = _dump(yaml, tree)
    _apply(jsonpatch, [_quoted_for_ruamel(op) for op in operations], tree)
    theirs = _dump(yaml, tree)

    merged = _merge(base, original, theirs)
    exact = _loads_to(merged, expected, file)
    if exact:
        attached = _reattach_gaps(original, merged)
        if attached != merged and _loads_to(attached, expected, file):
            merged = attached
    result = merged if exact else theirs
    if not exact and not _loads_to(theirs, expected, file):  # pragma: no cover - ruamel bug
        raise PatchError("the patched document could not be written back faithfully")
    return PatchResult(result.replace("\n", newline) if newline != "\n" else result, exact)


def _operations(patch: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
    if isinstance(patch, str):
        try:
            patch = json.loads(patch)
        except json.JSONDecodeError as exc:
            raise PatchError(f"patch is not JSON: {exc}") from None
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise PatchError("a JSON Patch is a list of operation objects")
    return patch


def _apply(jsonpatch: Any, operations: list[dict[str, Any]], document: Any) -> Any:
    from jsonpointer import JsonPointerException

    for index, operation in enumerate(operations):
        where = f"operation {index} ({operation.get('op', '?')} {operation.get('path', '?')})"
        try:
            document = jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise PatchError(f"{where}: test failed: {exc}") from None
        except (jsonpatch.JsonPatchConflict, JsonPointerException):
            # (their messages quote the whole document)
            target = _describe_path(operation)
            raise PatchError(f"{where}: path {target} does not exist") from None
        except jsonpatch.InvalidJsonPatch as exc:
            raise PatchError(f"{where}: invalid operation: {exc}") from None
    return document


def _quoted_for_ruamel(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation with its value marked up so that ruamel writes it back exactly."""
    if "value" not in operation:
        return operation
    from flujo.spec.dump import styled

    return {**operation, "value": styled(operation["value"])}


def _describe_path(operation: dict[str, Any]) -> str:
    pointer = str(
        operation.get("from")
        if operation.get("op") in ("move", "copy")
        else operation.get("path", "")
    )
    try:
        return f"'{pointer}' ({paths.from_pointer(pointer) or 'document root'})"
    except ValueError:
        return f"'{pointer}'"


def _styled_yaml(text: str) -> YAML:
    """A round-trip YAML whose indentation matches what most of `text` uses."""
    yaml = make_yaml()
    mapping, sequence, offset = guess_indentation(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    if text.lstrip().startswith("---"):
        yaml.explicit_start = True
    return yaml


def guess_indentation(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) most used in block YAML `text`."""
    from collections import Counter

    mappings: Counter[int] = Counter()
    offsets: Counter[int] = Counter()
    previous: tuple[int, str] | None = None  # indent and text of the last `key:` line
    for raw in text.split("\n"):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if previous is not None and indent > previous[0]:
            if stripped.startswith("- "):
                offsets[indent - previous[0]] += 1
            else:
                mappings[indent - previous[0]] += 1
        body = stripped[2:].lstrip() if stripped.startswith("- ") else stripped
        column = indent + (len(stripped) - len(body))
        opens_block = body.endswith(":") or body.split(" #")[0].rstrip().endswith(":")
        previous = (column, body) if opens_block else None
    mapping = mappings.most_common(1)[0][0] if mappings else 2
    offset = offsets.most_common(1)[0][0] if offsets else 2
    return mapping, offset + 2, offset


def _dump(yaml: YAML, tree: Any) -> str:
    stream = io.StringIO()
    yaml.dump(tree, stream)
    return stream.getvalue()


def _merge(base: str, original: str, theirs: str) -> str:
    """Three-way merge: the original's lines, plus base->theirs changes (theirs wins)."""
    from merge3 import Merge3

    merged: list[str] = []
    groups = Merge3(
        base.splitlines(keepends=True),
        original.splitlines(keepends=True),
        theirs.splitlines(keepends=True),
    ).merge_groups()
    for group in groups:
        if group[0] == "conflict":
            merged.extend(_resolve_conflict(group[1], group[2], group[3]))
        else:
            merged.extend(group[1])
    text = "".join(merged)
    if original.endswith("\n") != text.endswith("\n"):
        text = text + "\n" if original.endswith("\n") else text.rstrip("\n")
    return text


def _is_gap(line: str) -> bool:
    """A blank or comment-only line."""
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _trailing_gaps(lines: Sequence[str]) -> int:
    count = 0
    for line in reversed(lines):
        if not _is_gap(line):
            break
        count += 1
    return count


def _reattach_gaps(original: str, merged: str) -> str:
    """Blank and comment lines belong to the content line that follows them.

    ruamel attaches them to the node before, so a removed node takes the comment that
    introduces its next sibling with it, and a node added at the end of a block lands
    below that comment. This moves such lines back: gap lines that end a deleted run
    stay when the line after them stays, and inserted lines go above the gap lines that
    precede the line they were inserted before. (The caller checks the data is unchanged.)
    """
    import difflib

    old = original.splitlines(keepends=True)
    new = merged.splitlines(keepends=True)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(old[i1:i2])
            continue
        next_is_content = i2 < len(old) and not _is_gap(old[i2])
        kept: list[str] = []
        if tag in ("delete", "replace") and next_is_content:
            gaps = _trailing_gaps(old[i1:i2])
            inserted_gaps = _trailing_gaps(new[j1:j2]) if tag == "replace" else 0
            if gaps and not inserted_gaps:
                kept = old[i2 - gaps : i2]
        if tag == "insert":
            gaps = _trailing_gaps(out) if next_is_content else 0
            at = len(out) - gaps
            out[at:at] = new[j1:j2]
        elif tag == "replace":
            out.extend(new[j1 : j2 - _trailing_gaps(new[j1:j2])] if kept else new[j1:j2])
        out.extend(kept)
    return "".join(out)


def _resolve_conflict(
    base: Sequence[str], original: Sequence[str], theirs: Sequence[str]
) -> list[str]:
    """Lines the patch changed come from `theirs`; when the three regions line up one to
    one, every other line keeps the original's formatting."""
    if len(base) == len(original) == len(theirs):
        return [t if b != t else o for b, o, t in zip(base, original, theirs, strict=True)]
    return list(theirs)


def _loads_to(text: str, expected: Any, file: str) -> bool:
    from flujo.spec.errors import SpecError

    try:
        return bool(parse(text, file).data == expected)
    except SpecError:
        return False
