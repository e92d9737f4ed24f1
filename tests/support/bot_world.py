"""A bot served on loopback against the fake GitHub: the `world` fixture of end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from flujo.bot.app import Bot, create_app
from flujo.bot.settings import BotSettings
from tests.support.bot import GOOD
from tests.support.fakegithub.server import FakeGitHub

REPO = "acme/flows"
SPEC = "flujo/greeter.yml"
BROKEN = GOOD.replace("uses: template_render", "uses: template_rendr")
NAMES = ("flujo/validate", "flujo/test", "flujo/policy")


@dataclass
class World:
    fake: FakeGitHub
    settings: BotSettings
    sleeps: list[float]
    bot: Bot | None = None
    server: TestServer | None = None

    async def start(self, bot: Bot | None = None) -> Bot:
        self.bot = bot or Bot(self.settings, sleep=self.sleep)
        self.server = TestServer(create_app(self.settings, self.bot))
        await self.server.start_server()
        return self.bot

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def deliver(self, event: str, name: str, **adjust: Any) -> int:
        assert self.server is not None
        payload = self.fake.webhook(event, name, repo=REPO, **adjust)
        status, _ = await self.fake.deliver(str(self.server.make_url("/webhooks")), event, payload)
        return status

    async def settle(self) -> None:
        assert self.bot is not None
        await asyncio.wait_for(self.bot.drain(), 30)

    def job_states(self) -> list[str]:
        """The states of the stored jobs, newest first, read from the store itself (works
        while no bot runs)."""
        if self.settings.database_url:
            from flujo.bot.postgres_queue import read_jobs as read_pg_jobs

            jobs = read_pg_jobs(self.settings.database_url)
        else:
            from flujo.bot.sqlite_queue import read_jobs

            jobs = read_jobs(self.settings.db)
        return [job.state for job in jobs]

    def conclusions(self, sha: str) -> dict[str, str | None]:
        return {n: self.fake.check_run(REPO, sha, n).conclusion for n in NAMES}


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(
    fake_github: FakeGitHub, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    """The bot on each queue: the embedded SQLite one, then PostgreSQL (procrastinate)."""
    database_url = (
        request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    )
    async for found in _world(fake_github, tmp_path, database_url):
        yield found


@pytest.fixture
async def sqlite_world(fake_github: FakeGitHub, tmp_path: Path) -> AsyncIterator[World]:
    """The bot on the embedded SQLite queue only: for what only it does (timers on a
    clock the test moves; poison jobs found at start; the isolated suggestion cycle,
    which reads the repository's run store as a file)."""
    async for found in _world(fake_github, tmp_path, None):
        yield found


@pytest.fixture
async def postgres_world(
    fake_github: FakeGitHub, tmp_path: Path, postgres_url: str
) -> AsyncIterator[World]:
    """The bot on PostgreSQL only (queue, records and run stores)."""
    async for found in _world(fake_github, tmp_path, postgres_url):
        yield found


@pytest.fixture(params=["sqlite", "postgres"])
def each_queue(request: pytest.FixtureRequest) -> World:
    """`sqlite_world`, then `postgres_world` (for modules whose `world` is SQLite only)."""
    found: World = request.getfixturevalue(f"{request.param}_world")
    return found


async def _world(
    fake_github: FakeGitHub, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    fake_github.add_installation(42, "acme")
    settings = BotSettings(
        webhook_secret=fake_github.webhook_secret,
        app_id=str(fake_github.app_id),
        private_key=fake_github.private_key_pem,
        github_url=fake_github.base_url,
        db=tmp_path / "bot.db",
        retry_base_s=0.01,
        max_attempts=3,
        suggest_delay_s=0,
        database_url=database_url,
        lease_s=1.0,
    )
    world = World(fake_github, settings, [])
    yield world
    await world.stop()
