"""`flujo suggest`, `flujo telemetry import` and the suggestions at the end of `flujo demo`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline
from tests.support.learn import PLANTED, SEEDS, record
from tests.support.specs import ROOT

SPEC = str(SEEDS / "cheaper_model.yaml")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = tmp_path / "runs.db"
    db = RunStore(path)
    for name in ("cheaper_model", "timeouts"):
        record(db, Pipeline.from_yaml(SEEDS / f"{name}.yaml"), PLANTED[name][0])
    db.close()
    return str(path)


def test_suggest_prints_ranked_verified_suggestions(store: str) -> None:
    code, out, _ = invoke("suggest", SPEC, "--store", store)
    assert code == 0
    assert "40 runs (1 spec version, ~" in out
    assert "1. Saves ~$0.00" in out and "/month) with medium risk to quality" in out
    assert "cheaper_model at agents.labeler.model (line 6)" in out
    assert "Verified: validates; 1/1 embedded tests pass (mock)" in out
    assert '"value": "openai:gpt-4o-mini"' in out
    assert "-    model: openai:gpt-4o\n" in out.replace("       -", "-")


def test_suggest_json_is_the_documented_format(store: str) -> None:
    timeouts = str(SEEDS / "timeouts.yaml")
    code, out, _ = invoke("suggest", timeouts, "--store", store, "--json", "--limit", "1")
    assert code == 0
    report = json.loads(out)
    assert report["schema_version"] == 1 and report["agent"] == "offline"
    assert report["telemetry"]["runs"] == 40 and report["opportunities"] == 2
    (item,) = report["suggestions"]  # --limit 1 keeps the best of two
    assert item["kind"] == "frequent_timeouts" and item["risk"] == "low"
    assert set(item) >= {
        "id",
        "headline",
        "why",
        "evidence",
        "savings",
        "quality",
        "confidence",
        "score",
        "patch",
        "diff",
        "verification",
    }
    assert item["patch"] == [{"op": "replace", "path": "/steps/0/config/timeout_s", "value": 10}]
    # the loose timeout is found but not proposed: nothing measured would improve
    assert report["guard"] == {"accepted": 1, "rejected": {}}
    assert [d["reason"] for d in report["dropped"]] == ["no_value"]
    assert report["evidence_modes"] == ["live"]


def test_suggest_without_telemetry_says_how_to_get_some(tmp_path: Path, store: str) -> None:
    code, out, _ = invoke("suggest", SPEC, "--store", str(tmp_path / "none.db"))
    assert code == 0 and "nothing to learn from yet" in out and "flujo demo" in out
    assert not (tmp_path / "none.db").exists()
    clean = str(SEEDS / "clean.yaml")
    code, out, _ = invoke("suggest", clean, "--store", store)
    assert code == 0 and "nothing to learn from yet" in out
    code, out, _ = invoke("suggest", SPEC, "--store", store, "--since", "30m", "--json")
    assert code == 0 and json.loads(out)["telemetry"]["runs"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "soon"), "is not a duration"),
        (("--agent", "claude"), "unknown agent 'claude'"),
        (("--limit", "0"), "0 is not in the range"),
    ],
)
def test_suggest_usage_errors_exit_2(store: str, args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke("suggest", SPEC, "--store", store, *args)
    assert code == 2 and message in err


def test_suggest_on_a_broken_spec_points_to_the_line(tmp_path: Path, store: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: '1'\nsteps:\n  - name: a\n    kind: nope\n")
    code, _, err = invoke("suggest", str(bad), "--store", store)
    assert code == 2 and "bad.yaml:4:" in err and "unknown step kind 'nope'" in err
    code, _, err = invoke("suggest", str(tmp_path / "missing.yaml"), "--store", store)
    assert code == 2 and "no such file" in err


def test_openai_agent_without_a_server_is_a_clear_usage_error(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    code, _, err = invoke("suggest", SPEC, "--store", store, "--agent", "openai:gpt-4.1")
    assert code == 2 and "needs OPENAI_API_KEY" in err and "--agent offline" in err


def test_telemetry_import_merges_a_store_once(tmp_path: Path, store: str) -> None:
    local = str(tmp_path / "local.db")
    code, out, _ = invoke("telemetry", "import", store, "--store", local)
    assert code == 0 and "Imported 80 runs and" in out
    code, out, _ = invoke("telemetry", "import", store, "--store", local)
    assert code == 0 and "Imported 0 runs and 0 spans" in out and "(80 already present)" in out
    code, out, _ = invoke("suggest", SPEC, "--store", local, "--json")
    assert [s["kind"] for s in json.loads(out)["suggestions"]] == ["cheaper_model"]
    junk = tmp_path / "junk.txt"
    junk.write_text("not telemetry")
    code, _, err = invoke("telemetry", "import", str(junk), "--store", local)
    assert code == 2 and "not a Flujo run store (SQLite) nor an OTLP/JSON trace export" in err


def test_the_demo_ends_with_the_planted_suggestion_as_a_local_pull_request(
    tmp_path: Path,
) -> None:
    """`./dev demo`: `flujo demo`, then its top suggestion proposed in a repository of the
    examples (examples/demo_repo.sh, examples/demo_pr.sh), saying its runs were fake."""
    import sys

    store = tmp_path / "demo.db"
    code, out, err = invoke(
        "demo", "--examples", str(ROOT / "examples"), "--repeat", "1", "--store", str(store)
    )
    assert code == 0, out + err
    assert "What the runs suggest" in out
    triage = out[out.index("examples/support_triage.yaml: 20 runs") :]
    assert "1. Saves ~$" in triage and "cheaper_model at agents.classifier.model" in triage
    assert "+    model: openai:gpt-4o-mini" in triage

    repo = tmp_path / "demo-repo"
    examples = ROOT / "examples"
    subprocess.run(["sh", str(examples / "demo_repo.sh"), str(repo)], check=True)
    flujo = str(Path(sys.executable).parent / "flujo")
    done = subprocess.run(
        ["sh", str(examples / "demo_pr.sh"), str(repo), str(store), flujo],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "opened: branch flujo/suggest/" in done.stderr
    [(branch, (_, body, _))] = proposals_in(repo).items()
    changed = git(repo, "diff", "--unified=0", "main", branch)
    assert [line for line in changed.splitlines() if line.startswith(("+ ", "- "))] == [
        "-    model: openai:gpt-4o",
        "+    model: openai:gpt-4o-mini",
    ]
    assert "20 runs counted (20 on the fake model server, not production evidence)" in body


def test_an_unreachable_model_server_is_a_clear_usage_error(store: str) -> None:
    code, _, err = invoke(
        "suggest",
        SPEC,
        "--store",
        store,
        "--agent",
        "openai:gpt-4.1",
        "--base-url",
        "http://127.0.0.1:9/v1",
    )
    assert code == 2 and "the model server failed: Connection error" in err


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def proposals_in(repo: Path) -> dict[str, tuple[str, str, str]]:
    """Each local proposal's branch: (title, body, commit message)."""
    found = {}
    for saved in sorted((repo / ".git" / "flujo" / "pulls").glob("*.json")):
        pull = json.loads(saved.read_text(encoding="utf-8"))
        message = git(repo, "log", "-1", "--format=%B", pull["branch"]).rstrip("\n")
        found[pull["branch"]] = (pull["title"], pull["body"], message)
    return found


def test_create_pr_proposes_a_suggestion_as_the_bot_does(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flujo suggest --create-pr` and the GitHub App make the same branch, title, body and
    commit of a suggestion (`flujo.learn.proposal.proposal_for`), wherever the CLI runs."""
    import asyncio

    from flujo.bot.local import LocalForge
    from flujo.bot.suggestion_prs import propose_suggestions

    spec_text = (SEEDS / "cheaper_model.yaml").read_text(encoding="utf-8")
    for name in ("by_cli", "by_bot"):
        repo = tmp_path / name
        (repo / "flujo").mkdir(parents=True)
        (repo / "flujo" / "cheaper_model.yaml").write_text(spec_text, encoding="utf-8")
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "start")
    monkeypatch.chdir(tmp_path)  # outside the repository: the spec is still named by its path in it
    spec = tmp_path / "by_cli" / "flujo" / "cheaper_model.yaml"
    code, _, err = invoke("suggest", str(spec), "--store", store, "--create-pr")
    assert code == 0 and "opened: branch flujo/suggest/" in err

    async def bot() -> list[str]:
        db = RunStore(Path(store))
        try:
            forge = LocalForge(tmp_path / "by_bot")
            outcome = await propose_suggestions(forge, "by_bot", store=db)
            return [p.pull.branch for p in outcome.proposed]
        finally:
            db.close()

    branches = asyncio.run(bot())
    by_cli, by_bot = proposals_in(tmp_path / "by_cli"), proposals_in(tmp_path / "by_bot")
    assert branches and sorted(branches) == sorted(by_bot)
    assert by_cli == by_bot
    title, _, message = by_bot[branches[0]]
    assert title.startswith("flujo: ") and message.startswith(f"{title}\n\n")
    assert "\n\nFlujo-Suggestion: " in message
    diff = git(tmp_path / "by_cli", "diff", "--stat", "main", branches[0])
    assert "flujo/cheaper_model.yaml | 2 +-" in diff


def test_savings_are_priced_with_the_repositorys_own_prices(tmp_path: Path, store: str) -> None:
    repo = tmp_path / "repo"
    (repo / ".github").mkdir(parents=True)
    spec = repo / "cheaper_model.yaml"
    spec.write_text(Path(SPEC).read_text())
    args = ("suggest", str(spec), "--store", store, "--json", "--limit", "1")
    _, out, _ = invoke(*args)
    builtin = json.loads(out)
    (repo / ".github" / "flujo.yml").write_text(
        "prices:\n  models:\n    openai:gpt-4o: {input: 250.0, output: 1000.0, as_of: 2026-12-01}\n"
    )
    code, out, _ = invoke(*args)
    own = json.loads(out)
    assert code == 0
    assert own["prices_version"] != builtin["prices_version"]
    saved = [r["suggestions"][0]["savings"]["usd_per_run"] for r in (builtin, own)]
    assert saved[1] > 50 * saved[0] > 0
