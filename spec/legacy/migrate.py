"""Rewrite a flujo 0.x blueprint in the current format, keeping what did not change.

The target is the conversion `flujo.spec.legacy.blueprint` makes when it loads the file, so the
migrated file loads to the same model. The rewrite is a list of edit operations applied by
the one edit path of patches (`flujo.spec.edit.patch_text`, text splicing): each key of
the result is the key it came from renamed in place (comments and position kept), a value
moved from deeper in the same step (with its own text), or new; values that stay the same
keep their text; keys nothing comes from are removed with their lines. Every untouched
line stays byte-identical.

The migrated file keeps 0.x's reading of missing values (null in expressions, empty text
in templates) and 0.x's context fields, under a `LENIENT_COMMENT` line on top
(`flujo.spec.legacy.lenient`): a 0.x file may rely on them wherever a value can be
missing, so only a person can drop them (by deleting that line).

A step the current format cannot say (a `tree_search`, a custom kind, a fallback or cached
step that is not a plain step, a tool registry given as an import path) is kept as the 0.x
file wrote it, under a `# flujo migrate: kept in its 0.x form: WHY` comment; the rest of
the file is converted. Such a step still does not run here (loading names it, as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.spec import paths
from flujo.spec.errors import Diagnostic, SpecError
from flujo.spec.legacy.blueprint import KEPT_CODES, KEPT_COMMENT, Conversion
from flujo.spec.legacy.lenient import LENIENT_COMMENT

if TYPE_CHECKING:
    from flujo.spec.source import SourceDocument


@dataclass(frozen=True)
class Migration:
    """One file, before and after."""

    file: str
    original: str
    text: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    """What the conversion warned about (keys dropped, names changed), and the errors of
    the steps kept in their 0.x form."""
    kept: list[Diagnostic] = field(default_factory=list)
    """Why steps were kept in their 0.x form (errors at each; empty when all converted)."""

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

    Raises SpecError when the file has errors other than steps the current format cannot
    say (those are kept in their 0.x form, see `Migration.kept`), OSError when it cannot
    be read.
    """
    from flujo.spec.display import display_name
    from flujo.spec.load import check, legacy_conversion
    from flujo.spec.source import decode, parse, read_bytes

    file = display_name(path)
    raw = read_bytes(path)
    text = decode(raw, file)
    _, diagnostics = check(path)
    errors = [d for d in diagnostics if d.severity == "error"]
    document = parse(raw, file)
    conversion = legacy_conversion(document, path, keep_unsupported=True)
    if conversion is None:  # current format: steps an earlier migration kept are known
        marked = _marked_steps(document)
        kept = [d for d in errors if any(_within(d.yaml_path, step) for step in marked)]
        if len(kept) < len(errors):
            raise SpecError(errors)
        kept = [d for d in kept if d is _first_in(kept, d, marked)]
        return Migration(file, text, text, diagnostics, kept)
    kept = [d for d in errors if d.code in KEPT_CODES]
    if len(kept) < len(errors):
        raise SpecError(errors)
    migrated = _comment_kept(migrate_text(text, conversion, file), conversion, file)
    migrated = _below_header(migrated, LENIENT_COMMENT)
    return Migration(file, text, migrated, diagnostics, kept)


def _marked_steps(document: SourceDocument) -> list[str]:
    """yaml_paths of the steps under a `# flujo migrate: kept` comment."""
    marked = []
    lines = document.text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.lstrip().startswith(KEPT_COMMENT):
            continue
        following = number + 1
        while following <= len(lines) and lines[following - 1].lstrip().startswith("#"):
            following += 1
        path = document.path_at(following)
        segments = paths.split(path)
        while segments and not isinstance(segments[-1], int):
            segments.pop()
        if segments:
            marked.append(paths.join(segments))
    return marked


def _first_in(found: list[Diagnostic], diagnostic: Diagnostic, steps: list[str]) -> Diagnostic:
    """The first of `found` in the kept step `diagnostic` is in (one per step)."""
    step = next(s for s in steps if _within(diagnostic.yaml_path, s))
    return next(d for d in found if _within(d.yaml_path, step))


def _comment_kept(text: str, conversion: Conversion, file: str) -> str:
    """The migrated `text` with a `# flujo migrate: kept …` line above each step kept in
    its 0.x form."""
    from flujo.spec.source import parse

    if not conversion.kept:
        return text
    positions = parse(text, file).positions
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    above: dict[int, str] = {}
    for target, source in conversion.origin.items():
        why = conversion.kept.get(source)
        position = positions.get(target)
        if why is not None and target in conversion.step_paths and position is not None:
            above[position[0] - 1] = why
    for index in sorted(above, reverse=True):
        line = lines[index]
        indent = line[: len(line) - len(line.lstrip(" "))]
        lines.insert(index, f"{indent}{KEPT_COMMENT}{above[index]}")
    return newline.join(lines)


def migrate_text(text: str, conversion: Conversion, file: str = "<string>") -> str:
    """`text` (a 0.x blueprint) rewritten as `conversion` says, through the same text
    splicing as `flujo patch` (`flujo.spec.edit.patch_text`): keys renamed in place,
    values moved with their own text, dropped keys removed with their lines."""
    from flujo.spec.edit import PatchError, patch_text
    from flujo.spec.source import parse

    expected = conversion.document.data
    source = parse(text, file).data
    builder = _Operations(conversion.origin)
    body = {key: value for key, value in expected.items() if key != "version"}
    rest = {key: value for key, value in source.items() if key != "version"}
    builder.mapping(rest, body, "", "", "")
    operations = builder.operations
    if "version" not in source:
        version_line = f'version: "{expected["version"]}"'
    else:
        version_line = ""
        operations.append({"op": "replace", "path": "/version", "value": expected["version"]})
    result = patch_text(text, operations, file=file, renames=True).text
    if version_line:
        result = _below_header(result, version_line)
    if parse(result, file).data != expected:  # pragma: no cover - patch_text checked the rest
        raise PatchError("the migrated file does not load to the converted blueprint")
    return result


def _below_header(text: str, line: str) -> str:
    """`line` goes on top, below the file's leading comment block."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    end = 0
    while end < len(lines) and lines[end].startswith("#"):
        end += 1
    return newline.join([*lines[:end], line, *lines[end:]])


_WRAP = "__flujo_migrate"
"""Temporary key a bare step list or single step is wrapped under (then renamed)."""


class _Operations:
    """The operations that turn the 0.x data into the converted data, node by node: a
    target key is the source key renamed, a value moved from deeper in the same step, or
    new; source keys nothing comes from are removed."""

    def __init__(self, origin: dict[str, str]) -> None:
        self.origin = origin
        self.operations: list[dict[str, Any]] = []

    def op(self, **operation: Any) -> None:
        self.operations.append(operation)

    def value(self, node: Any, target: Any, source: str, path: str, pointer: str) -> None:
        """Turn `node` (the source value now at `pointer`, from `source`) into `target`
        (at converted `path`)."""
        if isinstance(target, dict) and isinstance(node, dict | list):
            steps_origin = self.origin.get(paths.child(path, "steps"))
            if set(target) == {"steps"} and steps_origin == source and source != "":
                self.wrap(node, target, source, path, pointer)
                return
            if isinstance(node, dict):
                self.mapping(node, target, source, path, pointer)
                return
        listed = isinstance(target, list) and isinstance(node, list)
        if listed and self.sequence(node, target, source, path, pointer):
            return
        if not _same(node, target):
            self.op(op="replace", path=pointer, value=target)

    def wrap(self, node: Any, target: dict[str, Any], source: str, path: str, pointer: str) -> None:
        """A bare list of steps, or one step, where a pipeline goes: `{steps: [...]}`."""
        parent, _, key = pointer.rpartition("/")
        temporary = f"{parent}/{_WRAP}"
        if isinstance(node, list):
            # (a placeholder value: the list's own text replaces it, in block style)
            self.op(op="add", path=temporary, value={"steps": None})
            self.op(op="move", path=f"{temporary}/steps", **{"from": pointer})
            self.op(op="rename", path=temporary, to=_unescape(key))
            steps_path = paths.child(path, "steps")
            self.value(node, target["steps"], source, steps_path, pointer + "/steps")
            return
        self.op(op="add", path=temporary, value={"steps": [None]})
        self.op(op="move", path=f"{temporary}/steps/0", **{"from": pointer})
        self.op(op="remove", path=f"{temporary}/steps/1")
        self.op(op="rename", path=temporary, to=_unescape(key))
        step_path = f"{paths.child(path, 'steps')}[0]"
        self.value(node, target["steps"][0], source, step_path, pointer + "/steps/0")

    def mapping(
        self, node: dict[str, Any], target: dict[str, Any], source: str, path: str, pointer: str
    ) -> None:
        depth = len(paths.split(source))
        kept: dict[str, str] = {}  # target key -> source key renamed (or kept) in place
        moved: dict[str, list[paths.Segment]] = {}  # target key -> source path below node
        added: list[str] = []
        for key in target:
            origin = self.origin.get(paths.child(path, key))
            segments = paths.split(origin) if origin is not None else []
            inside = origin is not None and _within(origin, source) and len(segments) > depth
            head = _key_of(node, segments[depth]) if inside else None
            if inside and isinstance(head, str) and head in node and len(segments) == depth + 1:
                if head in kept.values():  # one source value for two keys: copy it
                    added.append(key)
                else:
                    kept[key] = head
            elif inside and isinstance(head, str) and head in node:
                moved[key] = [head, *segments[depth + 1 :]]
            else:
                added.append(key)
        carriers = {segments[0] for segments in moved.values()}
        for key in node:
            if key not in kept.values() and key not in carriers:
                self.op(op="remove", path=_pointer(pointer, key))
        for new, old in kept.items():
            if new != old:
                if new in node and new not in kept.values():
                    raise _cannot(f"'{old}' renamed to '{new}', which the file also has")
                self.op(op="rename", path=_pointer(pointer, old), to=new)
        for new, segments in moved.items():
            if new in node and new not in carriers:
                raise _cannot(f"a value moved to '{new}', which the file also has")
            start = "".join(f"/{_escape(str(s))}" for s in segments)
            self.op(op="move", path=_pointer(pointer, new), **{"from": pointer + start})
        for carrier in carriers:
            if carrier not in target:
                self.op(op="remove", path=_pointer(pointer, str(carrier)))
        for key in added:
            self.op(op="add", path=_pointer(pointer, key), value=target[key])
        for new, old in kept.items():
            child, at = paths.child(source, old), paths.child(path, new)
            self.value(node[old], target[new], child, at, _pointer(pointer, new))
        for new, segments in moved.items():
            found: Any = node
            for segment in segments:
                found = _get(found, segment)
            origin = self.origin[paths.child(path, new)]
            self.value(found, target[new], origin, paths.child(path, new), _pointer(pointer, new))

    def sequence(
        self, node: list[Any], target: list[Any], source: str, path: str, pointer: str
    ) -> bool:
        """Item by item when each target item comes from a source item, in order (the
        others removed); False when the list must be written anew."""
        indices: list[int] = []
        for i in range(len(target)):
            origin = self.origin.get(f"{path}[{i}]")
            prefix = source + "["
            if origin is None or not origin.startswith(prefix) or not origin.endswith("]"):
                return False
            inner = origin[len(prefix) : -1]
            if not inner.isdigit():
                return False
            indices.append(int(inner))
        if indices != sorted(set(indices)) or (indices and indices[-1] >= len(node)):
            return False
        for j in reversed(range(len(node))):
            if j not in indices:
                self.op(op="remove", path=f"{pointer}/{j}")
        for i, j in enumerate(indices):
            self.value(node[j], target[i], f"{source}[{j}]", f"{path}[{i}]", f"{pointer}/{i}")
        return True


def _cannot(why: str) -> Exception:
    from flujo.spec.edit import PatchError

    return PatchError(f"cannot migrate in place: {why}")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(base: str, key: str) -> str:
    return f"{base}/{_escape(key)}"


def _same(node: Any, target: Any) -> bool:
    return bool(node == target) and type(node) is type(target)


def _within(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith((prefix + ".", prefix + "["))


def _key_of(node: Any, segment: paths.Segment) -> Any:
    if isinstance(node, dict) and segment not in node and segment in ("true", "false"):
        return segment == "true"
    return segment


_MISSING = object()


def _get(node: Any, segment: paths.Segment) -> Any:
    key = _key_of(node, segment)
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _MISSING
