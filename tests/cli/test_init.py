"""`flujo init`: a new repository's first hour, following the README's path with the CLI."""

from __future__ import annotations

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
    assert "assertion steps.billing_reply.success (line " in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"

    spec.write_text(good)  # the fix
    code, out, _ = flujo("test")
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed"


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
