"""Rewrite a flujo 0.x blueprint in the current format, keeping what did not change.

The target is the conversion `flujo.spec.legacy.blueprint` makes when it loads the file, so the
migrated file loads to the same model. The rewrite is done on ruamel's round-trip tree:
each key of the result is taken from the node it came from (renamed in place, keeping
its comments and position); values that stay the same keep their text; then the same
three-way line merge as patches (`flujo.spec.edit.rewrite_text`) leaves every untouched
line byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flujo.spec import paths
from flujo.spec.errors import Diagnostic, SpecError
from flujo.spec.legacy.blueprint import Conversion


@dataclass(frozen=True)
class Migration:
    """One file, before and after."""

    file: str
    original: str
    text: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    """What the conversion warned about (keys dropped, names changed)."""

    @property
    def changed(self) -> bool:
        return self.text != self.original

    def diff(self) -> str:
        """A unified diff from the original to the migrated text."""
        import difflib

        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.text.splitlines(keepends=True),
                f"a/{self.file}",
                f"b/{self.file}",
            )
        )


def migrate(path: Path) -> Migration:
    """The migration of the spec file at `path` (unchanged when it is not 0.x).

    Raises SpecError when the file has errors (a file is migrated only when it loads),
    OSError when it cannot be read.
    """
    from flujo.spec.display import display_name
    from flujo.spec.load import check, legacy_conversion
    from flujo.spec.source import decode, parse, read_bytes

    file = display_name(path)
    raw = read_bytes(path)
    text = decode(raw, file)
    _, diagnostics = check(path)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise SpecError(errors)
    conversion = legacy_conversion(parse(raw, file), path)
    if conversion is None:
        return Migration(file, text, text)
    return Migration(file, text, migrate_text(text, conversion, file), diagnostics)


def migrate_text(text: str, conversion: Conversion, file: str = "<string>") -> str:
    """`text` (a 0.x blueprint) rewritten as `conversion` says."""
    from flujo.spec.edit import rewrite_text

    expected = conversion.document.data

    def change(tree: Any) -> None:
        _Morph(conversion.origin).mapping(tree, expected, "", "")

    return _version_below_header(rewrite_text(text, change, expected, file=file).text)


def _version_below_header(text: str) -> str:
    """A `version:` line added on top goes below the file's leading comment block."""
    lines = text.split("\n")
    if not lines[0].startswith("version:"):
        return text
    end = 1
    while end < len(lines) and lines[end].startswith("#"):
        end += 1
    return "\n".join([*lines[1:end], lines[0], *lines[end:]])


class _Morph:
    """Turns round-trip nodes into the converted data, reusing nodes where it can."""

    def __init__(self, origin: dict[str, str]) -> None:
        self.origin = origin

    def value(self, node: Any, target: Any, source: str, path: str) -> Any:
        if isinstance(target, dict):
            return self.mapping(node, target, source, path)
        if isinstance(target, list):
            return self.sequence(node, target, source, path)
        if _plain(node) == target and type(_plain(node)) is type(target):
            return node
        if path == "version":
            from ruamel.yaml.scalarstring import DoubleQuotedScalarString

            return DoubleQuotedScalarString(target)
        return _styled(target)

    def mapping(self, node: Any, target: dict[str, Any], source: str, path: str) -> Any:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        wraps_itself = any(
            self.origin.get(paths.child(path, key)) == source for key in target
        )  # a single step written where a pipeline goes: it becomes `steps: [it]`
        if not isinstance(node, CommentedMap) or wraps_itself:
            built = CommentedMap()
            for key, item in target.items():
                value = self._child(node, item, source, paths.child(path, key))[0]
                if wraps_itself and isinstance(value, CommentedSeq):
                    value.fa.set_block_style()  # `[a, b]` becomes `steps:` with items below
                built[key] = value
            return built
        order = list(node.keys())
        entries: list[tuple[float, int, str, Any, Any]] = []
        anchor = -1.0
        for rank, (key, item) in enumerate(target.items()):
            value, head = self._child(node, item, source, paths.child(path, key))
            if head is not None:
                anchor = float(order.index(head))
            elif key != "version":
                anchor += 0.001
            entries.append((anchor if key != "version" else -1.0, rank, key, value, head))
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        comments = dict(node.ca.items)
        heads = {entry[4] for entry in entries}
        node.clear()
        node.ca.items.clear()
        used: set[Any] = set()
        for _, _, name, value, head in entries:
            # an unquoted `true:` / `false:` key stays as written
            written: Any = head if isinstance(head, bool) and str(head).lower() == name else name
            node[written] = value
            if head is not None and head in comments and head not in used:
                node.ca.items[written] = comments[head]
                used.add(head)
        # A dropped key's trailing comment or blank lines stay where they were.
        for dropped in (k for k in order if k not in heads and k in comments):
            _carry_comment(node, comments[dropped])
        return node

    def sequence(self, node: Any, target: list[Any], source: str, path: str) -> Any:
        from ruamel.yaml.comments import CommentedSeq

        values = [
            self._child(node, item, source, f"{path}[{i}]")[0] for i, item in enumerate(target)
        ]
        if isinstance(node, CommentedSeq):
            if len(values) == len(node):  # item by item: comments stay with their items
                for i, value in enumerate(values):
                    node[i] = value
            else:
                node[:] = values
            return node
        return CommentedSeq(values)

    def _child(self, node: Any, target: Any, source: str, path: str) -> tuple[Any, Any]:
        """The morphed value for converted `path`, and the key of `node` it comes from."""
        origin = self.origin.get(path)
        if origin is None or not _within(origin, source):
            return self.value(None, target, source, path), None
        rest = paths.split(origin)[len(paths.split(source)) :]
        found = node
        for segment in rest:
            found = _get(found, segment)
            if found is _MISSING:
                return _styled(target), None
        head = _key_of(node, rest[0]) if rest else None
        return self.value(found, target, origin, path), head


_MISSING = object()


def _carry_comment(node: Any, comment: Any) -> None:
    """Give the comment after a removed key to the last scalar now in `node`."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(comment, list) or len(comment) < 3 or comment[2] is None:
        return
    while True:
        if isinstance(node, CommentedMap) and node:
            last: Any = list(node.keys())[-1]
        elif isinstance(node, CommentedSeq) and node:
            last = len(node) - 1
        else:
            return
        value = node[last]
        if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
            node = value
            continue
        if last not in node.ca.items:
            node.ca.items[last] = [None, None, comment[2], None]
        return


def _within(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith((prefix + ".", prefix + "["))


def _key_of(node: Any, segment: paths.Segment) -> Any:
    if isinstance(node, dict) and segment not in node and segment in ("true", "false"):
        return segment == "true"
    return segment


def _get(node: Any, segment: paths.Segment) -> Any:
    key = _key_of(node, segment)
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _MISSING


def _plain(node: Any) -> Any:
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _styled(value: Any) -> Any:
    from flujo.spec.dump import styled

    return styled(value)
