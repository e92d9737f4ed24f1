"""The webhook models: every real payload of a routed event parses, and every route has a model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from gidgethub.sansio import Event
from pydantic import ValidationError

from flujo.bot.events import (
    MODELS,
    AutoApplyEvent,
    CheckRunActionEvent,
    InstallationEvent,
    MalformedEvent,
    PullRequestEvent,
    SuggestEvent,
    WebhookEvent,
)
from flujo.bot.queue import Permanent
from flujo.bot.routers import router
from tests.support.bot_world import REPO, World
from tests.support.fakegithub.webhooks import webhook_files

Pair = tuple[str, str | None]


def model_pairs(model: type[WebhookEvent]) -> set[Pair]:
    return {(model.EVENT, action) for action in model.ACTIONS or (None,)}


def routed_pairs() -> set[Pair]:
    """(event, action) of every handler; None: registered for the event, any action."""
    pairs: set[Pair] = {(event, None) for event in router._shallow_routes}
    for event, details in router._deep_routes.items():
        assert set(details) == {"action"}, f"{event} is routed on more than its action"
        pairs |= {(event, action) for action in details["action"]}
    return pairs


def reference_payloads(model: type[WebhookEvent]) -> list[Path]:
    """The real payloads GitHub sends for the model's event and actions."""
    return [
        path
        for path in webhook_files()
        if path.parent.name == model.EVENT
        and json.loads(path.read_text(encoding="utf-8")).get("action") in (model.ACTIONS or (None,))
    ]


def parse(model: type[WebhookEvent], data: object, event: str | None = None) -> WebhookEvent:
    return model.parse(Event(data, event=event or model.EVENT, delivery_id="d-1"))


def test_every_routed_event_and_action_has_one_model_and_no_model_is_unrouted() -> None:
    pairs = [pair for model in MODELS for pair in model_pairs(model)]
    assert len(pairs) == len(set(pairs)), "two models claim the same event and action"
    assert routed_pairs() == set(pairs)


def test_every_event_model_is_listed() -> None:
    def subclasses(cls: type[WebhookEvent]) -> set[type[WebhookEvent]]:
        return {s for c in cls.__subclasses__() for s in {c, *subclasses(c)}}

    assert {m for m in subclasses(WebhookEvent) if hasattr(m, "EVENT")} == set(MODELS)


@pytest.mark.parametrize(
    ("model", "path"),
    [(m, p) for m in MODELS for p in reference_payloads(m)],
    ids=lambda v: f"{v.parent.name}/{v.name}" if isinstance(v, Path) else v.__name__,
)
def test_every_real_payload_of_a_routed_event_parses_into_its_model(
    model: type[WebhookEvent], path: Path
) -> None:
    parsed = parse(model, json.loads(path.read_text(encoding="utf-8")))
    assert isinstance(parsed, model)


@pytest.mark.parametrize(
    "model", [m for m in MODELS if m not in (SuggestEvent, AutoApplyEvent)], ids=str
)
def test_each_model_of_a_github_event_has_real_payloads(model: type[WebhookEvent]) -> None:
    found = {
        json.loads(p.read_text(encoding="utf-8")).get("action") for p in reference_payloads(model)
    }
    assert found == set(model.ACTIONS or (None,))


def test_the_auto_apply_steps_the_bot_queues_parse() -> None:
    from flujo.bot.auto_apply import job

    for step in ("merge", "watch"):
        delivery = job(REPO, 42, 7, step, 1_000_000.0)
        parsed = parse(AutoApplyEvent, json.loads(delivery.body), delivery.event)
        assert isinstance(parsed, AutoApplyEvent) and (parsed.number, parsed.step) == (7, step)
        assert delivery.not_before == 1_000_000.0


def test_the_suggestion_cycle_the_bot_queues_parses() -> None:
    from flujo.bot.suggestion_prs import suggest_delivery

    delivery = suggest_delivery(REPO, 42, 3600.0, 1_000_000.0)
    parsed = parse(SuggestEvent, json.loads(delivery.body), delivery.event)
    assert isinstance(parsed, SuggestEvent)
    assert (parsed.repo, parsed.installation_id) == (REPO, 42)


def test_the_models_keep_the_fields_the_handlers_read() -> None:
    files = {p.parent.name + "/" + p.name: p for p in webhook_files()}

    def load(name: str) -> object:
        return json.loads(files[name].read_text(encoding="utf-8"))

    opened = parse(PullRequestEvent, load("pull_request/opened.payload.json"))
    assert isinstance(opened, PullRequestEvent)
    assert opened.pull_request.head.sha and opened.repo and opened.installation_id
    action = parse(CheckRunActionEvent, load("check_run/requested_action.payload.json"))
    assert isinstance(action, CheckRunActionEvent)
    assert action.check_run.head_sha and action.actor != "unknown"
    installed = parse(InstallationEvent, load("installation/created.payload.json"))
    assert isinstance(installed, InstallationEvent)
    assert installed.account and installed.repositories
    with pytest.raises(ValidationError, match="frozen"):
        opened.pull_request.head.sha = "x"  # type: ignore[misc]


def test_a_payload_without_a_field_the_bot_reads_is_permanent_and_names_it() -> None:
    with pytest.raises(MalformedEvent, match=r"pull_request\.head\.sha") as raised:
        payload = {"repository": {"full_name": REPO}, "pull_request": {"number": 1, "head": {}}}
        parse(PullRequestEvent, payload)
    assert isinstance(raised.value, Permanent)
    unsent = parse(SuggestEvent, {"repository": {"full_name": REPO}})
    assert isinstance(unsent, SuggestEvent)
    with pytest.raises(Permanent, match="no installation of the App"):
        assert unsent.installation_id


async def test_a_delivery_the_bot_cannot_read_is_dead_lettered_after_one_attempt(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    bot = await world.start()
    payload = world.fake.webhook("pull_request", "opened", repo=REPO)
    del payload["pull_request"]["head"]["sha"]
    assert world.server is not None
    url = str(world.server.make_url("/webhooks"))
    with caplog.at_level(logging.ERROR, logger="flujo.bot.worker"):
        status, _ = await world.fake.deliver(url, "pull_request", payload)
        await world.settle()
    assert status == 202
    (job,) = bot.queue.list_jobs()
    assert (job.state, job.attempts) == ("dead", 1)
    assert "pull_request.head.sha" in (job.last_error or "")
    assert "dead-lettered" in caplog.text
