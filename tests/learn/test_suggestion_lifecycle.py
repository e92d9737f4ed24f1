"""One id per suggestion (the CLI, the branch, the pull request body) and its local
lifecycle: `--accept`/`--reject` record feedback, and a suggestion branch merged or deleted
in a real git repository is recorded on the next `flujo suggest`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline
from tests.support.gitrepo import git, repo_with
from tests.support.learn import PLANTED, SEEDS, record


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """A git repository holding the cheaper_model seed, its runs in a store outside it."""
    text = (SEEDS / "cheaper_model.yaml").read_text(encoding="utf-8")
    root = repo_with(tmp_path / "repo", {"flows/triage.yaml": text})
    spec = root / "flows" / "triage.yaml"
    store = tmp_path / "runs.db"
    db = RunStore(store)
    record(db, Pipeline.from_yaml(spec), PLANTED["cheaper_model"][0])
    db.close()
    monkeypatch.chdir(tmp_path)
    return root, spec, str(store)


def suggestions(spec: Path, store: str) -> list[dict[str, object]]:
    code, out, _ = invoke("suggest", str(spec), "--store", store, "--json")
    assert code == 0
    return list(json.loads(out)["suggestions"])


def test_one_id_in_the_cli_the_branch_and_the_pull_request_body(
    repo: tuple[Path, Path, str],
) -> None:
    root, spec, store = repo
    (item,) = suggestions(spec, store)
    ident = str(item["id"])
    code, out, _ = invoke("suggest", str(spec), "--store", store)
    assert f"[id {ident}]" in out
    code, _, err = invoke("suggest", str(spec), "--store", store, "--create-pr")
    assert code == 0 and f"branch flujo/suggest/{ident} " in err
    assert git(root, "branch", "--list", f"flujo/suggest/{ident}").strip()
    (pull,) = (root / ".git" / "flujo" / "pulls").glob("*.json")
    body = json.loads(pull.read_text())["body"]
    assert f"suggestion `{ident}`" in body
    assert f"`flujo suggest flows/triage.yaml --reject {ident} --reason 'why'`" in body
    message = git(root, "log", "-1", "--format=%B", f"flujo/suggest/{ident}")
    assert f"Flujo-Suggestion: {ident}" in message
    # What the pull request promises is kept for `flujo roi` (realised beside promised).
    from flujo.engine.store import RunStore
    from flujo.learn.roi_figures import suggestion_figures

    db = RunStore(store)
    try:
        (figures,) = suggestion_figures(db, ident)
    finally:
        db.close()
    assert figures.state == "open" and figures.spec == "flows/triage.yaml"
    assert figures.promise is not None
    assert round(figures.promise.usd_per_month, 4) == item["savings"]["usd_per_month"]


def test_reject_records_the_reason_and_the_suggestion_is_not_made_again(
    repo: tuple[Path, Path, str],
) -> None:
    _, spec, store = repo
    (item,) = suggestions(spec, store)
    ident = str(item["id"])
    code, _, err = invoke("suggest", str(spec), "--store", store, "--reject", ident)
    assert code == 2 and "--reject needs --reason" in err
    code, _, err = invoke(
        "suggest", str(spec), "--store", store, "--reject", "beef00", "--reason", "x"
    )
    assert code == 2 and "no suggestion beef00 for flows/triage.yaml" in err
    code, out, _ = invoke(
        "suggest", str(spec), "--store", store, "--reject", ident[:6], "--reason", "labels drift"
    )
    assert (
        code == 0 and f"suggestion {ident} (cheaper_model at agents.labeler.model) rejected" in out
    )
    assert suggestions(spec, store) == []
    code, out, _ = invoke("suggest", str(spec), "--store", store, "--history", "--json")
    (entry,) = json.loads(out)
    assert (entry["id"], entry["verdict"], entry["reason"]) == (ident, "rejected", "labels drift")


def test_accept_records_an_acceptance(repo: tuple[Path, Path, str]) -> None:
    _, spec, store = repo
    (item,) = suggestions(spec, store)
    code, out, _ = invoke("suggest", str(spec), "--store", store, "--accept", str(item["id"]))
    assert code == 0 and "accepted" in out
    code, out, _ = invoke("suggest", str(spec), "--store", store, "--history")
    assert f"accepted  {item['id']}  by " in out


def test_a_merged_branch_is_recorded_as_accepted_on_the_next_run(
    repo: tuple[Path, Path, str],
) -> None:
    root, spec, store = repo
    code, _, _ = invoke("suggest", str(spec), "--store", store, "--create-pr")
    (item,) = suggestions(spec, store)
    branch = f"flujo/suggest/{item['id']}"
    git(root, "merge", "-q", "--no-ff", "-m", "merge", branch)
    code, out, err = invoke("suggest", str(spec), "--store", store)
    assert code == 0
    assert f"suggestion {item['id']}: branch {branch} merged into main: recorded as accepted" in err
    code, out, _ = invoke("suggest", str(spec), "--store", store, "--history", "--json")
    assert [(e["id"], e["verdict"]) for e in json.loads(out)] == [(item["id"], "accepted")]
    git(root, "branch", "-q", "-d", branch)  # deleted after its merge: still accepted, once
    code, out, err = invoke("suggest", str(spec), "--store", store)
    assert "recorded as" not in err


def test_a_deleted_branch_is_recorded_as_rejected_on_the_next_run(
    repo: tuple[Path, Path, str],
) -> None:
    root, spec, store = repo
    invoke("suggest", str(spec), "--store", store, "--create-pr")
    (item,) = suggestions(spec, store)
    branch = f"flujo/suggest/{item['id']}"
    code, _, err = invoke("suggest", str(spec), "--store", store)
    assert "recorded as" not in err  # still open
    git(root, "branch", "-q", "-D", branch)
    code, out, err = invoke("suggest", str(spec), "--store", store, "--json")
    assert code == 0 and json.loads(out)["suggestions"] == []
    assert f"branch {branch} deleted without being merged into main: recorded as rejected" in err
    dropped = json.loads(out)["dropped"]
    assert [d["reason"] for d in dropped] == ["previously_rejected"]
