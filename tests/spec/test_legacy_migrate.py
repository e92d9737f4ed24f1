"""`flujo migrate`: 0.x blueprints rewritten in the current format, loading to the same
model, with everything that did not change kept as written."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.spec.legacy.lenient import LENIENT_COMMENT
from flujo.spec.legacy.migrate import migrate
from tests.support.legacy import load

BLUEPRINTS = ["support.yaml", "control.yaml", "sub/cleanup.yaml"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["migrate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_the_migrated_file_is_current_format_and_loads_to_the_same_model(
    name: str, copy: Path
) -> None:
    path = copy / name
    before = load(path)
    migration = migrate(path)
    assert migration.changed
    path.write_text(migration.text, encoding="utf-8")
    after = load(path)
    assert after.source is not None and not after.source.legacy and after.source.lenient
    assert after == before
    assert {a: p == before.imported[a] for a, p in after.imported.items()} == {
        a: True for a in before.imported
    }
    assert not migrate(path).changed  # migrating twice changes nothing


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_comments_and_untouched_lines_are_kept(name: str, copy: Path) -> None:
    path = copy / name
    original = path.read_text(encoding="utf-8").splitlines()
    migrated = migrate(path).text.splitlines()
    for line in original:
        if line.lstrip().startswith("#"):
            assert line in migrated, line
    # lines outside the converted constructs survive byte for byte, in order
    matcher = difflib.SequenceMatcher(None, original, migrated, autojunk=False)
    assert sum(block.size for block in matcher.get_matching_blocks()) >= len(original) // 2


def test_the_diff_shows_only_what_changes(copy: Path) -> None:
    diff = migrate(copy / "control.yaml").diff()
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and line[1:2] != "-"]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and line[1:2] != "+"]
    assert "    sink_to: approval" not in removed  # the current format has it too
    assert "    loop:" in removed and "    body:" in added
    assert "    kind: StateMachine" in removed and "    kind: state_machine" in added
    assert '    message: "Publish {{ input.title }}?"' not in removed  # untouched


def test_cli_prints_a_diff_by_default_and_changes_nothing(copy: Path) -> None:
    before = (copy / "support.yaml").read_text(encoding="utf-8")
    code, out, err = invoke(str(copy / "support.yaml"))
    assert code == 0
    assert out.startswith("--- a/") and '+version: "1"' in out
    assert "warning: `merge_strategy` has no effect" in err
    assert (copy / "support.yaml").read_text(encoding="utf-8") == before


def test_cli_check_exits_1_when_a_file_would_change(copy: Path) -> None:
    code, out, err = invoke("--check", str(copy / "control.yaml"))
    assert (code, out) == (1, "")
    assert "control.yaml: would be migrated" in err
    code, _, err = invoke("--check", str(Path("examples/support_triage.yaml")))
    assert code == 0 and "already in the current format" in err


def test_cli_in_place_rewrites_files_that_then_validate(copy: Path) -> None:
    files = [str(copy / name) for name in BLUEPRINTS]
    code, _, err = invoke("--in-place", *files)
    assert code == 0, err
    assert err.count(": migrated") == 3
    assert invoke("--check", *files)[0] == 0
    strict = [f for f in files if not f.endswith("control.yaml")]
    result = CliRunner().invoke(cli, ["validate", "--strict", *strict])
    assert result.exit_code == 0, result.output
    # control.yaml maps over `context.tags`, which only the run's input provides
    result = CliRunner().invoke(cli, ["validate", str(copy / "control.yaml")])
    assert result.exit_code == 0, result.output
    assert "warning: no step writes context key 'tags'" in result.output


def test_cli_crlf_files_keep_their_line_endings(copy: Path) -> None:
    path = copy / "sub" / "cleanup.yaml"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert invoke("--in-place", str(path))[0] == 0
    data = path.read_bytes()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_cli_refuses_files_with_errors_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - name: x\n    kind: cache\n", encoding="utf-8")
    code, out, err = invoke(str(bad), str(tmp_path / "nope.yaml"))
    assert code == 2 and out == ""
    assert "bad.yaml:2:5: error: 'x' is missing required key 'wrapped_step'" in err
    assert "not migrated" in err and "no such file" in err
    assert invoke(str(bad))[0] == 1


def test_yaml_11_on_keys_become_on_and_boolean_branch_keys_keep_their_meaning(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sm.yaml"
    path.write_text(
        "steps:\n"
        "  - name: sm\n"
        "    kind: StateMachine\n"
        "    start_state: a\n"
        "    states: {a: [{name: x}]}\n"
        "    transitions:\n"
        "      - {from: a, true: success, to: a, when: 'False'}  # as a YAML 1.1 tool wrote it\n"
        "  - name: pick\n"
        "    kind: conditional\n"
        "    condition_expression: 'True'\n"
        "    branches:\n"
        "      true: [{name: y}]\n",
        encoding="utf-8",
    )
    before = load(path)
    text = migrate(path).text
    [rule] = [line for line in text.splitlines() if "from: a" in line]
    assert rule.startswith("      - {from: a, on: success, to: a, when: 'False'}")
    assert rule.endswith("# as a YAML 1.1 tool wrote it")
    # the bare list is wrapped (`{steps: […]}`, its own text kept); the key is written
    # as the string the branch is named by
    assert '      "true":\n        steps: [{name: y}]\n' in text
    path.write_text(text, encoding="utf-8")
    assert load(path) == before


def test_migrate_splices_the_text_keys_renamed_in_place_with_their_comments(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.yaml"
    text = (
        "# header\n"
        "steps:\n"
        "  - step: pick   # the router\n"
        "    kind: conditional\n"
        "    condition_expression: \"'a'\"\n"
        "    branches:\n"
        "      a:\n"
        "        steps:\n"
        "          - name: one   # first\n"
        "    default_branch:   # otherwise\n"
        "      steps:\n"
        "        - name: two\n"
    )
    path.write_text(text, encoding="utf-8")
    migrated = migrate(path).text
    assert migrated == (
        "# header\n"
        f"{LENIENT_COMMENT}\n"
        'version: "1"\n'
        "steps:\n"
        "  - name: pick   # the router\n"
        "    kind: conditional\n"
        "    condition_expression: \"'a'\"\n"
        "    branches:\n"
        "      a:\n"
        "        steps:\n"
        "          - name: one   # first\n"
        "    default:   # otherwise\n"
        "      steps:\n"
        "        - name: two\n"
    )


KEPT = (
    "# searches\n"
    "steps:\n"
    "  - name: first\n"
    "    agent: { id: flujo.builtins.passthrough }\n"
    "  - name: search   # the 0.x search\n"
    "    kind: tree_search\n"
    "    proposer: agents.p\n"
    "  - name: again\n"
    "    kind: loop\n"
    "    loop:\n"
    "      body:\n"
    "        - name: wrapped\n"
    "          kind: cache\n"
    "          wrapped_step: {name: inner, kind: loop, loop: {body: [{name: x}]}}\n"
    "      max_loops: 2\n"
)


def test_steps_the_current_format_cannot_say_are_kept_as_written_under_a_comment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "search.yaml"
    path.write_text(KEPT, encoding="utf-8")
    migration = migrate(path)
    assert [d.yaml_path for d in migration.kept] == [
        "steps[1].kind",
        "steps[2].loop.body[0].wrapped_step",
    ]
    assert migration.text == (
        "# searches\n"
        f"{LENIENT_COMMENT}\n"
        'version: "1"\n'
        "steps:\n"
        "  - name: first\n"
        "    uses: flujo.builtins:passthrough\n"
        "  # flujo migrate: kept in its 0.x form: step kind 'tree_search' is not supported by"
        " this Flujo: write a `loop` over proposer and evaluator agents, or an `agentic_loop`"
        " whose planner calls them as tools\n"
        "  - name: search   # the 0.x search\n"
        "    kind: tree_search\n"
        "    proposer: agents.p\n"
        "  - name: again\n"
        "    kind: loop\n"
        "    max_loops: 2\n"
        "    body:\n"
        "      steps:\n"
        "        # flujo migrate: kept in its 0.x form: a cache step wraps a plain step\n"
        "        - name: wrapped\n"
        "          kind: cache\n"
        "          wrapped_step: {name: inner, kind: loop, loop: {body: [{name: x}]}}\n"
    )
    path.write_text(migration.text, encoding="utf-8")
    again = migrate(path)  # the rest is current: nothing more to do, the kept steps named
    assert not again.changed and len(again.kept) == 2
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "search.yaml:9:5: error: step kind 'tree_search' is not supported" in result.output


def test_cli_says_which_steps_were_kept_and_exits_4(tmp_path: Path) -> None:
    path = tmp_path / "search.yaml"
    path.write_text(KEPT, encoding="utf-8")
    code, out, err = invoke("--in-place", str(path))
    assert (code, out) == (4, "")
    assert "search.yaml: migrated; 2 steps kept in the 0.x form" in err
    assert "search.yaml:6:5: error: step kind 'tree_search'" in err
    assert path.read_text(encoding="utf-8").count("# flujo migrate: kept") == 2
    code, _, err = invoke("--check", str(path))
    assert code == 4 and "already in the current format; 2 steps kept" in err
    # an error in the file still refuses it whole, and wins over 4
    bad = tmp_path / "bad.yaml"
    bad.write_text(KEPT + "  - {kind: cache, name: c}\n", encoding="utf-8")
    code, out, err = invoke(str(path), str(bad))
    assert code == 1 and "bad.yaml: not migrated" in err
