"""RFC 6902 operations (and `rename`, a mapping key renamed in place) applied to YAML
text by splicing it at the spans of the nodes they touch; every other byte stays as it is.

The composer gives every node its start and end in the text. A `replace` rewrites the
value's own span, in the value's style where the new value allows it; `add` and
`remove` insert or delete exactly the lines of a mapping entry or sequence item (with
its comments), indented like its siblings; inside flow collections only the item and
its separator change. `move` and `copy` carry the source's own text (comments and all),
re-indented. One compose serves the whole patch: the spans of untouched nodes are
shifted through the edits made so far, and the text is composed again only when an
operation reaches into text an earlier operation wrote.

What text splicing cannot express (a change through an alias, an anchor or a merge key,
tags, complex keys) raises `Unsupported`; the caller then uses ruamel's round-trip
tree. The caller also checks that the result loads to what RFC 6902 gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flujo.spec.source import _compose


class Unsupported(Exception):
    """The operation needs more than text splicing."""


@dataclass(frozen=True)
class Fragment:
    text: str
    base: int
    block: bool


class _Stale(Exception):
    """A node's span lies in text an earlier operation wrote: compose again."""


_T = TypeVar("_T")
_FRESH: Any = object()
"""Stands in the node tree for a value an operation wrote (no spans known)."""

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_YAML_STATE: dict[str, Any] = {}


def _yaml() -> Any:
    if "yaml" not in _YAML_STATE:
        from ruamel.yaml import YAML

        _YAML_STATE["yaml"] = YAML(typ="safe", pure=False)
    return _YAML_STATE["yaml"]


class Splicer:
    """Applies operations one by one to `text` (LF line ends) whose composed root is
    `node`; `text` is the result so far."""

    def __init__(self, text: str, node: Any, file: str = "<string>") -> None:
        self._splicer = _Splicer(text, node, file)

    @property
    def text(self) -> str:
        return self._splicer.text

    def apply(self, operation: dict[str, Any], value: Any = None) -> None:
        """Apply `operation` (valid on the data: checked with jsonpatch); `value` is the
        value a `move` or `copy` carries."""
        self._splicer.apply(operation, value)


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise Unsupported(f"not a JSON pointer: {pointer!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]


# -- scalars ------------------------------------------------------------------------------


def _printable(ch: str) -> bool:
    o = ord(ch)
    return (
        0x20 <= o <= 0x7E
        or 0xA0 <= o <= 0xD7FF
        or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)
        or 0x10000 <= o <= 0x10FFFF
    )


def _double(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _printable(ch):
            out.append(ch)
        else:
            o = ord(ch)
            out.append(
                f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"
            )
    out.append('"')
    return "".join(out)


def _single_ok(value: str) -> bool:
    return bool(value) and all(_printable(ch) for ch in value) and value == value.strip(" ")


def _single(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_PLAIN_CACHE: dict[tuple[str, bool], bool] = {}


def _plain_ok(value: str, flow: bool) -> bool:
    """Whether `value` written plain reads back as this very string."""
    if not value or value != value.strip() or value[0] in "-?:,[]{}#&*!|>'\"%@`":
        return False
    if not all(_printable(ch) for ch in value):
        return False
    if ": " in value or " #" in value or value.endswith(":"):
        return False
    if flow and any(ch in value for ch in ",[]{}:#"):
        return False
    key = (value, flow)
    if key not in _PLAIN_CACHE:
        try:
            node = _yaml().compose(f"[{value}]" if flow else value)
        except Exception:
            ok = False
        else:
            if flow:
                node = node.value[0] if node.id == "sequence" and len(node.value) == 1 else None
            ok = (
                node is not None
                and node.id == "scalar"
                and node.tag == _STR
                and not node.style
                and node.value == value
            )
        if len(_PLAIN_CACHE) > 10_000:
            _PLAIN_CACHE.clear()
        _PLAIN_CACHE[key] = ok
    return _PLAIN_CACHE[key]


def _literal_ok(value: str) -> bool:
    body = value.rstrip("\n")
    if not body or body[0] in " \t\n":
        return False
    return (
        all(_printable(ch) or ch in "\n\t" for ch in body) and "\t" not in body.split("\n")[0][:1]
    )


def _folded_ok(value: str) -> bool:
    if not _literal_ok(value):
        return False
    return all(line[:1] not in (" ", "\t") for line in value.rstrip("\n").split("\n"))


def _non_string(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        return text if any(ch in text for ch in ".en") else text + ".0"
    if isinstance(value, int):
        return str(value)
    raise Unsupported(f"not JSON data: {type(value).__name__}")


# -- the splicer --------------------------------------------------------------------------


class _Splicer:
    def __init__(self, text: str, node: Any, file: str) -> None:
        self.text = text
        self.root = node
        self.file = file
        self.edits: list[tuple[int, int, int]] = []
        self._guess: tuple[int, int, int] | None = None

    # positions ------------------------------------------------------------------------

    def start(self, node: Any) -> int:
        if node is _FRESH:
            raise _Stale
        i: int = node.start_mark.index
        for a, b, delta in self.edits:
            if i >= b and (b > a or i >= a):
                i += delta
            elif a < i < b:
                raise _Stale
        return i

    def end(self, node: Any) -> int:
        """Index just after the node's own text (a block scalar: after its last
        content line, or its kept trailing newlines; a block collection: after its last
        value)."""
        if node is _FRESH:
            raise _Stale
        if node.id == "scalar" or node.flow_style:
            i: int = node.end_mark.index
            for a, b, delta in self.edits:
                if (b > a and i >= b) or (b == a and i > a):
                    i += delta
                elif a < i < b:
                    raise _Stale
            if node.id == "scalar" and node.style in ("|", ">"):
                s = self.start(node)
                header = self.text[s : self.text.find("\n", s)]
                if "+" not in header.split("#")[0]:
                    i = self._block_scalar_end(s, i)
            return i
        if not node.value:
            raise _Stale  # an empty block collection: only as written by us
        last = node.value[-1]
        if node.id == "mapping":
            key, last = last
            if key is _FRESH or last is _FRESH:
                raise _Stale
            if self.start(last) < self.start(key):
                return self.alias_end(key)
        elif len(node.value) > 1 and node.value[-2] is not _FRESH:
            if self.start(last) < self.start(node.value[-2]):
                raise Unsupported("an alias")
        elif self.text[self.start(last) : self.start(last) + 1] == "&":
            raise Unsupported("an anchor or alias")
        return self.end(last)

    def _block_scalar_end(self, s: int, e: int) -> int:
        text = self.text
        header_end = text.find("\n", s)
        lines = text[header_end + 1 : e].split("\n")
        content = [line for line in lines if line.strip(" ")]
        indent = len(content[0]) - len(content[0].lstrip(" ")) if content else 0
        while e > header_end + 1:
            if text[e - 1] == "\n":
                e -= 1
                continue
            line_start = text.rfind("\n", 0, e) + 1
            line = text[line_start:e]
            if line.strip(" ") or len(line) > indent or line_start <= header_end:
                break
            e = line_start
        return max(e, header_end if header_end >= 0 else e)

    def alias_end(self, key: Any) -> int:
        """Index just after the `*alias` that is the value of `key`."""
        text = self.text
        i = self.colon(key)
        while i < len(text) and text[i] in " \t\n":
            i += 1
        if text[i : i + 1] != "*":
            raise Unsupported("an alias not after its key")
        while i < len(text) and text[i] not in " \t\n,]}":
            i += 1
        return i

    def column(self, i: int) -> int:
        return i - (self.text.rfind("\n", 0, i) + 1)

    def line_start(self, i: int) -> int:
        return self.text.rfind("\n", 0, i) + 1

    def eol(self, i: int) -> int:
        """Index of the line break ending the line of `i` (len(text) if none)."""
        j = self.text.find("\n", i)
        return len(self.text) if j < 0 else j

    def indicators(self) -> tuple[int, int, int]:
        """(mapping indent, dash offset, dash width) most used in the text."""
        if self._guess is None:
            from flujo.spec.edit import guess_indentation

            mapping, sequence, offset = guess_indentation(self.text)
            self._guess = (mapping, offset, max(sequence - offset, 2))
        return self._guess

    def splice(self, a: int, b: int, new: str) -> None:
        self.text = self.text[:a] + new + self.text[b:]
        self.edits.append((a, b, len(new) - (b - a)))

    def _rest_is_comment(self, e: int) -> str:
        """The rest of the line after `e` if it is only spaces and a comment, else ''."""
        if e > 0 and self.text[e - 1] == "\n":  # (a `|+` block ends at a line start)
            return ""
        rest = self.text[e : self.eol(e)]
        if rest.strip(" \t").startswith("#"):
            return rest
        if rest.strip(" \t"):
            raise Unsupported("more text after the node on its line")
        return ""

    def entry_end(self, e: int, indent: int) -> int:
        """Start of the line after the entry whose content ends at `e`: the rest of its
        last line and the comment lines after it indented deeper than `indent`."""
        text = self.text
        self._rest_is_comment(e)
        if e > 0 and text[e - 1] == "\n":
            end = e
        else:
            end = self.eol(e)
            if end >= len(text):
                return len(text)
            end += 1
        probe = end
        while probe < len(text):
            stop = self.eol(probe)
            line = text[probe:stop]
            stripped = line.lstrip(" ")
            if stripped.startswith("#") and len(line) - len(stripped) > indent:
                end = min(stop + 1, len(text))
            elif stripped:
                break
            probe = stop + 1
        return end

    def gap_start(self, line: int) -> int:
        """First of the blank and comment lines (no deeper than the line at `line`)
        right above it: they introduce it."""
        text = self.text
        indent = self.column(line + len(text[line:]) - len(text[line:].lstrip(" ")))
        while line > 0:
            previous = text.rfind("\n", 0, line - 1) + 1
            content = text[previous : line - 1]
            stripped = content.lstrip(" ")
            if stripped and not (
                stripped.startswith("#") and len(content) - len(stripped) <= indent
            ):
                break
            line = previous
        return line

    def blank_lines_before(self, line: int) -> tuple[int, str]:
        """The blank lines that start the gap above the line at `line`: their length in
        the text, and as many empty lines."""
        first = start = self.gap_start(line)
        count = 0
        while start < line:
            stop = self.eol(start)
            if self.text[start:stop].strip(" "):
                break
            count += 1
            start = stop + 1
        return start - first, "\n" * count

    # the tree -------------------------------------------------------------------------

    def _check(self, node: Any, root: bool = False) -> None:
        if node is _FRESH:
            raise _Stale
        first = self.text[self.start(node) : self.start(node) + 1]
        if first in ("&", "!", "*") and not root:
            raise Unsupported("an anchor, alias or tag")
        if node.id == "mapping":
            for key, _ in node.value:
                if key is _FRESH:
                    continue
                if key.id != "scalar":
                    raise Unsupported("a complex key")

    def key_of(self, node: Any) -> str:
        if node.id != "scalar":
            raise Unsupported("a complex key")
        tag = node.tag
        if tag == _STR:
            return str(node.value)
        value = _yaml().constructor.construct_object(node, deep=True)
        if value is True or value is False:
            return "true" if value else "false"
        return "null" if value is None else str(value)

    def find(self, mapping: Any, token: str) -> int:
        """Index of `token`'s entry in `mapping` written in it (-1 if none)."""
        fresh = False
        for index, (key, _) in enumerate(mapping.value):
            if key is _FRESH:
                fresh = True
            elif key.tag == _MERGE:
                continue
            elif self.key_of(key) == token:
                return index
        if fresh:
            raise _Stale
        return -1

    def merges(self, mapping: Any) -> bool:
        return any(key is not _FRESH and key.tag == _MERGE for key, _ in mapping.value)

    def walk(self, tokens: list[str]) -> Any:
        node = self.root
        self._check(node, root=True)
        for token in tokens:
            node = self.child(node, token)
            self._check(node)
        return node

    def child(self, node: Any, token: str) -> Any:
        if node.id == "mapping":
            index = self.find(node, token)
            if index < 0:
                raise Unsupported("a key brought by a merge (`<<`)")
            return node.value[index][1]
        if node.id == "sequence":
            return node.value[int(token)]
        raise Unsupported("a scalar has no children")

    # operations -----------------------------------------------------------------------

    def apply(self, operation: dict[str, Any], value: Any = None) -> None:
        op = operation.get("op")
        if op == "test":
            return
        path = _tokens(str(operation.get("path")))
        if op == "remove":
            self.retry(lambda: self.remove(path))
        elif op in ("add", "replace"):
            self.retry(lambda: self.add(path, operation["value"], op == "replace"))
        elif op == "rename":
            self.retry(lambda: self.rename(path, str(operation["to"])))
        elif op in ("move", "copy"):
            source = _tokens(str(operation.get("from")))
            if source == path:
                return
            fragment = self.retry(lambda: self.fragment(source, self.walk(source)))
            if op == "move":
                self.retry(lambda: self.remove(source))
            self.retry(lambda: self.add(path, value, False, fragment))
        else:
            raise Unsupported(f"operation {op!r}")

    def retry(self, step: Callable[[], _T]) -> _T:
        """`step()`, run again on a fresh compose of the text if it reached into text
        an earlier operation wrote (each step either fails before it splices or
        splices exactly once)."""
        try:
            return step()
        except _Stale:
            self.root = _compose(self.text, self.file)
            self.edits = []
        try:
            return step()
        except _Stale:
            raise Unsupported("spans still unknown after composing again") from None

    def fragment(self, path: list[str], node: Any) -> Fragment | None:
        """The source text of `node` (to its last content line), the column its lines
        are indented from (a block collection's own; else its key's or dash's), and
        whether it is a block collection; None at the root or in a flow collection."""
        if not path:
            return None
        parent = self.walk(path[:-1])
        if parent.flow_style:
            return None
        s, e = self.start(node), self.end(node)
        block = node.id != "scalar" and not node.flow_style
        if block:
            base = self.column(s)
        elif parent.id == "mapping":
            base = self.column(self.start(parent.value[self.find(parent, path[-1])][0]))
        else:
            base = self.column(self.dash(node))
        return Fragment(self.text[s:e], base, block)

    # -- add / replace --

    def add(
        self,
        path: list[str],
        value: Any,
        replace: bool,
        fragment: Fragment | None = None,
    ) -> None:
        if not path:
            self.replace_root(value)
            return
        parent = self.walk(path[:-1])
        token = path[-1]
        if parent.id == "mapping":
            index = self.find(parent, token)
            if index >= 0:
                self._check(parent.value[index][1])
                self.replace_value(parent, index, value, fragment)
                return
            self.add_entry(parent, token, value, fragment)
            parent.value.append((_FRESH, _FRESH))
        elif parent.id == "sequence":
            index = len(parent.value) if token == "-" else int(token)
            if replace:
                self._check(parent.value[index])
                self.replace_value(parent, index, value, fragment)
                return
            self.add_item(parent, index, value, fragment)
            parent.value.insert(index, _FRESH)
        else:
            raise Unsupported("add to a scalar")

    def replace_root(self, value: Any) -> None:
        node = self.root
        s, e = self.start(node), self.end(node)
        if node.id == "scalar" and s == e:
            raise Unsupported("an empty document")
        new = self.block_value(value, 0) if self.column(s) == 0 else None
        if new is None:
            raise Unsupported("a root that does not start a line")
        self.splice(s, e, new)
        self.root = _FRESH

    def replace_value(self, parent: Any, index: int, value: Any, fragment: Fragment | None) -> None:
        text = self.text
        if parent.id == "mapping":
            key, node = parent.value[index]
        else:
            key, node = None, parent.value[index]
        s, e = self.start(node), self.end(node)
        if parent.flow_style:
            self.splice(s, e, self.flow_value(value, self.spaced(parent)))
        else:
            if key is not None:
                slot = self.colon(key)
                key_column = self.column(self.start(key))
            else:
                slot = self.dash(node) + 1
                key_column = self.column(slot - 1)
            own_line = text.rfind("\n", 0, s) >= slot and s > slot
            block = _is_block(value)
            old_block = node.id != "scalar" and not node.flow_style
            if (
                own_line
                and key is not None
                and not block
                and (old_block or self.column(s) <= key_column)
            ):
                # `key:` over a `- item` list at its column: the new value goes on the key's line
                comment = text[slot : self.eol(slot)].strip(" ")
                new = self.scalar_or_empty(value, key_column + self.indicators()[0])
                while e > s and text[e - 1] == "\n":  # (a `|+` block's blank lines)
                    e -= 1
                first, _, tail = new.partition("\n")
                new = (
                    " " + first + (" " + comment if comment else "") + ("\n" + tail if tail else "")
                )
                self.splice(slot, e, new)
                parent.value[index] = (key, _FRESH)
                return
            block = _is_block(value)
            if own_line:
                moved = self.reindented(fragment, value, self.column(s), self.column(s))
                new = (
                    moved
                    if moved is not None
                    else self.block_value(
                        value, self.column(s), node if not block else None, key_column
                    )
                )
                self.splice_inline(s, e, new)
            elif key is not None and block:
                new = self.after_key(value, key_column, fragment)
                between = text[slot:s] if s > slot else ""
                if between.strip(" "):
                    raise Unsupported("text between a key and its value")
                self.splice_inline(slot, e, new)
            else:
                column = self.column(s) if s > slot else slot + 1 - self.line_start(slot)
                new_text = self.reindented(fragment, value, column, key_column)
                if new_text is None:
                    if key is None:
                        new_text = self.block_value(value, column, node, key_column)
                    else:
                        mapping = self.indicators()[0]
                        new_text = self.scalar(value, node, key_column + mapping, key_column)
                if s == slot or (node.id == "scalar" and s == e and text[slot:s].strip(" ") == ""):
                    # an empty value: `key:` / `-`
                    self.splice_inline(slot, max(s, e), " " + new_text)
                else:
                    self.splice_inline(s, e, new_text)
        if parent.id == "mapping":
            parent.value[index] = (key, _FRESH)
        else:
            parent.value[index] = _FRESH

    def splice_inline(self, s: int, e: int, new: str) -> None:
        """Replace [s, e) by `new`; a comment after `e` on its line moves to the end of
        the first line of `new` when `new` has several lines."""
        if e > s and self.text[e - 1] == "\n" and not new.endswith("\n"):
            e = self._block_scalar_end(s, e)  # a `|+` block replaced: its blank lines stay
        if "\n" in new and not (e > 0 and self.text[e - 1] == "\n"):
            comment = self._rest_is_comment(e)
            if comment:
                first, tail = new.split("\n", 1)
                self.splice(s, e + len(comment), first + comment + "\n" + tail)
                return
        self.splice(s, e, new)

    def colon(self, key: Any) -> int:
        """Index just after the `:` that follows `key`."""
        i = self.end(key)
        text = self.text
        while i < len(text) and text[i] == " ":
            i += 1
        if text[i : i + 1] != ":":
            raise Unsupported("no `:` after a key")
        return i + 1

    def dash(self, node: Any) -> int:
        """Index of the `-` of the block sequence item `node`."""
        text = self.text
        if text[self.start(node) : self.start(node) + 1] in ("&", "*", "!"):
            raise Unsupported("an anchor, alias or tag")
        i = self.start(node) - 1
        while i >= 0 and text[i] in " \n":
            i -= 1
        if i < 0 or text[i] != "-":
            raise Unsupported("no `-` before an item")
        return i

    def spaced(self, node: Any) -> bool:
        s = self.start(node)
        return self.text[s + 1 : s + 2] == " " and bool(node.value)

    def reindented(
        self, fragment: Fragment | None, value: Any, column: int, owner: int
    ) -> str | None:
        """The fragment's text for a node at `column` (a block collection) or owned by a
        key or dash at `owner` (anything else); None when it does not fit there."""
        if fragment is None:
            return None
        if fragment.block and (column < 0 or not _is_block(value)):
            return None
        shift = (column if fragment.block else owner) - fragment.base
        lines = fragment.text.split("\n")
        out = [lines[0]]
        for line in lines[1:]:
            if shift >= 0:
                out.append(" " * shift + line if line.strip(" ") else line)
            elif line[:-shift].strip(" ") == "":
                out.append(line[-shift:] if line.strip(" ") else line)
            else:
                return None
        return "\n".join(out)

    def add_entry(self, mapping: Any, key: str, value: Any, fragment: Fragment | None) -> None:
        text = self.text
        if mapping.flow_style:
            spaced = (
                self.spaced(mapping)
                or self.text[self.start(mapping) + 1 : self.start(mapping) + 2] == " "
            )
            entry = f"{self.key(key, True)}: {self.flow_value(value, spaced)}"
            self.flow_insert(mapping, len(mapping.value), entry)
            return
        first_key = mapping.value[0][0]
        start = self.start(first_key)
        before = self.text[self.line_start(start) : start]
        column = self.column(start)
        if before.strip(" ").startswith("?"):
            column = len(before) - len(before.lstrip(" "))
        last_key, last_value = mapping.value[-1]
        value_end = self.end(last_value)
        end = self.entry_end(value_end, column)
        entry = " " * column + self.key(key, False) + ":" + self.after_key(value, column, fragment)
        separator = ""
        kept = text[value_end - 1 : value_end] == "\n"  # a `|+` block keeps the blank lines
        if len(mapping.value) > 1 and fragment is None and not kept:
            separator = self.blank_lines_before(self.line_start(self.start(last_key)))[1]
        if end >= len(text) and not text.endswith("\n"):
            self.splice(end, end, "\n" + separator + entry.removesuffix("\n"))
        else:
            self.splice(end, end, separator + entry + ("" if entry.endswith("\n") else "\n"))

    def add_item(self, sequence: Any, index: int, value: Any, fragment: Fragment | None) -> None:
        text = self.text
        items = sequence.value
        if sequence.flow_style:
            self.flow_insert(sequence, index, self.flow_value(value, self.spaced(sequence)))
            return
        sibling = items[index] if index < len(items) else items[-1]
        dash = self.dash(sibling)
        column = self.column(dash)
        width = self.start(sibling) - dash if text.rfind("\n", 0, self.start(sibling)) < dash else 2
        width = max(width, 2)
        body = self.reindented(fragment, value, column + width, column)
        if body is None:
            body = self.block_value(value, column + width)
        body = body.removesuffix("\n")  # (a `|+` block's text ends with its line break)
        item = " " * column + "-" + " " * (width - 1) + body
        if index < len(items):
            line = self.line_start(dash)
            if text[line:dash].strip(" "):
                # `- - a`: the item starts inside another's line
                self.splice(dash, dash, "-" + " " * (width - 1) + body + "\n" + " " * column)
                return
            at = self.gap_start(line)
            if index > 0:
                skip, separator = self.blank_lines_before(line) if fragment is None else (0, "")
                at += skip  # below the blank lines, above the comments
                self.splice(at, at, item + "\n" + separator)
            else:
                after = ""
                if len(items) > 1 and fragment is None:
                    after = self.blank_lines_before(self.line_start(self.dash(items[1])))[1]
                self.splice(at, at, item + "\n" + after)
            return
        end = self.entry_end(self.end(items[-1]), column)
        separator = ""
        if len(items) > 1 and fragment is None:
            separator = self.blank_lines_before(self.line_start(dash))[1]
        if end >= len(text) and not text.endswith("\n"):
            self.splice(end, end, "\n" + separator + item)
        else:
            self.splice(end, end, separator + item + "\n")

    def flow_insert(self, collection: Any, index: int, entry: str) -> None:
        text = self.text
        items = collection.value
        nodes = [k for k, _ in items] if collection.id == "mapping" else list(items)
        ends = [v for _, v in items] if collection.id == "mapping" else list(items)
        if not nodes:
            s = self.start(collection)
            e = self.end(collection) - 1
            inner = text[s + 1 : e]
            if inner.strip():
                raise Unsupported("comments inside an empty flow collection")
            self.splice(s + 1, e, entry)
            return
        if index < len(nodes):
            at = self.start(nodes[index])
            if self._on_own_lines(nodes):
                self.splice(at, at, entry + ",\n" + " " * self.column(at))
            else:
                self.splice(at, at, entry + ", ")
            return
        e = self.end(ends[-1])
        if self._on_own_lines(nodes):
            # after the last item (and its comma, if it has one)
            j = e
            while j < len(text) and text[j] == " ":
                j += 1
            column = self.column(self.start(nodes[-1]))
            rest = text[e : self.eol(e)].strip(" \t")
            if text[j : j + 1] == ",":  # a trailing comma: the new item gets one too
                after = text[j + 1 : self.eol(j)].strip(" ")
                stop = self.eol(j) if not after or after.startswith("#") else j + 1
                self.splice(stop, stop, "\n" + " " * column + entry + ",")
            elif not rest or rest.startswith("#"):
                stop = self.eol(e)
                self.splice(stop, stop, "\n" + " " * column + entry)
                self.splice(e, e, ",")
            else:  # the closing bracket follows on the line
                self.splice(e, e, ",\n" + " " * column + entry)
            return
        self.splice(e, e, ", " + entry)

    def _on_own_lines(self, nodes: list[Any]) -> bool:
        if len(nodes) < 2:
            return False
        starts = [self.start(node) for node in nodes[-2:]]
        return "\n" in self.text[starts[0] : starts[1]]

    # -- rename --

    def rename(self, path: list[str], new: str) -> None:
        """Write the key of the entry at `path` as `new`, in place: its value, comments
        and position stay."""
        if not path:
            raise Unsupported("rename the root")
        parent = self.walk(path[:-1])
        if parent.id != "mapping" or self.merges(parent):
            raise Unsupported("rename outside a plain mapping")
        index = self.find(parent, path[-1])
        if index < 0:
            raise Unsupported("a key a merge (`<<`) brings")
        key, value = parent.value[index]
        if self.text[self.start(key) : self.start(key) + 1] in ("&", "!", "*", "?"):
            raise Unsupported("an anchored, tagged or complex key")
        self.splice(self.start(key), self.end(key), self.key(new, bool(parent.flow_style)))
        parent.value[index] = (_FRESH, value)

    # -- remove --

    def remove(self, path: list[str]) -> None:
        if not path:
            raise Unsupported("remove the root")
        parent = self.walk(path[:-1])
        token = path[-1]
        text = self.text
        if parent.id == "mapping":
            index = self.find(parent, token)
            if index < 0 or self.merges(parent):
                raise Unsupported("a key a merge (`<<`) may bring back")
            key, node = parent.value[index]
            self._check(node)
            first = key
        else:
            index = int(token)
            node = parent.value[index]
            self._check(node)
            first = node
        if parent.flow_style:
            self.flow_remove(parent, index)
            del parent.value[index]
            return
        if len(parent.value) == 1:
            self.empty_collection(path[:-1], parent)
            return
        start = self.start(first) if parent.id == "mapping" else self.dash(node)
        column = self.column(start)
        line = self.line_start(start)
        if text[line:start].strip(" "):
            # the entry starts another's line (`- name: a` / `- - a`): up to its sibling
            if index + 1 >= len(parent.value):
                raise Unsupported("the last entry shares a line")
            following = parent.value[index + 1]
            nxt = self.start(following[0]) if parent.id == "mapping" else self.dash(following)
            self.splice(start, nxt, "")
        else:
            end = self.entry_end(self.end(node), column)
            line, end = self.with_own_blank_lines(parent, index, line, end)
            self.splice(line, end, "")
        del parent.value[index]

    def with_own_blank_lines(self, parent: Any, index: int, line: int, end: int) -> tuple[int, int]:
        """The span [line, end) of a removed block entry, widened to the blank lines that
        belong to it, so the spacing left is the one a person would leave: the blank lines
        above it when blank lines follow it too or it is the last entry (they separated it
        from the entry before), else, for the first entry, the blank lines below it (they
        separated it from the next)."""
        text = self.text
        above = line
        while above > 0:
            previous = text.rfind("\n", 0, above - 1) + 1
            if text[previous : above - 1].strip(" \t"):
                break
            above = previous
        if index > 0:  # blank lines that end a `|+` block above are its content
            before = parent.value[index - 1]
            content_end = self.end(before[1] if parent.id == "mapping" else before)
            if content_end > above:
                above = content_end if text[content_end - 1] == "\n" else line
        below = end
        while below < len(text):
            stop = self.eol(below)
            if text[below:stop].strip(" \t"):
                break
            below = min(stop + 1, len(text))
        last = index == len(parent.value) - 1
        if above < line and (below > end or last):
            return above, end
        if index == 0 and below > end and not last:
            return line, below
        return line, end

    def empty_collection(self, path: list[str], node: Any) -> None:
        """Remove the only entry of a block collection: it becomes `{}` or `[]`."""
        value: Any = {} if node.id == "mapping" else []
        if not path:
            s, e = self.start(node), self.end(node)
            self.splice(s, e, "{}" if node.id == "mapping" else "[]")
            self.root = _FRESH
            return
        parent = self.walk(path[:-1])
        token = path[-1]
        index = self.find(parent, token) if parent.id == "mapping" else int(token)
        self.replace_value(parent, index, value, None)

    def flow_remove(self, collection: Any, index: int) -> None:
        text = self.text
        items = collection.value
        firsts = [k for k, _ in items] if collection.id == "mapping" else list(items)
        lasts = [v for _, v in items] if collection.id == "mapping" else list(items)
        s, e = self.start(firsts[index]), self.end(lasts[index])
        if len(items) == 1:
            open_, close = self.start(collection), self.end(collection) - 1
            if text[open_ + 1 : close].count("#"):
                raise Unsupported("comments inside a flow collection")
            self.splice(open_ + 1, close, "")
            return
        if index + 1 < len(items):
            nxt = self.start(firsts[index + 1])
            if "\n" in text[e:nxt]:
                # items on their own lines: the item's whole line(s)
                line = self.line_start(s)
                if text[line:s].strip(" "):
                    self.splice(s, nxt, "")
                else:
                    self.splice(line, self.line_start(nxt), "")
            else:
                self.splice(s, nxt, "")
            return
        previous_end = self.end(lasts[index - 1])
        between = text[previous_end:s]
        tail = text[e : self.eol(e)].strip(" \t")
        if "\n" in between and tail and not tail.startswith(("#", ",")):
            # the closing bracket follows on the item's line: it stays there
            comma = text.index(",", previous_end)
            self.splice(s, e, "")
            self.splice(comma, comma + 1, "")
        elif "\n" in between:
            line = self.line_start(s)
            j = e
            while j < len(text) and text[j] == " ":
                j += 1
            if text[j : j + 1] == ",":  # a trailing comma stays a trailing comma
                rest = self.eol(j)
                if not text[j + 1 : rest].strip(" ") or text[j + 1 : rest].strip(" ").startswith(
                    "#"
                ):
                    self.splice(line, rest + 1, "")
                    return
            comma = text.index(",", previous_end)
            self.splice(
                line,
                self.eol(e) + 1
                if not text[e : self.eol(e)].strip(" ")
                or text[e : self.eol(e)].strip(" ").startswith("#")
                else e,
                "",
            )
            self.splice(comma, comma + 1, "")
        else:
            self.splice(previous_end, e, "")

    # -- writing values --

    def key(self, key: str, flow: bool) -> str:
        return key if _plain_ok(key, flow) else _double(key)

    def scalar(self, value: Any, old: Any, indent: int, owner: int = -1) -> str:
        """`value` written inline in block context; `old` the node it replaces (its style
        is kept where the value allows it); continuation lines at column `indent`."""
        if isinstance(value, dict | list):
            if value:
                raise Unsupported("a collection where a scalar goes")
            return "{}" if isinstance(value, dict) else "[]"
        if not isinstance(value, str):
            if (
                old is not None
                and value is None
                and old.id == "scalar"
                and old.tag.endswith("null")
            ):
                s, e = self.start(old), self.end(old)
                return self.text[s:e] or "null"
            return _non_string(value)
        style = old.style if old is not None and old.id == "scalar" else None
        if old is not None and old.id == "scalar" and old.tag != _STR:
            style = None
        if style == '"':
            return _double(value)
        if style == "'" and _single_ok(value) and "\n" not in value:
            return _single(value)
        if style in ("|", ">"):
            written = self.block_scalar(value, old, indent, style, owner)
            if written is not None:
                return written
        if "\n" not in value and _plain_ok(value, False):
            return value
        if "\n" in value.rstrip("\n") and _literal_ok(value) and not value.endswith("\n\n"):
            written = self.block_scalar(value, None, indent, "|")
            if written is not None:
                return written
        if _single_ok(value) and "\n" not in value:
            return _single(value)
        return _double(value)

    def block_scalar(
        self, value: str, old: Any, indent: int, style: str, owner: int = -1
    ) -> str | None:
        keep_ok = False
        digit = ""
        if old is not None:
            s = self.start(old)
            header = self.text[s : self.eol(s)].split("#")[0].strip()
            keep_ok = "+" in header
            digit = "".join(ch for ch in header if ch.isdigit())
            if digit and owner < 0:
                return None
            # the old content's own indentation
            probe = self.eol(s) + 1
            while probe < len(self.text):
                stop = self.eol(probe)
                line = self.text[probe:stop]
                if line.strip(" "):
                    indent = len(line) - len(line.lstrip(" "))
                    break
                probe = stop + 1
            if digit:
                indent = owner + int(digit)
        body = value.rstrip("\n")
        trailing = len(value) - len(body)
        if not body or not all(_printable(ch) or ch in "\n\t" for ch in body):
            return None
        if trailing > 1 and not keep_ok:
            return None
        if body[0] in " \t" and not digit:
            return None
        if style == ">" and not _folded_ok(value):
            style = "|"
            if not (body[0] not in " \t" or digit):
                return None
        chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
        lines = body.split("\n")
        if style == ">":
            lines = _fold_lines(lines)
        text = (
            style
            + digit
            + chomp
            + "\n"
            + "\n".join(" " * indent + line if line else "" for line in lines)
        )
        if chomp == "+":
            text += "\n" * trailing
        return text

    def after_key(self, value: Any, column: int, fragment: Fragment | None = None) -> str:
        """What follows `key:` for `value`, the key at `column`."""
        mapping, offset, _ = self.indicators()
        if isinstance(value, dict) and value:
            inner = column + mapping
        elif isinstance(value, list) and value:
            inner = column + offset
        else:
            inner = -1
        if inner >= 0:
            body = self.reindented(fragment, value, inner, column)
            if body is not None and fragment is not None and fragment.block:
                return "\n" + " " * inner + body
            if body is None:
                return "\n" + " " * inner + self.block_value(value, inner)
            return " " + body
        body = self.reindented(fragment, value, inner, column)
        return " " + (body if body is not None else self.scalar_or_empty(value, column + mapping))

    def scalar_or_empty(self, value: Any, indent: int) -> str:
        if isinstance(value, dict):
            return "{}"
        if isinstance(value, list):
            return "[]"
        return self.scalar(value, None, indent)

    def block_value(self, value: Any, column: int, old: Any = None, owner: int = -1) -> str:
        """`value` written at `column` in block context (no indentation on its first line;
        the others indented absolutely)."""
        if isinstance(value, dict) and value:
            parts = []
            for index, (key, item) in enumerate(value.items()):
                prefix = "" if index == 0 else " " * column
                parts.append(prefix + self.key(key, False) + ":" + self.after_key(item, column))
            return "\n".join(parts)
        if isinstance(value, list) and value:
            _, _, width = self.indicators()
            parts = []
            for index, item in enumerate(value):
                prefix = "" if index == 0 else " " * column
                parts.append(
                    prefix + "-" + " " * (width - 1) + self.block_value(item, column + width)
                )
            return "\n".join(parts)
        if isinstance(value, dict | list):
            return "{}" if isinstance(value, dict) else "[]"
        return self.scalar(value, old, column, owner)

    def flow_value(self, value: Any, spaced: bool) -> str:
        if isinstance(value, dict):
            inner = ", ".join(
                f"{self.key(key, True)}: {self.flow_value(item, spaced)}"
                for key, item in value.items()
            )
            return "{}" if not inner else "{ " + inner + " }" if spaced else "{" + inner + "}"
        if isinstance(value, list):
            inner = ", ".join(self.flow_value(item, spaced) for item in value)
            return "[]" if not inner else "[ " + inner + " ]" if spaced else "[" + inner + "]"
        if not isinstance(value, str):
            return _non_string(value)
        if _plain_ok(value, True):
            return value
        if _single_ok(value) and "\n" not in value:
            return _single(value)
        return _double(value)


def _fold_lines(lines: list[str]) -> list[str]:
    """Text lines of a folded scalar whose value has `lines`: n line breaks between two
    content lines are n empty text lines."""
    out: list[str] = []
    for line in lines:
        if line == "":
            out.append("")
        else:
            if out:
                out.append("")
            out.append(line)
    return out


def _is_block(value: Any) -> bool:
    return isinstance(value, dict | list) and bool(value)
