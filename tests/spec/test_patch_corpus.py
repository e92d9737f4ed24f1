"""`flujo.spec.edit.patch_text` over a corpus of hand-written pipeline files, one YAML
style each (tests/corpus): every patch loads to exactly the RFC 6902 result, is merged
line by line (`exact`), changes only the lines of the patched node, and keeps CRLF."""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from flujo.spec import paths
from flujo.spec.edit import PatchError, patch_text
from flujo.spec.source import SourceDocument, parse
from tests.support.patch_diff import diff, lines_of, within
from tests.support.specs import EXAMPLES, TESTS

CORPUS_DIR = TESTS / "corpus"
FILES = sorted(CORPUS_DIR.glob("*.yaml"))
RAW = {path.name: path.read_bytes().decode("utf-8") for path in FILES}
"""The files as they are on disk (CRLF kept)."""
TEXTS = {name: raw.replace("\r\n", "\n") for name, raw in RAW.items()}
DOCUMENTS = {name: parse(text) for name, text in TEXTS.items()}
CRLF = sorted(name for name, raw in RAW.items() if "\r\n" in raw)
CORPUS = sorted(TEXTS)

# -- line bookkeeping -------------------------------------------------------------------


def _is_gap(line: str, column: int) -> bool:
    """Blank (maybe with trailing spaces), or a comment no deeper than `column`."""
    stripped = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    return not stripped or (stripped.startswith("#") and indent < column)


def node_span(document: SourceDocument, path: str) -> tuple[int, int]:
    """First and last line (1-based) of the node at `path`, from its key or dash to its
    last line of content (blank and comment lines after it are not part of it)."""
    lines = lines_of(document.text)
    if path == "":
        return 1, len(lines)
    line, column = document.positions[path][:2]
    following = [
        position[0]
        for other, position in document.positions.items()
        if not within(other, path) and position[:2] > (line, column)
    ]
    end = min(following, default=len(lines) + 1) - 1
    if end < line:  # a flow collection: the next node is on the same line
        return line, line
    inside = [p for p in document.positions if within(p, path)]
    last = max(inside, key=lambda p: document.positions[p][2:])
    value_line, value_col = document.positions[last][2:]
    keeps = _KEEP.match(lines[value_line - 1][value_col - 1 :])
    while end > line and _is_gap(lines[end - 1], column):
        if keeps and not lines[end - 1].strip():  # `|+` keeps its trailing blank lines
            break
        end -= 1
    return line, end


_KEEP = re.compile(r"[|>][1-9]?\+[1-9]?\s*(#.*)?$")


def gap_start(document: SourceDocument, line: int) -> int:
    """The first of the blank and comment lines right before `line` (or `line`): new
    lines inserted before the node at `line` go above the lines that introduce it."""
    lines = lines_of(document.text)
    column = len(lines[line - 1]) - len(lines[line - 1].lstrip(" ")) + 1
    while line > 1 and _is_gap(lines[line - 2], column + 1):
        line -= 1
    return line


def gap_starts(document: SourceDocument, line: int) -> frozenset[int]:
    """Where lines inserted before the node at `line` may go: above the blank and
    comment lines that introduce it, or below the blank lines among them (a new item
    in a list whose items are separated by blank lines comes with its own)."""
    start = gap_start(document, line)
    lines = lines_of(document.text)
    below = start
    while below < line and not lines[below - 1].strip():
        below += 1
    return frozenset({start, below})


def _get(data: Any, path: str) -> Any:
    for segment in paths.split(path):
        data = data[segment]
    return data


def _depth(path: str) -> int:
    return len(paths.split(path))


# -- the per-file patches ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One patch of one corpus file and the lines it may change."""

    operation: dict[str, Any]
    changed_within: tuple[int, int] | None
    """Original lines (inclusive) that may be deleted or rewritten; None: none may."""
    inserted_before: frozenset[int]
    """Original lines before which new lines may be inserted."""


def _step_lists(document: SourceDocument) -> list[str]:
    """yaml_paths of the `steps` lists (of mappings, with two or more), deepest first."""
    found = [
        path
        for path in document.positions
        if path
        and paths.split(path)[-1] == "steps"
        and isinstance(value := _get(document.data, path), list)
        and len(value) >= 2
        and all(isinstance(item, dict) for item in value)
    ]
    return sorted(found, key=lambda p: (-_depth(p), document.positions[p][:2]))


def _deep_leaf(document: SourceDocument) -> str:
    """The deepest scalar inside a step (first in the file among equals)."""
    leaves = [
        path
        for path in document.positions
        if path.startswith("steps[") and not isinstance(_get(document.data, path), dict | list)
    ]
    return min(leaves, key=lambda p: (-_depth(p), document.positions[p][:2]))


def _new_scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return 42
    return "patched_value"


def _flow_mapping(document: SourceDocument) -> str | None:
    """The deepest mapping written in flow style (`{...}`), if any."""
    lines = lines_of(document.text)
    flows = []
    for path, (_, _, line, col) in document.positions.items():
        if path and isinstance(_get(document.data, path), dict):
            text = lines[line - 1]
            if text[col - 1 : col] == "{" or text[col - 1 :].startswith("- {"):
                flows.append(path)
    if not flows:
        return None
    return min(flows, key=lambda p: (-_depth(p), document.positions[p][:2]))


def _pointer(path: str) -> str:
    return paths.to_pointer(path)


def _and_blank_lines_below(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """A first entry's lines and the blank lines after it: removing it takes them too."""
    lines = text.split("\n")
    end = span[1]
    while end < len(lines) and not lines[end].strip(" \t"):
        end += 1
    return span[0], end


def _and_blank_lines_above(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """A last entry's lines and the blank lines before it: removing it takes them too."""
    lines = text.split("\n")
    start = span[0]
    while start > 1 and not lines[start - 2].strip(" \t"):
        start -= 1
    return start, span[1]


def cases_for(name: str) -> dict[str, Case]:
    document = DOCUMENTS[name]
    data = document.data
    steps = _step_lists(document)[0]
    items = _get(data, steps)
    first, last = f"{steps}[0]", f"{steps}[{len(items) - 1}]"
    span = {path: node_span(document, path) for path in (steps, first, last)}
    leaf = _deep_leaf(document)
    new_step = {"name": "inserted_step", "uses": "passthrough"}
    cases = {
        "replace-deep-scalar": Case(
            {"op": "replace", "path": _pointer(leaf), "value": _new_scalar(_get(data, leaf))},
            node_span(document, leaf),
            frozenset(),
        ),
        "add-key-to-first-step": Case(
            {"op": "add", "path": _pointer(f"{first}.description"), "value": "added"},
            span[first],
            frozenset(range(span[first][0] + 1, span[first][1] + 2)),
        ),
        "add-key-to-last-step": Case(
            {"op": "add", "path": _pointer(f"{last}.description"), "value": "added"},
            span[last],
            frozenset(range(span[last][0] + 1, span[last][1] + 2)),
        ),
        "insert-step": Case(
            {"op": "add", "path": _pointer(f"{steps}[1]"), "value": new_step},
            None,
            gap_starts(document, document.positions[f"{steps}[1]"][0]),
        ),
        "append-step": Case(
            {"op": "add", "path": _pointer(steps) + "/-", "value": new_step},
            None,
            frozenset({span[steps][1] + 1}),
        ),
        "remove-step": Case(
            {"op": "remove", "path": _pointer(first)},
            _and_blank_lines_below(document.text, span[first]) if len(items) > 1 else span[first],
            frozenset(),
        ),
    }
    moved = first if first != "steps[0]" else last  # (a top-level list: its last item)
    if len(items) < 2:
        moved_lines = span[moved]
    elif moved == first:
        moved_lines = _and_blank_lines_below(document.text, span[moved])
    else:  # the last entry: the blank lines above it go with it
        moved_lines = _and_blank_lines_above(document.text, span[moved])
    cases["move-step-to-top"] = Case(
        {"op": "move", "from": _pointer(moved), "path": "/steps/0"},
        moved_lines,
        frozenset({gap_start(document, document.positions["steps[0]"][0])}),
    )
    flow = _flow_mapping(document)
    if flow is not None:
        flow_span = node_span(document, flow)
        cases["add-key-to-flow-mapping"] = Case(
            {"op": "add", "path": _pointer(f"{flow}.added_key"), "value": "v"},
            flow_span,
            frozenset(range(flow_span[0] + 1, flow_span[1] + 2)),
        )
    return cases


CASES = {(name, op): case for name in sorted(TEXTS) for op, case in cases_for(name).items()}

# Cases where a property does not hold yet: (file, case) -> reason.
NOT_LOCAL: dict[tuple[str, str], str] = {}
NOT_EXACT: dict[tuple[str, str], str] = {}


def _params(known: dict[tuple[str, str], str]) -> list[Any]:
    return [
        pytest.param(
            name,
            op,
            id=f"{name}:{op}",
            marks=[pytest.mark.xfail(strict=True, reason=known[name, op])]
            if (name, op) in known
            else [],
        )
        for name, op in CASES
    ]


def expected(name: str, patch: list[dict[str, Any]]) -> Any:
    """RFC 6902 on the plain data. (`parse` gives every use of an alias the same object,
    and jsonpatch's deep copy keeps that sharing; JSON has none, so copy through JSON.)"""
    return jsonpatch.apply_patch(json.loads(json.dumps(DOCUMENTS[name].data)), patch)


@pytest.mark.parametrize(("name", "op"), _params({}))
def test_patch_loads_to_exactly_the_rfc6902_result(name: str, op: str) -> None:
    patch = [CASES[name, op].operation]
    before = copy.deepcopy(patch)
    result = patch_text(RAW[name], patch)
    assert parse(result.text).data == expected(name, patch)
    assert patch == before


@pytest.mark.parametrize(("name", "op"), _params(NOT_EXACT))
def test_patch_is_merged_line_by_line(name: str, op: str) -> None:
    assert patch_text(RAW[name], [CASES[name, op].operation]).exact


@pytest.mark.parametrize(("name", "op"), _params(NOT_LOCAL))
def test_patch_changes_only_the_patched_lines(name: str, op: str) -> None:
    case = CASES[name, op]
    text = TEXTS[name]
    out = patch_text(RAW[name], [case.operation]).text.replace("\r\n", "\n")
    changes = diff(text, out)
    allowed = (
        frozenset(range(case.changed_within[0], case.changed_within[1] + 1))
        if (case.changed_within)
        else frozenset()
    )
    assert changes.changed <= allowed, (
        f"changed outside the node: {sorted(changes.changed - allowed)}"
    )
    assert changes.inserted_at <= case.inserted_before, (
        f"inserted before {sorted(changes.inserted_at)}, expected {sorted(case.inserted_before)}"
    )
    assert changes.changed or changes.inserted_at, "nothing changed"
    if case.operation["op"] != "remove":  # own-line comments are neither lost nor doubled
        assert _comments(out) == _comments(text)


def _comments(text: str) -> list[str]:
    return sorted(line.strip() for line in lines_of(text) if line.strip().startswith("#"))


@pytest.mark.parametrize(("name", "op"), [k for k in CASES if k[1] == "add-key-to-flow-mapping"])
def test_a_key_added_to_a_flow_mapping_keeps_its_spacing(name: str, op: str) -> None:
    case = CASES[name, op]
    text = TEXTS[name]
    out = patch_text(RAW[name], [case.operation]).text.replace("\r\n", "\n")
    line, last = case.changed_within  # type: ignore[misc]
    if line != last:  # a flow mapping on several lines: the key gets a line of its own
        added, _ = _added_and_removed(name, op)
        assert [entry.strip() for entry in added if "added_key" in entry] == ["added_key: v"]
        assert _comments(out) == _comments(text)
        return
    before, after = lines_of(text)[line - 1], lines_of(out)[line - 1]
    assert "added_key: v" in after
    assert ("{ " in before) == ("{ " in after)
    assert (" }" in before) == (" }" in after)


# -- line endings ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "op"), [k for k in CASES if k[0] in CRLF])
def test_a_crlf_file_stays_crlf(name: str, op: str) -> None:
    patch = [CASES[name, op].operation]
    out = patch_text(RAW[name], patch).text
    assert "\n" not in out.replace("\r\n", "")
    assert out == patch_text(TEXTS[name], patch).text.replace("\n", "\r\n")


@pytest.mark.parametrize("name", sorted(set(CORPUS) - set(CRLF)))
def test_every_file_converted_to_crlf_gives_the_lf_result_with_crlf(name: str) -> None:
    patch = [case.operation for (file, _), case in CASES.items() if file == name][:3]
    lf = patch_text(TEXTS[name], patch)
    crlf = patch_text(TEXTS[name].replace("\n", "\r\n"), patch)
    assert crlf.text == lf.text.replace("\n", "\r\n")
    assert crlf.exact == lf.exact


def test_the_corpus_covers_the_styles() -> None:
    assert len(FILES) >= 12
    joined = "\n".join(TEXTS.values())
    for marker in ("{ ", "{name", ": |", ": >", "|-", ">+", "|2", "<<: *", "&", "\n---", "'"):
        assert marker in joined, marker
    assert CRLF


# -- property: random replace/add/remove of leaves and list items -------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from(["", "x", "a: b", "# h", "two\nlines\n", "{x: 1}", "- y", "'", "é"]),
    st.text(max_size=6),
)
new_values = st.one_of(
    _values,
    st.lists(_values, max_size=2),
    st.dictionaries(st.text(max_size=4), _values, max_size=2),
)


def _shape(document: SourceDocument) -> tuple[list[str], list[str], list[str]]:
    leaves, items, containers = [], [], [""]
    for path in document.positions:
        if not path:
            continue
        value = _get(document.data, path)
        (containers if isinstance(value, dict | list) else leaves).append(path)
        if path.endswith("]"):
            items.append(path)
    return leaves, items, containers


# The random patches run over the corpus and the examples.
for _path in EXAMPLES:
    RAW[f"examples/{_path.name}"] = _path.read_bytes().decode("utf-8")
    TEXTS[f"examples/{_path.name}"] = RAW[f"examples/{_path.name}"].replace("\r\n", "\n")
    DOCUMENTS[f"examples/{_path.name}"] = parse(TEXTS[f"examples/{_path.name}"])
SHAPES = {name: _shape(document) for name, document in DOCUMENTS.items()}


@st.composite
def random_operations(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(TEXTS)))
    leaves, items, containers = SHAPES[name]
    kind = draw(st.sampled_from(["replace", "remove", "add"]))
    if kind != "add":
        path = draw(st.sampled_from(leaves + items))
        operation: dict[str, Any] = {"op": kind, "path": _pointer(path)}
        if kind == "replace":
            operation["value"] = draw(new_values)
        return name, operation
    parent = draw(st.sampled_from(containers))
    node = _get(DOCUMENTS[name].data, parent)
    if isinstance(node, list):
        index = draw(st.integers(0, len(node)).map(str) | st.just("-"))
    else:
        key = draw(st.text(max_size=5).filter(lambda k: k not in node))
        index = key.replace("~", "~0").replace("/", "~1")
    return name, {"op": "add", "path": f"{_pointer(parent)}/{index}", "value": draw(new_values)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_operations())
# the last item and the blank line after it removed, told by difflib as the item's lines
# and that blank line (the container's end), not the blank line before it and the item:
@example(("examples/rag_answer.yaml", {"op": "remove", "path": "/steps/1"}))
# found by this property (each failed before spec/edit.py was fixed):
@example(
    ("11_anchors_merge.yaml", {"op": "replace", "path": "/x-defaults/max_retries", "value": None})
)
@example(
    (
        "11_anchors_merge.yaml",
        {"op": "remove", "path": "/steps/1/branches/one/steps/0/config/timeout_s"},
    )
)
@example(("01_two_space_compact.yaml", {"op": "add", "path": "/\x85", "value": None}))
@example(
    (
        "05_flow_spaced.yaml",
        {"op": "replace", "path": "/agents/extractor/output_schema/type", "value": {"0?": None}},
    )
)
@example(
    (
        "05_flow_spaced.yaml",
        {"op": "add", "path": "/agents/extractor/output_schema/:0", "value": None},
    )
)
@example(("14_kitchen_sink.yaml", {"op": "add", "path": "/steps/1/body/steps/0/x", "value": None}))
def test_random_patches_load_to_exactly_the_rfc6902_result(
    drawn: tuple[str, dict[str, Any]],
) -> None:
    name, operation = drawn
    result = patch_text(RAW[name], [operation])
    assert parse(result.text).data == expected(name, [operation])
    if name in CRLF:
        assert "\n" not in result.text.replace("\r\n", "")
    if "&" in TEXTS[name]:
        return  # (a patch through an alias may go through ruamel's tree)
    assert result.spliced
    # untouched lines are byte-identical: only the node's lines, or its container's
    document = DOCUMENTS[name]
    appends = operation["path"].endswith("/-")
    path = paths.from_pointer(operation["path"].removesuffix("/-"), document.data)
    parent = path if appends else _parent(path)
    allowed = _lines_between(*node_span(document, parent)) if parent else None
    if path in document.positions:
        own = _lines_between(*node_span(document, path))
        if operation["op"] == "replace" or allowed is None:
            allowed = own
    if allowed is None:
        return
    patched = result.text.replace("\r\n", "\n")
    changes = diff(TEXTS[name], patched)
    if not changes.changed <= allowed:  # the same text, told as deleted a line earlier
        changes = diff(TEXTS[name], patched, earliest=True)
    assert changes.changed <= allowed, sorted(changes.changed - allowed)
    first, last = min(allowed), max(allowed)
    lines = lines_of(TEXTS[name])
    while last < len(lines) and not lines[last].strip():
        last += 1  # (a new last item comes after the blank lines, like its siblings)
    assert all(first <= line <= last + 1 for line in changes.inserted_at)


@st.composite
def random_patches(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """Two to four operations on one file, `move` and `copy` among them."""
    name, first = draw(random_operations())
    operations = [first]
    leaves, items, containers = SHAPES[name]
    for _ in range(draw(st.integers(1, 3))):
        source = _pointer(draw(st.sampled_from(leaves + items)))
        parent = _pointer(draw(st.sampled_from(containers)))
        token = draw(st.sampled_from(["0", "1", "-", "k", "name"]))
        kind = draw(st.sampled_from(["move", "copy", "remove", "replace"]))
        if kind in ("move", "copy"):
            operations.append({"op": kind, "from": source, "path": f"{parent}/{token}"})
        elif kind == "remove":
            operations.append({"op": "remove", "path": source})
        else:
            operations.append({"op": "replace", "path": source, "value": draw(new_values)})
    return name, operations


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_patches())
def test_random_patches_of_several_operations_load_to_exactly_the_rfc6902_result(
    drawn: tuple[str, list[dict[str, Any]]],
) -> None:
    name, operations = drawn
    # Left out: several moves and copies around anchors and merges go through ruamel's
    # tree, which cannot always write them back (PatchError; nothing is written).
    assume(name != "11_anchors_merge.yaml")
    try:
        wanted = expected(name, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        with pytest.raises(PatchError):
            patch_text(RAW[name], operations)
        return
    result = patch_text(RAW[name], operations)
    assert parse(result.text).data == wanted


def _parent(path: str) -> str:
    segments = paths.split(path)
    return paths.join(segments[:-1])


def _lines_between(first: int, last: int) -> frozenset[int]:
    return frozenset(range(first, last + 1))


# -- additions and moves look like their neighbours ------------------------------------------


def _added_and_removed(name: str, op: str) -> tuple[list[str], list[str]]:
    text = TEXTS[name]
    out = patch_text(RAW[name], [CASES[name, op].operation]).text.replace("\r\n", "\n")
    old, new = lines_of(text), lines_of(out)
    added, removed = [], []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed.extend(old[i1:i2])
            added.extend(new[j1:j2])
    return added, removed


def _dash(line: str) -> str:
    """Indentation and dash of a list item line: `    -   `."""
    return re.match(r" *- +", line).group(0)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", CORPUS)
@pytest.mark.parametrize("op", ["insert-step", "append-step"])
def test_an_inserted_step_is_indented_like_its_siblings(name: str, op: str) -> None:
    document = DOCUMENTS[name]
    steps = _step_lists(document)[0]
    sibling = lines_of(document.text)[document.positions[f"{steps}[1]"][0] - 1]
    added, _ = _added_and_removed(name, op)
    added = [line for line in added if line.strip()]  # (with blank lines like its siblings')
    assert added[0] == _dash(sibling) + "name: inserted_step"
    key_column = len(_dash(sibling))
    assert added[1] == " " * key_column + "uses: passthrough"


@pytest.mark.parametrize("name", CORPUS)
def test_a_moved_step_keeps_its_lines_but_for_indentation(name: str) -> None:
    added, removed = _added_and_removed(name, "move-step-to-top")
    # (the blank lines that separated it from its siblings stay behind: spacing only)
    assert [line.lstrip(" ") for line in added] == [
        line.lstrip(" ") for line in removed if line.strip(" \t")
    ]


# -- anchors and aliases: a patch through an alias changes that place only ------------------

ANCHORS = "11_anchors_merge.yaml"


@pytest.mark.parametrize(
    ("operation", "changed"),
    [
        # `config: *defaults` becomes the mapping written out, patched
        ({"op": "replace", "path": "/steps/0/config/timeout_s", "value": 1}, [17]),
        # `with: *shared_with` likewise; the anchor stays on the other use
        ({"op": "replace", "path": "/steps/1/branches/two/steps/0/with/mode", "value": "s"}, [36]),
        # a key added next to `<<: *defaults` overrides the merged one
        (
            {
                "op": "replace",
                "path": "/steps/1/branches/one/steps/0/config/max_retries",
                "value": 1,
            },
            [],
        ),
        # patching the anchored node itself: the first alias becomes the anchor
        ({"op": "replace", "path": "/x-defaults/timeout_s", "value": 1}, [3, 5, 17]),
        ({"op": "replace", "path": "/agents/base/temperature", "value": 1}, [8, 10, 12]),
        ({"op": "replace", "path": "/x-model", "value": "other"}, [6, 9]),
    ],
)
def test_a_patch_through_an_alias_changes_only_that_use(
    operation: dict[str, Any], changed: list[int]
) -> None:
    """`parse` and ruamel share an aliased node between its uses; RFC 6902 (JSON) has
    no sharing, so only the patched use may change."""
    result = patch_text(TEXTS[ANCHORS], [operation])
    assert parse(result.text).data == expected(ANCHORS, [operation])
    assert result.exact
    assert sorted(diff(TEXTS[ANCHORS], result.text).changed) == changed


# -- what the ruamel emitter got wrong -------------------------------------------------------


def test_an_empty_mapping_first_in_a_commented_list_leaves_the_next_item_alone() -> None:
    """ruamel.yaml 0.19's emitter joined the next item's first two keys here (`- name: a
    uses: b`); patches no longer go through the emitter."""
    text = "s:\n  # c1\n  - name: a\n    uses: b\n"
    patch = [{"op": "add", "path": "/s/0", "value": {}}]
    result = patch_text(text, patch)
    assert parse(result.text).data == {"s": [{}, {"name": "a", "uses": "b"}]}
    assert result.text == "s:\n  - {}\n  # c1\n  - name: a\n    uses: b\n"


def test_an_empty_mapping_elsewhere_is_written_back() -> None:
    text = TEXTS["08_comments_docstart.yaml"]
    for pointer in ("/steps/1", "/steps/1/branches/left/steps/1", "/agents/helper/extra"):
        patch = [{"op": "add", "path": pointer, "value": {}}]
        result = patch_text(text, patch)
        assert result.exact
        assert parse(result.text).data == jsonpatch.apply_patch(
            DOCUMENTS["08_comments_docstart.yaml"].data, patch
        )


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("a:b", "'a:b'"),
        ("what?", "'what?'"),
        (["x", "it's"], "[ x, it's ]"),
        ({"k": "v"}, "{ k: v }"),
    ],
)
def test_a_value_added_to_a_spaced_flow_mapping_reads_back_and_keeps_the_spacing(
    value: Any, written: str
) -> None:
    """A new string in a flow collection is quoted when it would not read back plain
    there (`:`, flow indicators). The line keeps `{ a }` spacing."""
    name = "05_flow_spaced.yaml"
    patch = [{"op": "add", "path": "/agents/extractor/output_schema/added", "value": value}]
    result = patch_text(TEXTS[name], patch)
    assert result.exact
    assert parse(result.text).data == expected(name, patch)
    line = lines_of(result.text)[DOCUMENTS[name].positions["agents.extractor.output_schema"][0] - 1]
    assert line.startswith("    output_schema: { type: object, required: [ name, age ],")
    assert line.endswith(f", added: {written} }}")
