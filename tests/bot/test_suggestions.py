"""The suggestion cycle end to end on the fake GitHub: telemetry over OTLP → suggestion →
pull request with a reviewable body → closed unmerged → never proposed again."""

from __future__ import annotations

import asyncio
import difflib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from flujo.bot.queue import Delivery
from flujo.bot.suggestion_prs import BRANCH_PREFIX, suggest_delivery
from flujo.engine.agents import OpenAIModels
from flujo.engine.fake_openai import FakeOpenAI
from flujo.engine.pricing import table_version
from flujo.engine.runner import Runner
from flujo.engine.telemetry import OTelExport
from flujo.learn.feedback import is_rejected
from flujo.spec.model import Pipeline
from tests.support.bot_world import REPO, World
from tests.support.mermaid import assert_mermaid
from tests.support.specs import ROOT


@pytest.fixture
async def world(sqlite_world: World) -> World:
    """The embedded SQLite queue only (timers wait on the clock this test moves);
    `each_queue`: on each database."""
    return sqlite_world


SPEC = "flujo/support_triage.yaml"


def repository_files() -> dict[str, str]:
    files = {SPEC: (ROOT / "examples" / "support_triage.yaml").read_text(encoding="utf-8")}
    for cassette in sorted((ROOT / "examples" / "cassettes" / "support_triage").glob("*.json")):
        files[f"flujo/cassettes/support_triage/{cassette.name}"] = cassette.read_text()
    return files


def cycle_now(name: str) -> Delivery:
    """A suggestion cycle due now (the bot's own are due `suggest_delay_s` after telemetry)."""
    scheduled = suggest_delivery(REPO, 42, 3600, time.time())
    return replace(scheduled, delivery_id=f"{scheduled.delivery_id}:{name}", not_before=0.0)


async def send_telemetry(url: str, token: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the spec as a customer would, exporting spans to the bot over OTLP/HTTP."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{token}")
    # One export at the end, as a batch job's would be (the cycle then sees every run).
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100000")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100000")
    pipeline = Pipeline.from_yaml(ROOT / "examples" / "support_triage.yaml")
    inputs = [
        json.loads(line)
        for line in (ROOT / "examples" / "inputs" / "support_triage.jsonl").read_text().splitlines()
        if line.strip()
    ]
    export = OTelExport.from_environment()
    async with FakeOpenAI() as server:
        models = OpenAIModels(base_url=server.base_url)
        try:
            runner = Runner(pipeline, models=models, export=export)
            for _ in range(3):
                for value in inputs:
                    await runner.run(value)
        finally:
            await models.close()
            await asyncio.to_thread(export.shutdown)
    return 3 * len(inputs)


async def test_telemetry_becomes_a_pull_request_that_a_rejection_retires(
    each_queue: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = each_queue
    fake = world.fake
    files = repository_files()
    base = fake.create_repo(REPO, files, installation_id=42)
    world.settings = world.settings.model_copy(update={"suggest_delay_s": 3600})
    bot = await world.start()
    # The cycle runs in a confined child, with the bot's skill allow-list (never the
    # repository's own).
    import flujo.bot.isolation as isolation

    tasks: list[tuple[str, dict[str, Any]]] = []
    original = isolation.run_isolated

    async def spy(task: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        tasks.append((task, payload))
        return await original(task, payload, **kwargs)

    monkeypatch.setattr(isolation, "run_isolated", spy)
    token = bot.state.issue_token(42, REPO)
    assert world.server is not None
    runs = await send_telemetry(str(world.server.make_url("/")).rstrip("/"), token, monkeypatch)
    assert runs >= 20 and len(bot.telemetry.store(REPO).list_runs(100)) == runs
    # Each run was exported on its own; one suggestion cycle is queued for the batch, later.
    await bot.drain()
    (queued,) = bot.queue.list_jobs()
    assert queued.event == "flujo_suggest" and queued.run_after > time.time() + 3000
    # Run a cycle now (as the queued one would in an hour).
    assert await bot.queue.enqueue(cycle_now("first"))
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 30)

    cycles = [payload for task, payload in tasks if task == "suggest"]
    assert len(cycles) == 1 and cycles[0]["allow"] == list(world.settings.skills_allow)
    assert Path(cycles[0]["request"]["store"]).is_absolute()  # a file, even on PostgreSQL
    main = fake.branch_sha(REPO, "main") or ""
    report = fake.check_run(REPO, main, "flujo/suggestions")
    assert (
        report.conclusion == "neutral" and report.title == "Suggestions: 1 proposed, 0 not proposed"
    )
    (pull,) = fake.pulls(REPO)
    assert pull.head.startswith(BRANCH_PREFIX) and pull.base == "main"
    assert fake.labels(REPO, pull.number) == ["flujo"]
    assert "gpt-4o-mini" in pull.title
    body = pull.body or ""
    assert body.count("```mermaid") == 1  # a model swap draws the same chart before and after
    assert "**Quality evidence:** not measured: no captured examples" in body
    summary = next(line for line in body.splitlines() if line.startswith("**Saves"))
    assert f"prices {table_version()}" in summary  # the saving names its price table
    charts = [block.split("```", 1)[0] for block in body.split("```mermaid\n")[1:]]
    assert_mermaid(*charts)  # the real Mermaid parser reads both diagrams
    assert "Close this PR; Flujo will not suggest it again." in body
    assert "- ✅ billing ticket is routed to billing" in body  # each embedded test, by name
    share = "| Share of the spec's cost | "  # each evidence label says what it counts
    assert share in body and "%" in body.split(share)[1].split("|")[0]
    assert '"op": "replace"' in body or '"op":"replace"' in body
    assert len(body) <= 65_535
    # Only the patched line changes in the suggestion's commit.
    after = fake.files(REPO, pull.head)[SPEC]
    changed = [
        line
        for line in difflib.unified_diff(files[SPEC].splitlines(), after.splitlines(), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["-    model: openai:gpt-4o", "+    model: openai:gpt-4o-mini"]
    assert fake.branch_sha(REPO, "main") == base

    # The suggestion's pull request gets the same checks as any other.
    head_sha = fake.branch_sha(REPO, pull.head)
    await world.deliver(
        "pull_request", "opened", sha=head_sha, number=pull.number, branch=pull.head
    )
    await world.settle()
    assert world.conclusions(head_sha or "")["flujo/test"] == "success"

    # A maintainer closes it without merging, saying why.
    fake.add_comment(REPO, pull.number, "We need gpt-4o for tone.", user="ada")
    pull.state = "closed"
    await world.deliver(
        "pull_request", "closed", sha=head_sha, number=pull.number, branch=pull.head, sender="ada"
    )
    await world.settle()
    proposal = await bot.state.proposal(REPO, pull.head)
    assert proposal is not None and proposal.state == "rejected"
    store = bot.telemetry.store(REPO)
    assert is_rejected(store, SPEC, proposal.patch)
    reasons = store.query("SELECT reason, actor FROM suggestion_feedback", ())
    assert [(r["reason"], r["actor"]) for r in reasons] == [("We need gpt-4o for tone.", "ada")]

    # The next cycle does not propose it again.
    assert await bot.queue.enqueue(cycle_now("second"))
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 30)
    assert len(fake.pulls(REPO)) == 1
    assert [j.state for j in bot.queue.list_jobs(limit=100)].count("dead") == 0


async def test_telemetry_with_an_unknown_token_is_refused(world: World) -> None:
    import aiohttp

    world.fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    await world.start()
    assert world.server is not None
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            world.server.make_url("/v1/traces"),
            data=b"{}",
            headers={"Authorization": "Bearer flujo_nope", "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 401


async def test_a_suggestion_cycle_that_overruns_is_stopped_and_says_so(world: World) -> None:
    from flujo.bot.isolation import Isolated, IsolationLimits

    fake = world.fake
    main = fake.create_repo(REPO, repository_files(), installation_id=42)
    bot = await world.start()
    checks = bot.context.evaluator
    bot.context.evaluator = Isolated(limits=IsolationLimits(commit_s=0.05))
    assert await bot.queue.enqueue(cycle_now("slow"))
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 30)

    report = fake.check_run(REPO, main, "flujo/suggestions")
    assert (report.conclusion, report.title) == (
        "failure",
        "Suggestions: the cycle could not finish",
    )
    assert "exceeded the limit of 0.05 s of wall time" in (report.summary or "")
    assert "not affected" in (report.summary or "")
    assert [j.state for j in bot.queue.list_jobs()] == ["done"]  # not retried, not dead
    assert fake.pulls(REPO) == []
    # The bot goes on checking commits as usual.
    bot.context.evaluator = checks
    sha = fake.commit(REPO, {"README.md": "changed\n"})
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    assert world.conclusions(sha)["flujo/validate"] == "success"
