"""GitHub Enterprise Server (the API under `/api/v3`) and verified suggestion commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flujo.bot.settings import BotSettings
from tests.bot.test_proposals import AFTER, BEFORE, REPO, SPEC, proposal
from tests.support.bot import GOOD, app_forge
from tests.support.bot_world import NAMES, World
from tests.support.fakegithub.server import FakeGitHub


@pytest.fixture
async def enterprise(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub(root=tmp_path / "ghes", api_prefix="/api/v3")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    assert fake.violations == []  # every call went under /api/v3 and fit the OpenAPI


async def test_the_bot_checks_commits_on_github_enterprise_server(
    enterprise: FakeGitHub, tmp_path: Path
) -> None:
    enterprise.add_installation(42, "acme")
    assert enterprise.base_url.endswith("/api/v3")
    settings = BotSettings(
        webhook_secret=enterprise.webhook_secret,
        app_id=str(enterprise.app_id),
        private_key=enterprise.private_key_pem,
        github_url=enterprise.base_url,  # FLUJO_BOT_GITHUB_URL=https://HOST/api/v3
        db=tmp_path / "bot.db",
        retry_base_s=0.01,
        suggest_delay_s=0,
    )
    world = World(enterprise, settings, [])
    try:
        sha = enterprise.create_repo("acme/flows", {"flujo/greeter.yml": GOOD}, installation_id=42)
        await world.start()
        assert await world.deliver("push", "payload", sha=sha) == 202
        await world.settle()
        conclusions = world.conclusions(sha)
        assert set(conclusions) == set(NAMES)  # all three checks completed on GHES
        assert conclusions["flujo/validate"] == conclusions["flujo/test"] == "success"
    finally:
        await world.stop()


async def test_suggestion_commits_are_made_through_the_api_so_github_verifies_them(
    fake_github: FakeGitHub,
) -> None:
    fake_github.add_installation(42, "acme")
    fake_github.create_repo(REPO, {SPEC: BEFORE}, installation_id=42)
    async with app_forge(fake_github, 42) as forge:
        await forge.propose(REPO, proposal())
    head = fake_github.branch_sha(REPO, "flujo/suggest/abc123")
    assert head in fake_github.repo(REPO).signed_commits  # no author or committer forged
    assert fake_github.files(REPO, "flujo/suggest/abc123")[SPEC] == AFTER
    (made,) = [c for c in fake_github.calls("POST", "/repos/{owner}/{repo}/git/commits")]
    assert not {"author", "committer", "signature"} & set(made.body)
