"""Apply an RFC 6902 JSON Patch to YAML text so that only the patched bytes change.

This is the one edit path: `flujo patch`, suggestion PRs, the guard and `flujo migrate`
all come through here. A patch is applied on the text (`flujo.spec.splice`): each
operation splices the source at the spans of the nodes it touches, so every untouched
byte stays. `flujo migrate` adds one operation of its own, `rename` (a mapping key
written anew in place). What splicing cannot express (a change through an alias or merge
key) is done on ruamel's round-trip tree: both the unpatched and the patched tree are
dumped, and the difference between those two dumps is merged into the original text
with a three-way line merge. Either way the result is
checked to load to exactly what RFC 6902 gives on the plain data (else PatchError).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.spec import paths
from flujo.spec.errors import EXIT_INVALID, FlujoError, SpecError
from flujo.spec.source import MAX_DEPTH, edit_data, load_tree, make_yaml

if TYPE_CHECKING:
    from ruamel.yaml import YAML


class PatchError(FlujoError, ValueError):
    """A patch that is malformed or does not apply; the message names the operation.

    Exit code 1: the patch is invalid input.
    """

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class PatchResult:
    text: str
    exact: bool
    """True when every line outside the patched ones is byte-identical to the input."""
    spliced: bool = False
    """True when the patch was applied on the text (every untouched byte kept), False
    when it went through ruamel's round-trip tree (see the module docstring)."""


def apply_patch(text: str, patch: list[dict[str, Any]] | str, *, file: str = "<string>") -> str:
    """The text of `text` with `patch` applied; see `patch_text`."""
    return patch_text(text, patch, file=file).text


def patch_text(
    text: str,
    patch: list[dict[str, Any]] | str,
    *,
    file: str = "<string>",
    renames: bool = False,
) -> PatchResult:
    """Apply `patch` (a list of operations or its JSON text) to the YAML `text`.

    With `renames`, an operation may also be `{"op": "rename", "path": P, "to": KEY}`: the
    key at P is written as KEY in place (its value, comments and position stay), which
    RFC 6902 can only say as a move to the end of the mapping (`flujo migrate` uses it).
    Raises PatchError when the patch is malformed, a path does not exist, or a `test`
    operation fails (nothing is applied then), and SpecError when `text` is not YAML.
    """
    operations = _operations(patch)
    if not renames and any(op.get("op") == "rename" for op in operations):
        raise PatchError("`rename` is not a JSON Patch operation (RFC 6902)")
    with _collector_paused():
        return _patch_text(text, operations, file)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a patch composes and checks the document.

    Composing builds one object per node and keeps them alive until the patch is done;
    with the collector on, its passes over those live objects made the time per step of
    a 10,000-step patch about twice that of a 1,000-step one (CPU time; see
    benchmarks/spec_scale.py). Nothing here makes cycles that must be freed before the
    patch ends, and the collector runs again as soon as it does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _patch_text(text: str, operations: list[dict[str, Any]], file: str) -> PatchResult:
    import jsonpatch

    newline = "\r\n" if "\r\n" in text else "\n"
    original = text.replace("\r\n", "\n")
    data, node = edit_data(original, file)
    if "&" in original:
        data = _plain_copy(data)
    spliced, expected = _splice(jsonpatch, original, node, operations, data, file)
    if spliced is not None and _loads_to(spliced, expected, file, scan=not _shallow(operations)):
        out = spliced.replace("\n", newline) if newline != "\n" else spliced
        return PatchResult(out, exact=True, spliced=True)
    _refuse_too_deep(expected, operations)
    yaml = _styled_yaml(original)
    try:
        tree = load_tree(original, file, yaml)
    except SpecError as exc:  # YAML the composer reads but the round-trip loader does not
        raise PatchError(f"the patch cannot be applied faithfully here: {exc}") from None

    def change(tree: Any) -> None:
        _unshare(tree, operations)
        _apply(jsonpatch, [_quoted_for_ruamel(op) for op in operations], tree)

    return _rewrite(original, newline, yaml, tree, change, expected, file)


def _rewrite(
    original: str,
    newline: str,
    yaml: YAML,
    tree: Any,
    change: Callable[[Any], None],
    expected: Any,
    file: str,
) -> PatchResult:
    base = _dump(yaml, tree)
    change(tree)
    _quote_new_strings(tree)
    theirs = _dump(yaml, tree)

    merged = _merge(base, original, theirs)
    exact = _loads_to(merged, expected, file)
    if not exact:  # the original's indentation and flow spacing may not fit: plain merge
        merged = _merge(base, original, theirs, adapt=False)
        exact = _loads_to(merged, expected, file)
    if exact:
        attached = _reattach_gaps(original, merged)
        if attached != merged and _loads_to(attached, expected, file):
            merged = attached
        restored = _restore_moved_lines(original, merged)
        if restored != merged and _loads_to(restored, expected, file):
            merged = restored
    result = merged if exact else theirs
    if not exact and not _loads_to(theirs, expected, file):  # pragma: no cover - ruamel bug
        raise PatchError("the patched document could not be written back faithfully")
    return PatchResult(result.replace("\n", newline) if newline != "\n" else result, exact)


def _splice(
    jsonpatch: Any,
    text: str,
    node: Any,
    operations: list[dict[str, Any]],
    data: Any,
    file: str,
) -> tuple[str | None, Any]:
    """The text with `operations` spliced in (None if one cannot be), and the data RFC
    6902 gives (PatchError when an operation does not apply)."""
    from flujo.spec.splice import Splicer

    splicer: Splicer | None = Splicer(text, node, file)
    for index, operation in enumerate(operations):
        value = operation.get("value")
        if splicer is not None and operation.get("op") in ("move", "copy"):
            try:
                value = _plain_copy(_resolve(data, str(operation.get("from"))))
            except (KeyError, IndexError, ValueError, TypeError):
                splicer = None  # jsonpatch says why, below
        data = _apply(jsonpatch, [operation], data, first=index)
        if splicer is not None:
            try:
                splicer.apply(operation, value)
            except Exception:
                splicer = None
    return (splicer.text if splicer is not None else None), data


def _refuse_too_deep(data: Any, operations: list[dict[str, Any]]) -> None:
    """PatchError when the patched data nests deeper than MAX_DEPTH (no loader accepts
    it): names the limit, the operation and the yaml_path of the value it writes."""
    deep = _too_deep(data, MAX_DEPTH)
    if deep is None:
        return
    for index, operation in reversed(list(enumerate(operations))):
        pointer = operation.get("path")
        if not isinstance(pointer, str) or not pointer:
            continue
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        if len(tokens) <= len(deep) and all(
            token == str(segment) or (token == "-" and isinstance(segment, int))
            for token, segment in zip(tokens, deep, strict=False)
        ):
            where = f"operation {index} ({operation.get('op', '?')} {pointer})"
            value = _resolve_segments(data, deep[: len(tokens)])
            levels = _depth(value, _UNSCANNED_DEPTH)
            reaches = (
                f"level {levels + len(tokens)}"
                if levels <= _UNSCANNED_DEPTH
                else f"more than {_UNSCANNED_DEPTH} levels"
            )
            raise PatchError(
                f"{where}: nesting deeper than {MAX_DEPTH} levels (the most a spec may have) "
                f"at {paths.join(deep[: len(tokens)])}: the value written there reaches {reaches}"
            )
    raise PatchError(
        f"the patched document nests deeper than {MAX_DEPTH} levels (the most a spec may "
        f"have) at {paths.join(deep)}"
    )


def _too_deep(data: Any, limit: int) -> list[paths.Segment] | None:
    """The segments of the first list or dict nested deeper than `limit` levels, else None."""
    stack: list[tuple[Any, int, Any]] = [(data, 0, None)]  # (value, depth, (segment, parent))
    while stack:
        value, depth, trail = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth >= limit:
            found: list[paths.Segment] = []
            while trail is not None:
                segment, trail = trail
                found.append(segment)
            return found[::-1]
        items = value.items() if isinstance(value, dict) else enumerate(value)
        stack.extend((item, depth + 1, (key, trail)) for key, item in reversed(list(items)))
    return None


def _resolve_segments(data: Any, segments: list[paths.Segment]) -> Any:
    for segment in segments:
        data = data[segment]
    return data


def _resolve(data: Any, pointer: str) -> Any:
    if pointer == "":
        return data
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        data = data[int(token)] if isinstance(data, list) else data[token]
    return data


def _operations(patch: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
    if isinstance(patch, str):
        try:
            patch = json.loads(patch)
        except json.JSONDecodeError as exc:
            raise PatchError(f"patch is not JSON: {exc}") from None
        except RecursionError:  # the JSON reader recurses once per level
            raise PatchError(
                f"patch nests too deep to read (a spec may have at most {MAX_DEPTH} levels)"
            ) from None
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise PatchError("a JSON Patch is a list of operation objects")
    return patch


def _rename(document: Any, operation: dict[str, Any]) -> Any:
    """`document` with the key at `path` renamed to `to` in place (order kept); a plain
    dict or ruamel's CommentedMap (whose comments follow the key)."""
    pointer, new = str(operation.get("path", "")), operation.get("to")
    if not pointer or not isinstance(new, str):
        raise KeyError(pointer)
    parent = _resolve(document, pointer.rsplit("/", 1)[0])
    old = pointer.rsplit("/", 1)[1].replace("~1", "/").replace("~0", "~")
    if not isinstance(parent, dict) or old not in parent or (new in parent and new != old):
        raise KeyError(pointer)
    items = list(parent.items())
    comments = getattr(getattr(parent, "ca", None), "items", None)
    parent.clear()
    for key, value in items:
        parent[new if key == old else key] = value
    if comments is not None and old in comments:
        comments[new] = comments.pop(old)
    return document


def _apply(
    jsonpatch: Any, operations: list[dict[str, Any]], document: Any, *, first: int = 0
) -> Any:
    from jsonpointer import JsonPointerException

    for index, operation in enumerate(operations, start=first):
        where = f"operation {index} ({operation.get('op', '?')} {operation.get('path', '?')})"
        _check_pointers(operation, where)
        if "value" in operation and _depth(operation["value"], MAX_DEPTH) > MAX_DEPTH:
            raise PatchError(  # no spec may hold it (and copying it would exhaust the stack)
                f"{where}: nesting deeper than {MAX_DEPTH} levels (the most a spec may have) "
                f"at {_describe_path(operation)}: the value itself is deeper"
            )
        if operation.get("op") == "rename":
            try:
                document = _rename(document, operation)
            except (KeyError, IndexError, ValueError, TypeError):
                target = _describe_path(operation)
                raise PatchError(f"{where}: cannot rename {target}") from None
            continue
        try:
            document = jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise PatchError(
                f"{where}: test failed: {_test_failure(operation, document)}"
            ) from None
        except (jsonpatch.JsonPatchConflict, JsonPointerException):
            # (their messages quote the whole document)
            target = _describe_path(operation)
            raise PatchError(f"{where}: path {target} does not exist") from None
        except jsonpatch.InvalidJsonPatch as exc:
            raise PatchError(f"{where}: invalid operation: {exc}") from None
    return document


def _check_pointers(operation: dict[str, Any], where: str) -> None:
    """A JSON Pointer (RFC 6901) is empty or starts with `/`: say so, with the fix."""
    for field in ("path", "from"):
        pointer = operation.get(field)
        if isinstance(pointer, str) and pointer and not pointer.startswith("/"):
            raise PatchError(
                f"{where}: {field} '{pointer}' is not a JSON Pointer: it must start with '/' "
                f"(did you mean '/{pointer}'?)"
            )


def _test_failure(operation: dict[str, Any], document: Any) -> str:
    """Why a `test` operation failed, with both values as JSON (as the patch wrote them)."""
    pointer = str(operation.get("path", ""))
    expected = json.dumps(operation.get("value"), ensure_ascii=False, default=str)
    try:
        found = json.dumps(_resolve(document, pointer), ensure_ascii=False, default=str)
    except (KeyError, IndexError, ValueError, TypeError):
        return f"{_describe_path(operation)} does not exist (expected {expected})"
    return f"{_describe_path(operation)} is {found}, not {expected}"


def _quoted_for_ruamel(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation with its value marked up so that ruamel writes it back exactly."""
    if "value" not in operation:
        return operation
    from flujo.spec.dump import styled

    return {**operation, "value": styled(operation["value"])}


def _plain_copy(data: Any) -> Any:
    """A copy of plain data in which nothing is shared: `parse` gives every use of an
    alias the same object, and `copy.deepcopy` would keep that sharing, so a patch of
    one place would show at the others too (JSON has no aliases)."""
    if isinstance(data, dict):
        return {key: _plain_copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_plain_copy(item) for item in data]
    return data


def _unshare(tree: Any, operations: list[dict[str, Any]]) -> None:
    """Give the patch private copies of the containers it changes.

    A node reached through an alias (`*defaults`) or a merge key (`<<: *base`) is one
    object in ruamel's tree but a separate copy in the plain data, so changing it at one
    place would change it everywhere. Every shared container on the way to a patched
    node is replaced, at that place only, by a copy without anchors (it is written out
    in full there; the other places keep the anchor or alias)."""
    from collections import Counter

    from ruamel.yaml.comments import merge_attrib

    counts: Counter[int] = Counter()

    def count(node: Any) -> None:
        if not isinstance(node, dict | list):
            return
        counts[id(node)] += 1
        if counts[id(node)] > 1:
            return
        for merged in getattr(node, merge_attrib, None) or []:
            count(merged)
        for child in node.values() if isinstance(node, dict) else node:
            count(child)

    count(tree)
    if all(n == 1 for n in counts.values()):
        return
    for operation in operations:
        for field in ("path", "from"):
            pointer = operation.get(field)
            if operation.get("op") == "test" or not isinstance(pointer, str):
                continue
            node = tree
            tokens = pointer.split("/")[1:]
            for raw in tokens[:-1]:
                token: Any = raw.replace("~1", "/").replace("~0", "~")
                if isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    token = int(token)
                elif not isinstance(node, dict) or token not in node:
                    break
                child = node[token]
                if isinstance(child, dict | list) and counts[id(child)] > 1:
                    counts[id(child)] -= 1
                    anchor = getattr(child, "anchor", None)
                    if anchor is not None and anchor.value is not None:
                        # keep the anchor on the remaining uses, even if only one is left
                        child.yaml_set_anchor(anchor.value, always_dump=True)  # type: ignore[union-attr]
                    child = _private_copy(child)
                    node[token] = child
                node = child
            else:
                removes = operation.get("op") == "remove" or (
                    field == "from" and operation.get("op") == "move"
                )
                if removes and tokens and isinstance(node, dict):
                    _unmerge(node, tokens[-1].replace("~1", "/").replace("~0", "~"))


def _unmerge(mapping: Any, key: str) -> None:
    """Write out the keys a merge (`<<: *base`) gives `mapping`, and drop the merge, when
    `key` is about to be removed from it: else the merge would bring `key` back."""
    from ruamel.yaml.comments import merge_attrib

    sources = getattr(mapping, merge_attrib, None) or []
    if not any(isinstance(source, dict) and key in source for source in sources):
        return
    mapping._ok.update(mapping.keys())
    for source in sources:
        refs = getattr(source, "_ref", [])
        if mapping in refs:
            refs.remove(mapping)
        if getattr(source, "anchor", None) is not None and source.anchor.value is not None:
            source.yaml_set_anchor(source.anchor.value, always_dump=True)
    delattr(mapping, merge_attrib)


def _private_copy(node: Any) -> Any:
    from ruamel.yaml.comments import CommentedBase

    # Scalars are immutable: the copy keeps the very objects, so `*alias` scalars stay
    # aliases of their anchor.
    memo: dict[int, Any] = {}
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            stack.extend(item.values() if isinstance(item, dict) else item)
        else:
            memo[id(item)] = item
    duplicate = copy.deepcopy(node, memo)
    stack = [duplicate]
    while stack:
        item = stack.pop()
        if isinstance(item, CommentedBase) and item.anchor.value is not None:
            item.yaml_set_anchor(None)
        if hasattr(item, "_ref"):
            item._ref = []
        if isinstance(item, dict | list):
            stack.extend(item.values() if isinstance(item, dict) else item)
    return duplicate


_FLOW_RISKY = re.compile(r"[?:#,\[\]{}&*!|>'\"%@`]")


def _quote_new_strings(tree: Any) -> None:
    """Double-quote the new strings ruamel would write so that they do not read back:
    keys with control characters or Unicode line breaks (a key comes from the path, not
    the value, so `styled` never saw it), and in a flow collection, strings with `?`,
    `:` or other indicators (`{a: b?}`, `[a:b]`), which ruamel writes plain and libyaml,
    which `parse` uses, rejects."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString

    def needs_quotes(text: Any, flow: bool, key: bool) -> bool:
        if not isinstance(text, str) or isinstance(text, ScalarString):
            return False
        return (key and not text.isprintable()) or (flow and _FLOW_RISKY.search(text) is not None)

    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(tree, False)]
    while stack:
        node, flow = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        fa = getattr(node, "fa", None)
        flow = flow or bool(fa is not None and fa.flow_style())
        if isinstance(node, dict):
            for index, key in enumerate(list(node)):
                value = node[key]
                if needs_quotes(value, flow, key=False):
                    node[key] = value = DoubleQuotedScalarString(value)
                if needs_quotes(key, flow, key=True):
                    if hasattr(node, "insert"):  # a CommentedMap
                        del node[key]
                        node.insert(index, DoubleQuotedScalarString(key), value)
                    else:  # a new dict: rebuild it in order
                        items = [
                            (DoubleQuotedScalarString(k) if k == key else k, v)
                            for k, v in node.items()
                        ]
                        node.clear()
                        node.update(items)
            stack.extend((value, flow) for value in node.values())
        else:
            for index, item in enumerate(node):
                if needs_quotes(item, flow, key=False):
                    node[index] = DoubleQuotedScalarString(item)
            stack.extend((item, flow) for item in node)


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
    content = (line for line in text.split("\n") if line.strip() and line[:1] != "#")
    if next(content, "").startswith("---"):
        yaml.explicit_start = True
    return yaml


def guess_indentation(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) most used in block YAML `text`."""
    from collections import Counter

    mappings: Counter[int] = Counter()
    sequences: Counter[tuple[int, int]] = Counter()  # (dash offset, dash to content)
    previous: tuple[int, str] | None = None  # indent and text of the last `key:` line
    for raw in text.split("\n"):
        stripped = raw.strip()
        if not stripped or stripped[0] == "#":
            continue
        if previous is None and stripped[-1] != ":" and " #" not in stripped:
            continue  # (most lines: neither below a `key:` line nor one)
        indent = len(raw) - len(raw.lstrip(" "))
        body = stripped[2:].lstrip() if stripped.startswith("- ") else stripped
        if previous is not None and stripped.startswith("- ") and indent >= previous[0]:
            # (a dash at the key's own column starts the key's value too: offset 0)
            sequences[indent - previous[0], len(stripped) - len(body)] += 1
        elif previous is not None and indent > previous[0]:
            mappings[indent - previous[0]] += 1
        column = indent + (len(stripped) - len(body))
        opens_block = body.endswith(":") or body.split(" #")[0].rstrip().endswith(":")
        previous = (column, body) if opens_block else None
    mapping = mappings.most_common(1)[0][0] if mappings else 2
    offset, width = sequences.most_common(1)[0][0] if sequences else (2, 2)
    return mapping, offset + width, offset


def _dump(yaml: YAML, tree: Any) -> str:
    stream = io.StringIO()
    yaml.dump(tree, stream)
    return stream.getvalue()


def _merge(base: str, original: str, theirs: str, *, adapt: bool = True) -> str:
    """Three-way merge: the original's lines, plus base->theirs changes (theirs wins).

    With `adapt`, lines taken from `theirs` where the original is formatted differently
    from ruamel's dump are re-indented and re-spaced like the original's lines."""
    import difflib

    from merge3 import Merge3

    base_lines, original_lines, their_lines = _lines(base), _lines(original), _lines(theirs)
    aligned = _aligned(base_lines, original_lines)
    merged: list[str] = []
    iz = ia = ib = 0  # as in Merge3.merge_regions, tracking the base position too
    for zmatch, zend, amatch, aend, bmatch, bend in Merge3(
        base_lines, original_lines, their_lines
    ).find_sync_regions():
        ours, mine, yours = (
            base_lines[iz:zmatch],
            original_lines[ia:amatch],
            their_lines[ib:bmatch],
        )
        if mine == yours or yours == ours:
            merged.extend(mine)
        elif not adapt or len(mine) != len(ours):
            merged.extend(_resolve_conflict(ours, mine, yours))
        else:  # make the changed lines look like the original lines around them
            aligned[iz:zmatch] = mine
            matcher = difflib.SequenceMatcher(None, ours, yours, autojunk=False)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag == "equal":
                    merged.extend(mine[i1:i2])
                elif tag == "replace" and i2 - i1 == j2 - j1:
                    merged.extend(
                        _like(yours[j], ours[i], mine[i])
                        for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                    )
                else:
                    merged.extend(_like_block(yours[j1:j2], base_lines, aligned, iz + i1))
        merged.extend(original_lines[amatch:aend])
        iz, ia, ib = zend, aend, bend
    text = "".join(merged)
    if original.endswith("\n") != text.endswith("\n"):
        text = text + "\n" if original.endswith("\n") else text.rstrip("\n")
    return text


@dataclass(frozen=True)
class Reverted:
    """The reverse of a change made on a file that moved on since (`revert_change`)."""

    text: str | None
    """The file with the change undone (None: it conflicts)."""
    conflicts: tuple[tuple[int, int], ...] = ()
    """1-based line ranges of the current file that both the change and later commits
    touched."""


def revert_change(before: str, after: str, current: str) -> Reverted:
    """Undo the change `before` -> `after` on `current` (what `after` became since) by a
    three-way merge, as `git revert` does: lines later commits did not touch go back to
    `before`; where both changed the same or adjacent lines, it conflicts."""
    from merge3 import Merge3

    merge = Merge3(_lines(after), _lines(current), _lines(before))
    merged: list[str] = []
    conflicts: list[tuple[int, int]] = []
    for region in merge.merge_regions():
        if region[0] == "conflict":  # (kind, zstart, zend, astart, aend, bstart, bend)
            start, end = region[3:5]
            conflicts.append((start + 1, max(start + 1, end)))
        else:
            side = {"unchanged": merge.base, "a": merge.a, "same": merge.a, "b": merge.b}
            merged.extend(side[region[0]][region[1] : region[2]])
    if conflicts:
        return Reverted(None, tuple(conflicts))
    return Reverted("".join(merged))


def _lines(text: str) -> list[str]:
    """Lines split on LF only, with their ends (`str.splitlines` also splits on NEL, LS...)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    return [*out, lines[-1]] if lines[-1] else out


def _normal(line: str) -> str:
    """A line without indentation, dash width, flow and comment spacing."""
    return _FLOW_SPACE.sub("", re.sub(r"^-\s+", "- ", line.strip()))


def _aligned(base: list[str], original: list[str]) -> list[str]:
    """For each base line, the original line it stands for (equal but for the spacing
    `_normal` ignores), else the base line itself."""
    import difflib

    aligned = list(base)
    matcher = difflib.SequenceMatcher(
        None, [_normal(line) for line in base], [_normal(line) for line in original], autojunk=False
    )
    for i, j, size in matcher.get_matching_blocks():
        aligned[i : i + size] = original[j : j + size]
    return aligned


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
    from collections import Counter

    old = _lines(original)
    new = _lines(merged)
    out: list[str] = []
    opcodes = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    kept_at: dict[int, list[str]] = {}
    for tag, i1, i2, j1, j2 in opcodes:
        next_is_content = i2 < len(old) and not _is_gap(old[i2])
        if tag in ("delete", "replace") and next_is_content:
            gaps = _trailing_gaps(old[i1:i2])
            inserted_gaps = _trailing_gaps(new[j1:j2]) if tag == "replace" else 0
            if gaps and not inserted_gaps:
                kept_at[i1] = old[i2 - gaps : i2]
    # A moved node comes with the gap lines after it, which also stay where it was.
    stayed = Counter(line for kept in kept_at.values() for line in kept)
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            out.extend(old[i1:i2])
            continue
        kept = kept_at.get(i1, [])
        added = _reindent_comments(list(new[j1:j2]))
        if not kept:
            while added and _is_gap(added[-1]) and stayed[added[-1]] > 0:
                stayed[added.pop()] -= 1
        if tag == "insert":
            next_is_content = i2 < len(old) and not _is_gap(old[i2])
            gaps = _trailing_gaps(out) if next_is_content else 0
            at = len(out) - gaps
            out[at:at] = added
        elif tag == "replace":
            out.extend(added[: len(added) - _trailing_gaps(added)] if kept else added)
        out.extend(kept)
    return "".join(out)


_FLOW_SPACE = re.compile(r"(?<=[{\[,])\s+|\s+(?=[}\],])|\s+(?=#)")


def _restore_moved_lines(original: str, merged: str) -> str:
    """A moved node's lines come from ruamel's dump: flow collections without inner
    spaces, end-of-line comments at their old column. Each new line that is a removed
    line of the original but for such spacing (and indentation) becomes that line again,
    at the new indentation. (The caller checks the data is unchanged.)"""
    import difflib

    old = _lines(original)
    new = _lines(merged)
    opcodes = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    removed: dict[str, list[str]] = {}
    for tag, i1, i2, _, _ in opcodes:
        if tag in ("delete", "replace"):
            for line in old[i1:i2]:
                if not _is_gap(line):
                    removed.setdefault(_FLOW_SPACE.sub("", line.strip()), []).append(line)
    if not removed:
        return merged
    out = list(new)
    for tag, _, _, j1, j2 in opcodes:
        if tag not in ("insert", "replace"):
            continue
        for j in range(j1, j2):
            line = new[j]
            if _is_gap(line):
                continue
            candidates = removed.get(_FLOW_SPACE.sub("", line.strip()))
            if candidates:
                out[j] = " " * _indent(line) + candidates.pop(0).lstrip(" ")
    return "".join(out)


def _reindent_comments(lines: list[str]) -> list[str]:
    """Own-line comments in new lines that are indented deeper than the content lines
    on both sides of them (ruamel keeps a moved comment's old column) take the
    indentation of the content line after them."""
    content = [i for i, line in enumerate(lines) if not _is_gap(line)]
    for i, line in enumerate(lines):
        if not line.strip().startswith("#"):
            continue
        before = [j for j in content if j < i]
        after = [j for j in content if j > i]
        if not before or not after:
            continue
        width = _indent(lines[after[0]])
        if _indent(line) > max(width, _indent(lines[before[-1]])):
            lines[i] = " " * width + line.lstrip(" ")
    return lines


def _resolve_conflict(
    base: Sequence[str], original: Sequence[str], theirs: Sequence[str]
) -> list[str]:
    """Lines the patch changed come from `theirs`; when the three regions line up one to
    one, every other line keeps the original's formatting."""
    if len(base) == len(original) == len(theirs):
        return [t if b != t else o for b, o, t in zip(base, original, theirs, strict=True)]
    return list(theirs)


def _like_block(
    lines: Sequence[str], base: Sequence[str], original: Sequence[str], at: int
) -> list[str]:
    """New lines (from ruamel's dump) inserted before base line `at`, shifted as the
    original shifts the base line they line up with: a sibling at the same indentation
    (the one they replace or precede first), else their parent. A list item also takes
    its sibling's dash width, and its content moves with it."""
    content = [line for line in lines if not _is_gap(line)]
    if not content:
        return list(lines)
    top = min(_indent(line) for line in content)
    first = next(line for line in content if _indent(line) == top)
    ref = _counterpart(base, top, _ITEM.match(first) is not None, at)
    if ref < 0:
        return list(lines)
    shift = _indent(original[ref]) - _indent(base[ref])
    base_dash, original_dash = _DASH.match(base[ref]), _DASH.match(original[ref])
    sibling = _indent(base[ref]) == top and base_dash is not None and original_dash is not None
    extra = len(original_dash.group(2)) - len(base_dash.group(2)) if sibling else 0  # type: ignore[union-attr]
    out = []
    item = False  # inside a list item that starts at `top`
    for line in lines:
        if _is_gap(line):
            out.append(line)
            continue
        width = _indent(line)
        dash = _DASH.match(line)
        if width == top:
            item = _ITEM.match(line) is not None
            if sibling and dash is not None and dash.group(2) == base_dash.group(2):  # type: ignore[union-attr]
                line = dash.group(1) + original_dash.group(2) + line[dash.end() :]  # type: ignore[union-attr]
        elif item and extra > 0:
            line = " " * extra + line
        elif item and extra < 0 and width >= -extra:
            line = line[-extra:]
        if shift > 0:
            line = " " * shift + line
        elif shift < 0 and _indent(line) >= -shift:
            line = line[-shift:]
        for opening, closing in ("{}", "[]"):
            if f"{opening} " in original[ref]:
                line = _spaced(line, opening, closing)
        out.append(line)
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _counterpart(base: Sequence[str], width: int, dash: bool, at: int) -> int:
    """Index of the base line that new lines indented `width` (a list item if `dash`)
    and inserted before line `at` line up with: a sibling (the line at `at`, else the
    nearest one before, else after, within the same parent), else the parent; -1 when
    there is none. (A list may start at its parent key's column: a key's siblings are
    keys, an item's are items.)"""

    def sibling(i: int) -> bool:
        return _indent(base[i]) == width and (_ITEM.match(base[i]) is not None) == dash

    if at < len(base) and not _is_gap(base[at]) and sibling(at):
        return at
    parent = -1
    for i in range(min(at, len(base)) - 1, -1, -1):
        if _is_gap(base[i]):
            continue
        if sibling(i):
            return i
        if _indent(base[i]) < width or (_indent(base[i]) == width and dash):
            parent = i
            break
    for i in range(at, len(base)):
        if _is_gap(base[i]):
            continue
        if sibling(i):
            return i
        if _indent(base[i]) < width:
            break
    return parent


def _like(line: str, base: str, original: str) -> str:
    """`line` (from ruamel's dump) shifted as `original` is from `base`, and with the
    inner spaces of flow collections `{ a: 1 }` if `original` has them."""
    if _is_gap(line):
        return line
    shift = _indent(original) - _indent(base)
    if shift > 0:
        line = " " * shift + line
    elif shift < 0 and _indent(line) >= -shift:
        line = line[-shift:]
    new, old, kept = (_DASH.match(text) for text in (line, base, original))
    if new is not None and old is not None and kept is not None and new[2] == old[2]:
        # a list item: `-   key` in the original where ruamel writes `- key`
        line = new[1] + kept[2] + line[new.end() :]
    for opening, closing in ("{}", "[]"):
        if f"{opening} " in original:
            line = _spaced(line, opening, closing)
    return line


_DASH = re.compile(r"( *)(- +)(?=\S)")
_ITEM = re.compile(r" *-(?: |\n|$)")  # a list item line, maybe an empty one


def _spaced(line: str, opening: str, closing: str) -> str:
    """`{a: 1}` -> `{ a: 1 }` outside quotes and comments."""
    if opening not in line:
        return line
    out = []
    quote = ""
    for index, ch in enumerate(line):
        after = line[index + 1 : index + 2]
        before = line[index - 1 : index] if index else ""
        if quote:
            if ch == quote and (quote == "'" or before != "\\"):
                quote = ""
            out.append(ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "#" and before in (" ", ""):
            out.append(line[index:])
            break
        elif ch == opening and after not in (" ", closing, "\n", ""):
            out.append(ch + " ")
        elif ch == closing and before not in (" ", opening, ""):
            out.append(" " + ch)
        else:
            out.append(ch)
    return "".join(out)


def _loads_to(text: str, expected: Any, file: str, *, scan: bool = True) -> bool:
    """Whether `text` loads to `expected` (`scan=False`: see `_shallow`)."""
    try:
        return bool(edit_data(text, file, scan=scan, located=False)[0] == expected)
    except SpecError:
        return False


_UNSCANNED_DEPTH = 1_000
"""Deepest nesting spliced text may have to be loaded without the pre-scan for hostile
nesting (ruamel's composer recurses once per level; on an 8 MiB stack it handled 20,000
levels and crashed at 100,000)."""


def _shallow(operations: list[dict[str, Any]]) -> bool:
    """Whether the text these operations were spliced into may be loaded without the
    pre-scan for hostile nesting (the conversion still refuses nesting beyond MAX_DEPTH,
    as the pre-scan does): it is at most _UNSCANNED_DEPTH levels deep.

    The original passed the pre-scan (at most MAX_DEPTH levels); a patch path exists in
    the document (its last token may be new), so a value written there adds at most one
    level plus its own depth, and a moved or copied value is at most as deep as the
    document it comes from."""
    bound = MAX_DEPTH
    for operation in operations:
        if operation.get("op") in ("move", "copy"):
            bound = 2 * bound + 1
        elif "value" in operation:
            bound += 1 + _depth(operation["value"], _UNSCANNED_DEPTH)
        if bound > _UNSCANNED_DEPTH:
            return False
    return True


def _depth(value: Any, limit: int) -> int:
    """Levels of lists and dicts in `value` (0 for a scalar), counted up to `limit`."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= limit:
                return limit + 1
            deepest = max(deepest, depth + 1)
            stack.extend(
                (item, depth + 1) for item in (value.values() if isinstance(value, dict) else value)
            )
    return deepest
