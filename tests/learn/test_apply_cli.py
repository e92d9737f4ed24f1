"""`flujo suggest SPEC --apply ID [--tier low]`: patch, check, commit; or restore the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.store import RunStore
from flujo.learn.suggestion_log import suggestion_id
from flujo.spec.model import Pipeline
from tests.support.gitrepo import git
from tests.support.learn import PLANTED, SEEDS, record

# frequent_timeouts at steps[0] (timeout_s 5 -> 10), named by the spec's path in its repository
TIMEOUT_ID = suggestion_id("flujo/timeouts.yaml", "frequent_timeouts", "steps[0]")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / "flujo").mkdir(parents=True)
    (root / "flujo" / "timeouts.yaml").write_bytes((SEEDS / "timeouts.yaml").read_bytes())
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    for name, value in (("NAME", "t"), ("EMAIL", "t@example.com")):
        monkeypatch.setenv(f"GIT_AUTHOR_{name}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{name}", value)
    db = RunStore(tmp_path / "runs.db")
    record(db, Pipeline.from_yaml(SEEDS / "timeouts.yaml"), PLANTED["timeouts"][0])
    db.close()
    return root


def apply(repo: Path, *extra: str) -> tuple[int, str]:
    spec = repo / "flujo" / "timeouts.yaml"
    store = repo.parent / "runs.db"
    result = CliRunner().invoke(cli, ["suggest", str(spec), "--store", str(store), *extra])
    return result.exit_code, result.output


def test_a_low_suggestion_is_applied_checked_and_committed(repo: Path) -> None:
    code, out = apply(repo, "--apply", TIMEOUT_ID, "--tier", "low")
    assert code == 0, out
    assert "Tier **low**: sets timeout_s of `draft` to 10" in out
    assert "flujo/test: success" in out
    assert git(repo, "status", "--porcelain") == ""
    message = git(repo, "log", "-1", "--format=%B")
    assert "Flujo-Tier: low" in message and "Flujo-Suggestion: " in message
    diff = git(repo, "show", "--format=", "HEAD")
    assert "-      timeout_s: 5\n+      timeout_s: 10\n" in diff
    assert diff.count("\n+ ") + diff.count("\n- ") == 2  # only the patched line
    history = CliRunner().invoke(
        cli,
        [
            "suggest",
            str(repo / "flujo" / "timeouts.yaml"),
            "--store",
            str(repo.parent / "runs.db"),
            "--history",
        ],
    )
    assert "accepted" in history.output


def test_a_failing_test_restores_the_file_byte_for_byte(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = repo / "flujo" / "timeouts.yaml"
    # A test that fails once the timeout changes: the patched spec must not be committed.
    text = spec.read_text(encoding="utf-8").replace(
        "      - \"output == 'ok'\"",
        "      - \"output == 'ok'\"\n  - name: pins the timeout\n    input: {text: hi}\n"
        "    mocks: {draft: d, check: ok}\n    assertions:\n      - \"steps.draft.output == 'd'\"",
    )
    spec.write_text(text.replace("\n", "\r\n"), encoding="utf-8")  # CRLF must survive too
    git(repo, "commit", "-qam", "crlf")
    original = spec.read_bytes()
    head = git(repo, "rev-parse", "HEAD")

    from flujo.cli import apply as apply_module

    real = apply_module._checks
    calls = []

    def failing_after_patch(root: Path, key: str, config: str | None):  # type: ignore[no-untyped-def]
        calls.append(spec.read_bytes())
        outputs = real(root, key, config)
        if len(calls) == 2:  # the patched spec: its test fails
            from dataclasses import replace

            outputs = [
                replace(o, conclusion="failure", title="1 failed") if o.name == "flujo/test" else o
                for o in outputs
            ]
        return outputs

    monkeypatch.setattr(apply_module, "_checks", failing_after_patch)
    code, out = apply(repo, "--apply", TIMEOUT_ID)
    assert code == 1, out
    assert "flujo/test: failure: 1 failed" in out and "is as it was" in out
    assert calls[1] != original  # the patched file was checked
    assert spec.read_bytes() == original
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""


def test_a_tier_above_the_one_asked_is_not_applied(repo: Path) -> None:
    config = repo / ".github" / "flujo.yml"
    config.parent.mkdir()
    config.write_text("auto_apply:\n  bounds:\n    timeout_s_max: 8\n", encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bounds")
    original = (repo / "flujo" / "timeouts.yaml").read_bytes()
    code, out = apply(repo, "--apply", TIMEOUT_ID, "--tier", "low")
    assert code == 1
    assert "tier high is above --tier low" in out and "outside the repository's bounds (5–8)" in out
    assert (repo / "flujo" / "timeouts.yaml").read_bytes() == original


def test_uncommitted_changes_and_unknown_ids_are_refused(repo: Path) -> None:
    code, out = apply(repo, "--apply", "000000000000")
    assert code == 1 and f"suggestions now: {TIMEOUT_ID}" in out
    spec = repo / "flujo" / "timeouts.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    code, out = apply(repo, "--apply", TIMEOUT_ID)
    assert code == 2 and "uncommitted changes" in out
    assert spec.read_text(encoding="utf-8").endswith("# mine\n")
    code, out = apply(repo, "--tier", "low")
    assert code == 2 and "--tier goes with --apply" in out
