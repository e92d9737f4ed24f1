"""Prompt Guard and Meta-Agents: only patches that apply, stay in scope, reference known
things, keep the schema and validate come out; every outcome is counted. The openai agent
is driven through the project's fake OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flujo.engine.fake_openai import ChatRequest, FakeBehaviour, FakeOpenAI
from flujo.engine.store import RunStore
from flujo.learn.feedback import feedback, is_rejected, record_acceptance, record_rejection
from flujo.learn.guard import FEW_SHOTS, PromptGuard, few_shots
from flujo.learn.meta_agents import OpenAIAgent, make_agent
from flujo.learn.opportunities import find_opportunities
from flujo.learn.suggest import suggest
from flujo.learn.telemetry_view import load_view
from flujo.spec.edit import apply_patch
from flujo.spec.model import Pipeline
from tests.support.learn import PLANTED, SEEDS, record

SPEC = SEEDS / "cheaper_model.yaml"
GOOD = [{"op": "replace", "path": "/agents/labeler/model", "value": "openai:gpt-4o-mini"}]
BAD_REPLIES = {
    "not_json": "Sure! Here is the patch: replace the model.",
    "not_a_patch": json.dumps({"patch": [{"op": "rename", "path": "/agents"}]}),
    "schema": json.dumps([{"op": "replace", "path": "/agents/labeler/model", "value": "gpt4o"}]),
    "path_not_found": json.dumps(
        [{"op": "replace", "path": "/agents/labeller/model", "value": "openai:gpt-4o-mini"}]
    ),
    "out_of_scope": json.dumps([{"op": "add", "path": "/steps/0/config", "value": {}}]),
    "no_change": json.dumps(
        [{"op": "replace", "path": "/agents/labeler/model", "value": "openai:gpt-4o"}]
    ),
}


@pytest.fixture
def store(store_location: Path | str) -> Iterator[RunStore]:
    db = RunStore(store_location)
    record(db, Pipeline.from_yaml(SPEC), PLANTED["cheaper_model"][0])
    yield db
    db.close()


def opportunity(store: RunStore) -> Any:
    pipeline = Pipeline.from_yaml(SPEC)
    (found,) = find_opportunities(pipeline, load_view(store, pipeline))
    return found


def guard() -> PromptGuard:
    return PromptGuard(SPEC.read_text(), file=str(SPEC))


@pytest.mark.parametrize("reason", sorted(BAD_REPLIES))
def test_bad_replies_are_rejected_with_their_reason(store: RunStore, reason: str) -> None:
    g = guard()
    verdict = g.judge(BAD_REPLIES[reason], opportunity(store))
    assert (verdict.accepted, verdict.reason) == (False, reason)
    assert verdict.detail
    assert g.stats.rejected == {reason: 1} and g.stats.accepted == 0


def test_a_hallucinated_agent_is_an_unknown_reference(store: RunStore) -> None:
    found = opportunity(store)
    wider = type(found)(**{**found.__dict__, "scope": ("/steps/0",)})
    reply = json.dumps([{"op": "replace", "path": "/steps/0/uses", "value": "agents.tiny"}])
    verdict = guard().judge(reply, wider)
    assert verdict.reason == "unknown_reference"
    assert "unknown agent 'tiny'" in verdict.detail


def test_a_good_patch_is_accepted_in_a_code_fence(store: RunStore) -> None:
    g = guard()
    verdict = g.judge("```json\n" + json.dumps({"patch": GOOD}) + "\n```", opportunity(store))
    assert verdict.accepted and verdict.patch == GOOD
    assert verdict.text == apply_patch(SPEC.read_text(), GOOD)
    assert g.stats.to_dict() == {"accepted": 1, "rejected": {}}


def test_the_prompt_carries_schema_manifest_spec_evidence_and_examples(store: RunStore) -> None:
    negative = [{"op": "replace", "path": "/agents/labeler/model", "value": "openai:o1"}]
    record_rejection(store, str(SPEC), negative, "too expensive", "maintainer")
    g = PromptGuard(SPEC.read_text(), file=str(SPEC), negatives=feedback(store, str(SPEC)))
    system, user = g.messages(opportunity(store))
    assert '"title":"Flujo pipeline"' in system["content"]
    assert "- regex_extract:" in system["content"]
    shots = system["content"].count("Opportunity (")
    assert 5 <= shots <= FEW_SHOTS
    assert system["content"].index("Opportunity (cheaper_model)") < system["content"].index(
        "Opportunity (expensive_step)"
    )  # the same kind first
    assert "openai:o1" in system["content"] and "too expensive" in system["content"]
    assert SPEC.read_text() in user["content"]
    assert '"sample_size": 40' in user["content"] and "/agents/labeler/model" in user["content"]


@pytest.mark.parametrize("shot", few_shots(), ids=lambda s: s.kind)
def test_every_few_shot_patch_applies_to_its_excerpt(shot: Any) -> None:
    patched = apply_patch(shot.spec, shot.patch)
    assert patched != shot.spec


def scripted(replies: list[str]) -> FakeBehaviour:
    queue = iter(replies)

    def respond(_chat: ChatRequest) -> str:
        return next(queue)

    return FakeBehaviour(responder=respond)


async def test_openai_agent_retries_with_the_rejection_fed_back(store: RunStore) -> None:
    replies = [BAD_REPLIES["not_json"], BAD_REPLIES["schema"], json.dumps({"patch": GOOD})]
    async with FakeOpenAI(scripted(replies)) as server:
        agent = OpenAIAgent("gpt-4.1", base_url=server.base_url)
        g = guard()
        outcome = await agent.propose(opportunity(store), g)
        await agent.close()
        assert outcome is not None and outcome.verdict.accepted and outcome.attempts == 3
        assert [r.reason for r in outcome.rejections] == ["not_json", "schema"]
        last = server.requests[-1].body["messages"]
        assert last[-1]["content"].startswith("Rejected (schema)")
        assert last[-2]["content"] == BAD_REPLIES["schema"]
    assert g.stats.to_dict() == {"accepted": 1, "rejected": {"not_json": 1, "schema": 1}}


async def test_only_good_patches_come_out_of_suggest(store: RunStore) -> None:
    hallucinated = json.dumps(
        [{"op": "replace", "path": "/agents/labeler/model", "value": "openai:gpt-9-ultra"}]
    )
    bad = [BAD_REPLIES["not_json"], BAD_REPLIES["path_not_found"], hallucinated]
    async with FakeOpenAI(scripted(bad)) as server:
        agent = OpenAIAgent("gpt-4.1", base_url=server.base_url)
        report = await suggest(SPEC, store, agent=agent)
        await agent.close()
    assert report.suggestions == []
    (dropped,) = report.dropped
    assert (dropped.reason, dropped.kind) == ("unknown_reference", "cheaper_model")
    assert "gpt-9-ultra" in dropped.detail
    assert report.to_dict()["guard"] == {
        "accepted": 0,
        "rejected": {"not_json": 1, "path_not_found": 1, "unknown_reference": 1},
    }

    replies = [BAD_REPLIES["schema"], BAD_REPLIES["out_of_scope"], json.dumps(GOOD)]
    async with FakeOpenAI(scripted(replies)) as server:
        agent = OpenAIAgent("gpt-4.1", base_url=server.base_url)
        report = await suggest(SPEC, store, agent=agent)
        await agent.close()
    assert [(s.patch, s.attempts, s.agent) for s in report.suggestions] == [
        (GOOD, 3, "openai:gpt-4.1")
    ]
    assert report.suggestions[0].verification.tests_passed == 1
    assert report.to_dict()["guard"] == {
        "accepted": 1,
        "rejected": {"out_of_scope": 1, "schema": 1},
    }


async def test_a_rejected_patch_is_never_suggested_again(store: RunStore) -> None:
    first = await suggest(SPEC, store)
    (item,) = first.suggestions
    assert not is_rejected(store, item.spec, item.patch)
    record_rejection(store, item.spec, item.patch, "we need gpt-4o for tone", "octocat")
    assert is_rejected(store, item.spec, item.patch)
    again = await suggest(SPEC, store)
    assert again.suggestions == []
    assert [d.reason for d in again.dropped] == ["previously_rejected"]
    (fb,) = feedback(store, item.spec)
    assert (fb.actor, fb.reason, fb.patch) == ("octocat", "we need gpt-4o for tone", item.patch)


async def test_an_accepted_patch_is_recorded_but_not_blocked(store: RunStore) -> None:
    (item,) = (await suggest(SPEC, store)).suggestions
    record_acceptance(store, item.spec, item.patch, "octocat")
    assert not is_rejected(store, item.spec, item.patch)
    assert [f.verdict for f in feedback(store, item.spec, "accepted")] == ["accepted"]


async def test_a_patch_that_breaks_an_embedded_test_is_dropped(tmp_path: Path) -> None:
    text = (SEEDS / "unused.yaml").read_text()
    text += (
        "  - name: keywords run\n    input: {question: q}\n    mocks: {keywords: [q], answer: a}\n"
    )
    text += "    assertions: [\"'keywords' in steps\"]\n"
    path = tmp_path / "unused.yaml"
    path.write_text(text)
    db = RunStore(tmp_path / "runs.db")
    record(db, Pipeline.from_yaml(path), PLANTED["unused"][0])
    report = await suggest(path, db)
    db.close()
    assert report.suggestions == []
    (dropped,) = report.dropped
    assert dropped.reason == "breaks_tests" and "keywords run" in dropped.detail


def test_make_agent_names() -> None:
    assert make_agent("offline").name == "offline"
    assert make_agent("openai:gpt-4.1-mini").name == "openai:gpt-4.1-mini"
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("anthropic")
