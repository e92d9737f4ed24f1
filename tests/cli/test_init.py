"""`flujo init`: a new repository's first hour, following the README's path with the CLI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.spec.config import find_config, load_config


def flujo(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLUJO_STORE")  # as a user has it: the run store in .flujo/
    (tmp_path / ".git").mkdir()  # the repository root (as `git init` makes it)
    return tmp_path


def test_init_then_test_passes_then_a_break_fails_with_its_message_then_the_fix_passes(
    repo: Path,
) -> None:
    code, out, err = flujo("init")
    assert code == 0, err
    spec = repo / "flujo" / "triage.yaml"
    assert f"wrote {Path('flujo/triage.yaml')}" in out
    # the sample is found where the repository's config says specs are
    assert load_config(find_config(repo)).is_spec("flujo/triage.yaml")
    assert list((repo / "flujo" / "cassettes" / "triage").glob("*.json"))
    assert ".flujo/" in (repo / ".gitignore").read_text().splitlines()

    code, out, err = flujo("validate", "flujo/")
    assert code == 0 and "1 file checked, all valid" in out + err
    code, out, _ = flujo("test")  # offline: the writer's reply is replayed from the cassette
    assert code == 0, out
    assert out.splitlines()[-1] == "1 passed, 0 failed"

    # a new user breaks it: the billing branch renamed, so billing tickets get no reply
    good = spec.read_text()
    spec.write_text(good.replace("      billing:\n", "      refunds:\n"))
    code, out, _ = flujo("test")
    assert code == 1
    assert "FAIL flujo/triage.yaml::a double charge gets a billing reply" in out
    shown = "assertion steps.billing_reply.success (line 51): steps has no key 'billing_reply'"
    assert shown in out and shown in README  # the README shows this very failure
    assert out.splitlines()[-1] == "0 passed, 1 failed"

    spec.write_text(good)  # the fix
    code, out, _ = flujo("test")
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed"


README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=True).stdout


def test_the_readme_path_goes_on_to_the_checks_and_a_local_suggestion_pull_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's commands after `flujo test`, in a real git repository."""
    path = [
        "flujo init",
        "flujo validate flujo/",
        "flujo test",
        "flujo bot local",
        "flujo run flujo/triage.yaml --inputs flujo/inputs/triage.jsonl --fake",
        "flujo suggest flujo/triage.yaml --include fake --create-pr",
    ]
    for command in path:
        assert re.search(rf"^{re.escape(command)}( |$)", README, re.M), command
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLUJO_STORE")  # as a user has it: the run store in .flujo/
    git(tmp_path, "init", "--quiet", "--initial-branch=main")
    assert flujo("init")[0] == 0
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "--quiet", "-m", "Triage pipeline")
    code, out, err = flujo("bot", "local")
    assert code == 0, out + err
    for check in ("flujo/validate", "flujo/test", "flujo/policy"):
        assert f"✓ {check}: success" in out
    code, out, err = flujo(*path[4].split()[1:])
    assert code == 0 and "5 succeeded, 0 failed" in out, out + err
    code, out, err = flujo(*path[5].split()[1:])
    assert code == 0, out + err
    assert "cheaper_model at agents.classifier.model" in out
    (branch,) = git(tmp_path, "branch", "--list", "flujo/suggest/*").split()
    change = git(tmp_path, "diff", "main", branch, "--unified=0")
    changed = [
        line for line in change.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == ["-    model: openai:gpt-4o", "+    model: openai:gpt-4o-mini"]


def test_init_into_a_new_folder_records_nothing_in_the_run_store(tmp_path: Path) -> None:
    target = tmp_path / "new" / "repo"
    code, _, err = flujo("init", str(target))
    assert code == 0, err
    assert (target / "flujo" / "triage.yaml").is_file()
    assert (target / ".github" / "flujo.yml").is_file()
    assert not (target / ".flujo").exists()


def test_init_refuses_to_overwrite_and_names_what_exists(repo: Path) -> None:
    (repo / ".github").mkdir()
    (repo / ".github" / "flujo.yml").write_text("specs: ['pipelines/*.yaml']\n")
    (repo / ".gitignore").write_text("node_modules/")
    code, _, err = flujo("init")
    assert code == 2
    assert "not overwriting what exists: " in err and str(Path(".github/flujo.yml")) in err
    assert (repo / ".github" / "flujo.yml").read_text() == "specs: ['pipelines/*.yaml']\n"
    assert not (repo / "flujo").exists()
    assert (repo / ".gitignore").read_text() == "node_modules/"


def test_init_adds_to_an_existing_gitignore_once(repo: Path) -> None:
    (repo / ".gitignore").write_text("node_modules/")
    assert flujo("init")[0] == 0
    assert (repo / ".gitignore").read_text() == "node_modules/\n.flujo/\n"
    for path in (repo / "flujo", repo / ".github"):
        import shutil

        shutil.rmtree(path)
    assert flujo("init")[0] == 0
    assert (repo / ".gitignore").read_text() == "node_modules/\n.flujo/\n"
