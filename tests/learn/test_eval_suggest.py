"""Done-when of the evidence issue: a spec run live (the fake model server started as a
separate local HTTP server, used through its URL, so the runs' mode is `live`) with capture
on, then `flujo suggest` and `flujo eval` on its model-swap suggestion, give a pull request
body whose "Quality evidence" states the measured agreement; with only fake runs, the same
suggestion says "not measured"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.fake_openai import FakeBehaviour, FakeOpenAI
from flujo.engine.session import SessionOptions, run_many
from flujo.spec.model import Pipeline
from tests.learn.test_evaluate import DIFFERENT_EVERY, SPEC, N, inputs, responder

DESCRIBED = SPEC.replace(
    "  - name: classify\n",
    "  - name: classify\n    description: Routes each support ticket to a team.\n",
)


@contextlib.contextmanager
def server_in_thread() -> Iterator[str]:
    """The fake model server on its own event loop and thread: a separate local server."""
    loop = asyncio.new_event_loop()
    server = FakeOpenAI(FakeBehaviour(responder=responder))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "flows").mkdir(parents=True)
    (repo / "flows" / "triage.yaml").write_text(DESCRIBED, encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    return repo


def pr_body(repo: Path) -> str:
    (saved,) = sorted((repo / ".git" / "flujo" / "pulls").glob("*.json"))
    return str(json.loads(saved.read_text(encoding="utf-8"))["body"])


def record(spec: Path, store: Path, base_url: str | None) -> None:
    options = (
        SessionOptions(base_url=base_url, store=store, export=False)
        if base_url
        else SessionOptions(fake=True, store=store, export=False)
    )
    results = asyncio.run(run_many(Pipeline.from_yaml(spec), inputs(), options))
    assert {r.mode for r in results} == ({"live"} if base_url else {"fake"})


def test_live_capture_then_eval_gives_measured_quality_evidence(
    tmp_path: Path,
) -> None:
    repo = repository(tmp_path)
    spec = repo / "flows" / "triage.yaml"
    store = str(tmp_path / "flujo.db")
    with server_in_thread() as url:
        record(spec, Path(store), url)
        code, out, err = invoke("suggest", str(spec), "--store", store, "--json")
        assert code == 0, err
        (swap,) = [s for s in json.loads(out)["suggestions"] if s["kind"] == "cheaper_model"]
        assert swap["quality_evidence"]["measured"] is False
        assert (
            "not measured: `flujo eval` not run on this change"
            in swap["quality_evidence"]["summary"]
        )
        assert swap["risk"] != "low"
        patch = tmp_path / "swap.json"
        patch.write_text(json.dumps(swap), encoding="utf-8")
        code, out, err = invoke(
            "eval",
            str(spec),
            "--patch",
            str(patch),
            "--store",
            store,
            "--base-url",
            url,
            "--json",
            "--min-agreement",
            "0.5",
        )
        assert code == 0, err
        report = json.loads(out)
        assert report["mode"] == "live" and report["examples"] == N
        low, high = report["interval_95"]
        assert low <= 1 - 1 / DIFFERENT_EVERY <= high
        # the CI gate: exit 1 below the bar
        code, _, err = invoke(
            "eval",
            str(spec),
            "--patch",
            str(patch),
            "--store",
            store,
            "--base-url",
            url,
            "--min-agreement",
            "0.95",
        )
        assert code == 1 and "below --min-agreement 95%" in err
    code, out, err = invoke("suggest", str(spec), "--store", store, "--create-pr")
    assert code == 0, err
    assert "Quality evidence: `flujo eval`: the changed step (classify) agreed" in out
    body = pr_body(repo)
    first = "\n".join(body.splitlines()[:18])
    # A fresh reader of the first lines learns what the step does, what it saves, what
    # could go wrong and how well the new model agreed.
    assert "Saves" in first and "/month" in first  # what it saves
    assert (  # what the step does and what its output decides
        "**The step:** \\`classify\\` Routes each support ticket to a team; its output is what "
        "the pipeline returns." in first
    )
    assert (  # what could go wrong
        "**Watch for:** the smaller model answers \\`classify\\` wrongly or in another shape: "
        "the answer people get is worse" in first
    )
    assert "Risk: 🟡 medium" in first  # 80% agreement: not low, though only displayed
    agreed = N - N // DIFFERENT_EVERY
    assert f"agreed with today's outputs on {agreed} of {N} captured live examples (80%" in first
    assert "runs/month is their observed rate" in first  # where the extrapolation comes from
    assert "`flows/triage.yaml`" in first and "openai:gpt-4o → openai:gpt-4o-mini" in first
    assert "tests: wiring only" in first  # the only test mocks `classify`


def test_only_fake_runs_say_not_measured(tmp_path: Path) -> None:
    repo = repository(tmp_path)
    spec = repo / "flows" / "triage.yaml"
    store = str(tmp_path / "flujo.db")
    record(spec, Path(store), None)
    code, _, err = invoke(
        "suggest", str(spec), "--store", store, "--include", "fake", "--create-pr"
    )
    assert code == 0, err
    body = pr_body(repo)
    assert "**Quality evidence:** not measured: no captured examples of live runs" in body
    assert "tests mock \\`classify\\`" in body  # escaped as literal Markdown
    assert "Risk: 🟡 medium" in body
    assert "tests 1/1 passed" not in body
