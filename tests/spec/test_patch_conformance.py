"""The public conformance suites, on YAML: json-patch/json-patch-tests (Apache-2.0) on
block-YAML renderings of its documents, and yaml/yaml-test-suite (MIT): every case the
spec loader accepts whose document is one mapping gets a top-level key added without a
change to any original line. Both are vendored in tests/conformance/ with their notices;
docs/patch-conformance.md lists the yaml-test-suite cases the loader refuses, and why."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from flujo.spec.edit import PatchError, patch_text
from flujo.spec.errors import SpecError
from flujo.spec.source import parse
from tests.support.patch_diff import diff
from tests.support.specs import ROOT, TESTS

CONFORMANCE = TESTS / "conformance"

# -- json-patch-tests -----------------------------------------------------------------------


def _json_cases() -> list[Any]:
    cases = []
    for name in ("tests.json", "spec_tests.json"):
        for index, case in enumerate(json.loads((CONFORMANCE / "json-patch" / name).read_text())):
            if case.get("disabled"):
                continue
            label = f"{name}:{index}:{case.get('comment', '')[:40]}"
            cases.append(pytest.param(case, id=label))
    return cases


JSON_CASES = _json_cases()


def render(data: Any, mapping: int = 2, sequence: int = 2, offset: int = 0) -> str:
    """`data` as block YAML (flow only for empty collections)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


@pytest.mark.parametrize("style", [(2, 2, 0), (4, 4, 2)], ids=["compact", "indented"])
@pytest.mark.parametrize("case", JSON_CASES)
def test_json_patch_conformance(case: dict[str, Any], style: tuple[int, int, int]) -> None:
    text = render(case["doc"], *style)
    assert parse(text).data == case["doc"]
    if "error" in case:
        with pytest.raises(PatchError):
            patch_text(text, case["patch"])
        return
    result = patch_text(text, case["patch"])
    expected = case.get("expected", case["doc"])
    assert parse(result.text).data == expected
    assert result.spliced


def test_the_json_patch_suite_is_all_there() -> None:
    assert len(JSON_CASES) >= 100
    notice = (CONFORMANCE / "json-patch" / "NOTICE").read_text()
    assert "Apache License" in notice


# -- yaml-test-suite ------------------------------------------------------------------------

SUITE = CONFORMANCE / "yaml-test-suite"
REFUSED_DOC = ROOT / "docs" / "patch-conformance.md"


# Cases where adding a key cannot keep every line: name -> why.
YAML_SUITE_EXCEPTIONS = {
    "L24T-01": "the file ends inside a literal block without a final line break: a key added "
    "after it gives the block's last line a line break, which changes its value",
    "E76Z": "an alias as a key (`*b : *a`): the key is added through ruamel's tree",
    "HMQ5": "an alias as a key (`&a2 baz : *a1`): the key is added through ruamel's tree, "
    "which rewrites the tagged lines",
    "652Z": "ruamel reads `{ ?foo: bar }` as the key `foo`; the suite says `?foo`",
    "DK95-01": "ruamel reads a tab that starts a continuation line of a double-quoted "
    "scalar as a separator; the suite says the scalar ends before it",
    "Y2GN": "ruamel reads the anchor `&an:chor` differently from the suite",
}


def suite_cases() -> dict[str, Path]:
    return {path.name: path for path in sorted((SUITE / "cases").iterdir()) if path.is_dir()}


def refusal(case: Path) -> str | None:
    """Why the spec loader refuses the case's in.yaml (None when it accepts it)."""
    text = (case / "in.yaml").read_bytes().decode("utf-8")
    try:
        parse(text)
    except SpecError as exc:
        return exc.diagnostics[0].code
    return None


def mapping_cases() -> list[str]:
    out = []
    for name, path in suite_cases().items():
        if refusal(path) is None and isinstance(parse((path / "in.yaml").read_text()).data, dict):
            out.append(name)
    return out


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=True, reason=YAML_SUITE_EXCEPTIONS[name])]
            if name in YAML_SUITE_EXCEPTIONS
            else [],
        )
        for name in mapping_cases()
    ],
)
def test_a_key_added_to_a_yaml_test_suite_mapping_changes_no_line(name: str) -> None:
    case = suite_cases()[name]
    text = (case / "in.yaml").read_bytes().decode("utf-8")
    expected = json.loads((case / "in.json").read_text()) if (case / "in.json").exists() else None
    data = parse(text).data
    if expected is not None:
        assert data == expected
    key = "flujo_added"
    while key in data:
        key += "_"
    patch = [{"op": "add", "path": f"/{key}", "value": {"a": [1, "two"]}}]
    result = patch_text(text, patch)
    assert parse(result.text).data == {**data, key: {"a": [1, "two"]}}
    changes = diff(text.replace("\r\n", "\n"), result.text.replace("\r\n", "\n"))
    assert changes.changed <= _flow_tail(text), name
    assert result.spliced


def _flow_tail(text: str) -> frozenset[int]:
    """The lines a key added to a flow mapping (`{ a: 1 }`) may change: from its last
    value's end to its `}` (nothing for a block mapping)."""
    from flujo.spec.source import _compose

    root = _compose(text.replace("\r\n", "\n"), "<string>")
    if not root.flow_style:
        return frozenset()
    last = root.value[-1][1]
    return frozenset(range(last.end_mark.line + 1, root.end_mark.line + 2))


def test_the_refused_yaml_test_suite_cases_are_listed_in_the_docs() -> None:
    listed = {
        line.split("`")[1]: line.split("|")[2].strip()
        for line in REFUSED_DOC.read_text().splitlines()
        if line.startswith("| `")
    }
    refused = {name: refusal(path) for name, path in suite_cases().items()}
    assert listed == {name: why for name, why in refused.items() if why is not None}


# -- docs/patch-conformance.md --------------------------------------------------------------

REASONS = {
    "yaml-syntax": "not YAML the loader accepts: invalid in the suite itself (its error "
    "cases), or a YAML feature a spec never needs that ruamel's parser refuses",
    "tab": "a tab where YAML allows it but the loader refuses tabs in indentation",
    "yaml-tag": "a tag (`!foo`, `!!set`...): specs are plain data",
    "multiple-documents": "several documents in one stream: a spec is one document",
    "empty": "no document at all",
    "duplicate-key": "a key twice in one mapping",
    "complex-key": "a mapping or sequence as a key: spec keys are strings",
    "alias-cycle": "an alias inside the node it refers to",
}


def conformance_markdown() -> str:
    """The text of docs/patch-conformance.md, from the vendored suites."""
    cases = suite_cases()
    refused = {name: why for name, path in cases.items() if (why := refusal(path)) is not None}
    mappings = mapping_cases()
    counts: dict[str, int] = {}
    for why in refused.values():
        counts[why] = counts.get(why, 0) + 1
    lines = [
        "# Patch conformance",
        "",
        "Generated by `.venv/bin/python -m tests.spec.test_patch_conformance`; "
        "tests/spec/test_patch_conformance.py keeps it in sync.",
        "",
        "## JSON Patch (json-patch/json-patch-tests, Apache-2.0)",
        "",
        f"Every enabled case ({len(JSON_CASES)}) passes on two block-YAML renderings of its "
        "document (two-space and four-space indentation): the patched text loads to the "
        "expected document, or the patch is refused with `PatchError`, and it is applied on "
        "the text.",
        "",
        "## YAML test suite (yaml/yaml-test-suite, MIT)",
        "",
        f"{len(cases)} cases; the spec loader accepts {len(cases) - len(refused)}, of which "
        f"{len(mappings)} are one mapping. Adding a top-level key to each changes no original "
        "line (a flow mapping `{ ... }` only on the lines of its last entry and `}`) and "
        f"loads to the expected data, except {len(YAML_SUITE_EXCEPTIONS)}:",
        "",
        "| case | why |",
        "| --- | --- |",
        *(f"| {name} | {why} |" for name, why in sorted(YAML_SUITE_EXCEPTIONS.items())),
        "",
        f"### Cases the loader refuses ({len(refused)})",
        "",
        "| code | cases | why |",
        "| --- | --- | --- |",
        *(f"| {code} | {n} | {REASONS.get(code, code)} |" for code, n in sorted(counts.items())),
        "",
        "in.json: whether the suite gives the case's data as JSON (it does not for its "
        "error cases, which are invalid YAML, nor for data JSON cannot hold, such as "
        "complex keys).",
        "",
        "| case | code | in.json |",
        "| --- | --- | --- |",
        *(
            f"| `{name}` | {why} | "
            + ("yes" if (cases[name] / "in.json").exists() else "no")
            + " |"
            for name, why in sorted(refused.items())
        ),
        "",
    ]
    return "\n".join(lines)


def test_the_conformance_page_is_up_to_date() -> None:
    assert REFUSED_DOC.read_text() == conformance_markdown()


if __name__ == "__main__":
    REFUSED_DOC.write_text(conformance_markdown())
