"""Read YAML safely and keep where every node came from.

The parse is ruamel.yaml round-trip mode (it keeps node positions). Everything that
can make a hostile file expensive is bounded here: file size, nesting depth, and the
size a document expands to through aliases.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.spec import paths
from flujo.spec.errors import Diagnostic, SpecError

if TYPE_CHECKING:
    from ruamel.yaml import YAML

MAX_BYTES = 10 * 1024 * 1024
"""Largest spec file accepted (10 MiB)."""
MAX_DEPTH = 100
"""Deepest nesting of YAML mappings and sequences accepted."""
MAX_NODES = 1_000_000
"""Most nodes a document may expand to, counting every use of an alias."""
MAX_INT_DIGITS = 4300
"""Longest integer accepted, in decimal digits (Python's own int/str conversion limit:
a larger number, even written in hexadecimal, could not be printed in a message)."""

# (key line, key col, value line, value col), all 1-based; equal pairs for list items.
Position = tuple[int, int, int, int]


def spec_sha256(data: bytes) -> str:
    """SHA-256 of the file's bytes with CRLF and lone CR line endings turned into LF."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()


def make_yaml() -> YAML:
    """A round-trip parser/emitter configured the way Flujo reads and writes specs."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


@dataclass
class SourceDocument:
    """A parsed YAML file: plain data plus the position of every node."""

    file: str
    text: str
    sha256: str
    data: Any
    positions: dict[str, Position] = field(default_factory=dict)
    legacy: bool = False
    """Whether the file is a flujo 0.x blueprint (`data` is then its conversion)."""
    lenient: bool = False
    """Whether the file reads as 0.x files do (a missing value is null or empty text, the
    context starts with 0.x's fields): 0.x files, and files `flujo migrate` wrote
    (`flujo.spec.legacy.lenient.LENIENT_COMMENT`)."""
    aliases: dict[str, str] = field(default_factory=dict)
    """yaml_path of each alias use -> yaml_path of the anchored node it repeats: a problem
    inside a repeated node is located at the text that holds it (once, however many
    times the alias is used)."""
    _lines: list[int] = field(default_factory=list, repr=False)
    _line_paths: list[str] = field(default_factory=list, repr=False)
    _text_lines: list[str] | None = field(default=None, repr=False)

    def locate(self, yaml_path: str) -> tuple[int, int]:
        """1-based (line, col) of the node at `yaml_path`.

        Mapping values point at their key; nodes without a recorded position (values
        reached through an alias or merge key) point at their nearest located ancestor.
        Raises KeyError when the path is not in the document.
        """
        segments = paths.split(yaml_path)
        node: Any = self.data
        for segment in segments:
            try:
                node = node[segment]
            except (KeyError, IndexError, TypeError):
                raise KeyError(yaml_path) from None
        segments = paths.split(self.source_path(yaml_path))
        while True:
            position = self.positions.get(paths.join(segments))
            if position is not None:
                return position[0], position[1]
            segments.pop()

    def source_path(self, yaml_path: str) -> str:
        """`yaml_path` with its part reached through an alias replaced by the path of the
        anchored node (the alias use itself keeps its own place)."""
        if not self.aliases or yaml_path in self.positions:
            return yaml_path
        segments = paths.split(yaml_path)
        for end in range(len(segments) - 1, 0, -1):
            original = self.aliases.get(paths.join(segments[:end]))
            if original is not None:
                rest = segments[end:]
                return self.source_path(paths.join([*paths.split(original), *rest]))
        return yaml_path

    def path_at(self, line: int) -> str:
        """yaml_path of the most specific node that starts on or before `line`."""
        if not self._lines:
            order = sorted(self.positions.items(), key=lambda item: (item[1][0], item[1][1]))
            self._lines = [pos[0] for _, pos in order]
            self._line_paths = [path for path, _ in order]
        index = bisect.bisect_right(self._lines, line) - 1
        return self._line_paths[index] if index >= 0 else ""

    def value_position(self, yaml_path: str, offset: int = 0) -> tuple[int, int]:
        """1-based (line, col) of character `offset` inside the scalar at `yaml_path`
        (exact for one-line plain, quoted and block scalars without escapes)."""
        position = self.positions.get(self.source_path(yaml_path))
        if position is None:
            return self.locate(yaml_path)
        line, col = position[2], position[3]
        if self._text_lines is None:  # split once: a spec may have thousands of diagnostics
            self._text_lines = self.text.splitlines()
        lines = self._text_lines
        text = lines[line - 1] if line <= len(lines) else ""
        indicator = text[col - 1 : col]
        if indicator in ("'", '"'):
            return line, col + 1 + offset
        if indicator in ("|", ">") and line < len(lines):
            following = lines[line]
            return line + 1, len(following) - len(following.lstrip(" ")) + 1 + offset
        return line, col + offset

    def diagnostic(self, yaml_path: str, message: str, code: str, **kw: Any) -> Diagnostic:
        """A diagnostic at the node `yaml_path` (or the closest existing ancestor)."""
        segments = paths.split(self.source_path(yaml_path))
        while segments and paths.join(segments) not in self.positions:
            segments.pop()
        line, col, *_ = self.positions.get(paths.join(segments), (1, 1, 1, 1))
        return Diagnostic(message, code, self.file, line, col, yaml_path, **kw)


def read_bytes(path: str | Path) -> bytes:
    """Read a spec file, refusing one larger than MAX_BYTES before reading it whole.

    OSError (missing, unreadable) propagates: it is a usage error, not a spec error.
    """
    path = Path(path)
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        size = path.stat().st_size
        raise SpecError.single(
            Diagnostic(
                f"file is {size / 1_048_576:.1f} MiB; specs are limited to "
                f"{MAX_BYTES // 1_048_576} MiB",
                "too-large",
                str(path),
            )
        )
    return data


def decode(data: bytes, file: str) -> str:
    """UTF-8 text with a leading BOM removed; an invalid byte is reported at its place."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError.single(
            Diagnostic(
                f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                "encoding",
                file,
                line,
                col,
            )
        ) from None
    return text.removeprefix("\ufeff")


def parse(data: bytes | str, file: str = "<string>") -> SourceDocument:
    """Parse one YAML document into plain data (dicts, lists, scalars) and positions.

    This uses ruamel.yaml's composer with its C extension (YAML 1.2 rules, node
    positions), many times faster than the round-trip loader; the round-trip tree is
    built only for edits (`parse_with_tree`).
    """
    return parse_with_node(data, file)[0]


def parse_with_node(data: bytes | str, file: str = "<string>") -> tuple[SourceDocument, Any]:
    """`parse`, also returning the composed root node (its marks give every node's span
    in the text, for edits made on the text)."""
    raw, text = _text_of(data, file)
    node = _compose(text, file)
    document = SourceDocument(file=file, text=text, sha256=spec_sha256(raw), data=None)
    document.data = _Converter(document).convert(node)
    return document, node


def edit_data(
    text: str, file: str = "<string>", *, scan: bool = True, located: bool = True
) -> tuple[Any, Any]:
    """The plain data of `text` and its composed root node, for edits (`flujo.spec.edit`):
    `parse_with_node` without the positions and the hash, which edits do not use.

    A problem is raised as `parse` raises it, at its place (with `located=False`, maybe
    without its place: for a caller that only asks whether the text loads). `scan=False`
    skips the pre-scan for hostile nesting: only for text the caller knows is not nested
    much deeper than MAX_DEPTH (ruamel's composer recurses once per level; a few hundred
    levels are safe); nesting beyond MAX_DEPTH is still refused, by the conversion."""
    try:
        node = _compose(text, file, scan=scan)
        document = SourceDocument(file=file, text=text, sha256="", data=None)
        return _Converter(document, positions=False).convert(node), node
    except SpecError:
        if located:
            parse_with_node(text, file)  # the same problem, at its place
        raise


def parse_with_tree(
    data: bytes | str, file: str = "<string>", yaml: YAML | None = None
) -> tuple[SourceDocument, Any]:
    """`parse`, also returning ruamel's round-trip tree (for edits that keep formatting)."""
    document = parse(data, file)
    return document, load_tree(document.text, file, yaml)


def _text_of(data: bytes | str, file: str) -> tuple[bytes, str]:
    if isinstance(data, str):
        return data.encode("utf-8"), data
    if len(data) > MAX_BYTES:
        message = f"spec is larger than {MAX_BYTES // 1_048_576} MiB"
        raise SpecError.single(Diagnostic(message, "too-large", file))
    return data, decode(data, file)


def _compose(text: str, file: str, *, scan: bool = True) -> Any:
    """ruamel's node graph of `text` (C parser when available); errors are located.
    `scan=False` skips the pre-scan for hostile nesting (see `edit_data`)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=False)
    yaml.Resolver = _resolver()
    return _guarded(lambda: yaml.compose(text), text, file, scan=scan)


_RESOLVER: list[Any] = []


def _resolver() -> Any:
    """ruamel's YAML 1.2 resolver, minus the look-up of the document's YAML version for
    every scalar: with the C parser that look-up always ends at the default (1.2), after
    two caught AttributeErrors, and was the larger part of the compose time.

    A plain scalar's tag is also found with the 1.2 rules looked up once per document
    (ruamel looks them up twice per scalar), and is one shared Tag per tag name (ruamel
    makes a new one per scalar, whose name is then decoded character by character)."""
    if not _RESOLVER:
        from ruamel.yaml.nodes import ScalarNode
        from ruamel.yaml.resolver import VersionedResolver
        from ruamel.yaml.tag import Tag

        tags: dict[str, Tag] = {}
        none: list[Any] = []

        class Resolver(VersionedResolver):
            _rules: Any = None

            @property
            def processing_version(self) -> Any:
                return (1, 2)

            def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
                # ruamel's VersionedResolver.resolve, for YAML 1.2 and no path resolvers
                if kind is not ScalarNode or not implicit[0] or self.yaml_path_resolvers:
                    return super().resolve(kind, value, implicit)
                rules = self._rules
                if rules is None:
                    rules = self._rules = self.versioned_resolver
                for name, regexp in rules.get(value[0] if value else "", none) + rules.get(
                    None, none
                ):
                    if regexp.match(value):
                        tag = tags.get(name)
                        if tag is None:
                            tag = tags[name] = Tag(suffix=name)
                        return tag
                return self.DEFAULT_SCALAR_TAG

        _RESOLVER.append(Resolver)
    return _RESOLVER[0]


def load_tree(text: str, file: str, yaml: YAML | None = None) -> Any:
    """ruamel round-trip tree of `text`; YAML problems become one located Diagnostic."""
    return _guarded((yaml or make_yaml()).load, text, file, with_text=True)


def _guarded(load: Any, text: str, file: str, with_text: bool = False, *, scan: bool = True) -> Any:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        too_deep = _nesting_beyond(text, MAX_DEPTH) if scan else None
        if too_deep is not None:
            line, col = too_deep
            message = f"nesting deeper than {MAX_DEPTH} levels"
            raise SpecError.single(Diagnostic(message, "too-deep", file, line, col))
        tree = load(text) if with_text else load()
    except MarkedYAMLError as exc:
        raise SpecError.single(_yaml_diagnostic(exc, text, file)) from None
    except RecursionError:
        # Block nesting beyond Python's recursion limit: point at the deepest line.
        lines = text.splitlines() or [""]
        deepest = max(range(len(lines)), key=lambda i: len(lines[i]) - len(lines[i].lstrip()))
        col = len(lines[deepest]) - len(lines[deepest].lstrip()) + 1
        message = f"nesting deeper than {MAX_DEPTH} levels"
        raise SpecError.single(Diagnostic(message, "too-deep", file, deepest + 1, col)) from None
    except YAMLError as exc:
        raise SpecError.single(Diagnostic(f"invalid YAML: {exc}", "yaml-syntax", file)) from None
    if tree is None:
        raise SpecError.single(Diagnostic("spec is empty", "empty", file))
    return tree


def _nesting_beyond(text: str, limit: int) -> tuple[int, int] | None:
    """(line, col) of the first collection nested deeper than `limit`, else None.

    ruamel's composer (C or Python) recurses once per level, so a hostile `- - - …`,
    `? ? ? …` or `[[[…` thousands deep overflows the C stack before any Python check
    runs. The parser's event stream is produced iteratively (a state stack, no
    recursion), so depth is counted there, from every SequenceStart/MappingStart event,
    block or flow alike, with quoting and comments handled by the real YAML parser;
    parsing stops at the first event beyond the limit. A syntax error found on the way
    is raised as ruamel raises it (the caller locates it).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = 0
    for event in YAML(typ="safe", pure=False).parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > limit:
                mark = event.start_mark
                return mark.line + 1, mark.column + 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return None


def _yaml_diagnostic(exc: Any, text: str, file: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    lines = text.split("\n")
    at = lines[line - 1][col - 1 : col] if line <= len(lines) else ""
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    code = "yaml-syntax"
    name = type(exc).__name__
    if name == "DuplicateKeyError":
        code = "duplicate-key"
        key = exc.problem.split('"')[1] if exc.problem and '"' in exc.problem else ""
        first = exc.context_mark
        problem = f"duplicate key '{key}'" if key else "duplicate key"
        if first is not None:
            problem += f" (first defined at line {first.line + 1})"
    elif at == "\t" or "'\\t'" in problem or "tab" in problem.lower():
        code = "tab"
        problem = "tab character found; YAML indentation must use spaces"
    elif name == "ComposerError" and "single document" in f"{exc.problem} {exc.context}":
        code = "multiple-documents"
        problem = "expected one YAML document, found more than one"
    elif exc.context and exc.problem:
        problem = f"{exc.context.strip()}: {exc.problem.strip()}"
    if code == "yaml-syntax":
        problem += _indentation_hint(exc, lines, line)
    return Diagnostic(problem, code, file, line, col)


_INDENTATION_PROBLEMS = (
    "did not find expected key",
    "did not find expected '-' indicator",
    "expected <block end>",
    "mapping values are not allowed",
)


def _indentation_hint(exc: Any, lines: list[str], line: int) -> str:
    """Which line to compare a misindented line with: the line before it and the line
    where the block it breaks starts (both with their indentation), or, for a line
    indented under a `key: value` line, that it reads as the rest of that value."""
    if not any(p in f"{exc.problem}" for p in _INDENTATION_PROBLEMS) or line > len(lines):
        return ""

    def indent(number: int) -> int:
        text = lines[number - 1]
        return len(text) - len(text.lstrip(" "))

    def shown(number: int) -> str:
        text = lines[number - 1].strip()
        return f"`{text[:40]}{'…' if len(text) > 40 else ''}`"

    def spaces(number: int) -> str:
        n = indent(number)
        return f"{n} space{'s' * (n != 1)}"

    previous = next(
        (n for n in range(line - 1, 0, -1) if lines[n - 1].strip()[:1] not in ("", "#")), None
    )
    if previous is None:
        return ""
    if "mapping values" in f"{exc.problem}":
        if indent(line) > indent(previous) and ": " in lines[previous - 1]:
            return (
                f"; line {line} is indented more than line {previous} {shown(previous)} "
                f"({spaces(line)}, not {indent(previous)}), so it reads as the rest of that "
                f"line's value: indent it like line {previous}"
            )
        return ""
    mark = exc.context_mark
    start, column = (mark.line + 1, mark.column) if mark is not None else (None, 0)
    if (
        start is not None
        and lines[line - 1].lstrip().startswith("- ")
        and indent(line) == column
        and lines[start - 1].lstrip().startswith("- ")
        and indent(start) < column
    ):  # a new list item written at the indentation of the previous item's keys
        return (
            f"; line {line} starts a list item at the indentation of the keys of the item "
            f"of line {start} {shown(start)}: put its `-` where line {start} has it "
            f"({spaces(start)})"
        )
    compare = [f"line {previous} {shown(previous)} ({spaces(previous)})"]
    if start is not None and start not in (previous, line):
        block = f"{column} space{'s' * (column != 1)}"
        compare.append(f"the block that starts on line {start} {shown(start)} (at {block})")
    return f"; line {line} is indented {spaces(line)}: compare it with " + " and with ".join(
        compare
    )


_CORE_TAGS = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _CORE_TAGS + t for t in ("str", "int", "float", "bool", "null", "timestamp", "merge")
)


_MERGE = _CORE_TAGS + "merge"


class _Converter:
    """Turns ruamel's composed nodes into plain data and records positions."""

    def __init__(self, document: SourceDocument, *, positions: bool = True) -> None:
        from ruamel.yaml import YAML

        self.document = document
        self.positions = document.positions
        self.record = positions
        self.nodes = 0
        # id(node) -> (plain, expanded size, yaml_path where it was converted)
        self.done: dict[int, tuple[Any, int, str]] = {}
        self.active: set[int] = set()
        self.constructor = YAML(typ="safe", pure=False).constructor
        # id(node.ctag) -> node.tag: most nodes share a few Tag objects, and ruamel works
        # out a Tag's name through three calls (the nodes keep their Tags alive)
        self.tag_names: dict[int, str | None] = {}

    def convert(self, node: Any) -> Any:
        self.positions[""] = (1, 1, 1, 1)
        return self._node(node, "", 0)

    def _fail(self, path: str, message: str, code: str) -> SpecError:
        return SpecError.single(self.document.diagnostic(path, message, code))

    def _node(self, node: Any, path: str, depth: int, merged: bool = False) -> Any:
        kind = node.id
        if kind == "scalar":
            self._count(1, path)
            return self._scalar(node, path)
        key = id(node)
        if key in self.active:
            raise self._fail(path, "an alias refers to a node that contains it", "alias-cycle")
        if key in self.done:  # an alias: reuse the copy, but count its expanded size
            copy, size, original = self.done[key]
            self._count(size, path)
            if path != original and not merged:  # keys merged with `<<` keep their own places
                self.document.aliases.setdefault(path, original)
            return copy
        if depth >= MAX_DEPTH:
            raise self._fail(path, f"nesting deeper than {MAX_DEPTH} levels", "too-deep")
        tag = self.tag_names.get(id(node.ctag)) or self._tag(node)
        if tag not in (_CORE_TAGS + "map", _CORE_TAGS + "seq"):
            raise self._fail(path, "YAML tags (`!name`) are not allowed in specs", "yaml-tag")
        self.active.add(key)
        start = self.nodes
        self._count(1, path)
        if kind == "mapping":
            plain: Any = self._mapping(node, path, depth)
        elif self.record:
            plain = [
                self._item(item, f"{path}[{index}]", depth) for index, item in enumerate(node.value)
            ]
        else:
            plain = [
                self._node(item, f"{path}[{index}]", depth + 1)
                for index, item in enumerate(node.value)
            ]
        self.active.discard(key)
        self.done[key] = (plain, self.nodes - start, path)
        return plain

    def _tag(self, node: Any) -> str | None:
        """`node.tag`, remembered for its Tag object (see `tag_names`)."""
        name = self.tag_names[id(node.ctag)] = node.tag
        return name  # type: ignore[no-any-return]

    def _item(self, node: Any, path: str, depth: int) -> Any:
        mark = node.start_mark
        self.positions[path] = (mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 1)
        return self._node(node, path, depth + 1)

    def _scalar(self, node: Any, path: str) -> Any:
        tag = self.tag_names.get(id(node.ctag)) or self._tag(node)
        if tag not in _SCALAR_TAGS:
            raise self._fail(path, "YAML tags (`!name`) are not allowed in specs", "yaml-tag")
        name = tag[len(_CORE_TAGS) :]
        if name in ("str", "timestamp", "merge"):
            return node.value
        if name == "null":
            return None
        if name == "bool":
            return node.value.lower() == "true"
        if name == "int":
            try:
                value = self.constructor.construct_yaml_int(node)
            except ValueError:  # more digits than int() converts
                value = None
            # 3.33 bits per decimal digit: anything this wide has more than the limit.
            if not isinstance(value, int) or value.bit_length() > MAX_INT_DIGITS * 3.32:
                message = f"integer is too large (more than {MAX_INT_DIGITS} digits)"
                raise self._fail_at(node, path, message, "number-too-large")
            return value
        try:
            return self.constructor.construct_yaml_float(node)
        except (ValueError, OverflowError):
            raise self._fail_at(node, path, "invalid number", "schema") from None

    def _fail_at(self, node: Any, path: str, message: str, code: str) -> SpecError:
        mark = node.start_mark
        file = self.document.file
        return SpecError.single(
            Diagnostic(message, code, file, mark.line + 1, mark.column + 1, path)
        )

    def _mapping(self, node: Any, path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[Any] = []
        for key_node, value_node in node.value:
            if (self.tag_names.get(id(key_node.ctag)) or self._tag(key_node)) == _MERGE:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            child = paths.child(path, key)
            if key in out:
                message = f"duplicate key '{key}' (first defined at line {first_line[key]})"
                kline, kcol = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                raise SpecError.single(
                    Diagnostic(message, "duplicate-key", self.document.file, kline, kcol, child)
                )
            k = key_node.start_mark
            if self.record:
                v = value_node.start_mark
                self.positions[child] = (k.line + 1, k.column + 1, v.line + 1, v.column + 1)
            first_line[key] = k.line + 1
            out[key] = self._node(value_node, child, depth + 1)
        for merge in merges:  # `<<: *defaults`: merged keys never override explicit ones
            sources = merge.value if merge.id == "sequence" else [merge]
            for source in sources:
                merged = self._node(source, path, depth + 1, merged=True)
                if not isinstance(merged, dict):
                    raise self._fail(path, "`<<` must merge a mapping", "schema")
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out

    def _key(self, node: Any, path: str) -> str:
        if node.id != "scalar":
            raise self._fail(path, "mapping keys must be plain scalars", "complex-key")
        value = self._scalar(node, path)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def _count(self, size: int, path: str) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise self._fail(
                path,
                f"document expands to more than {MAX_NODES:,} nodes (aliases used as a bomb?)",
                "too-many-nodes",
            )
