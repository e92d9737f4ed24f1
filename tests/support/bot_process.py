"""`flujo bot serve` as a real process against the fake GitHub (the hostile-corpus tests).

The bot runs exactly as an operator starts it: its own interpreter, settings from
`FLUJO_BOT_*` variables, a port on loopback. Tests deliver signed webhooks to it and
read what it did from the fake GitHub, and can ask `/healthz` at any moment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fakegithub.server import FakeGitHub
from tests.support.specs import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BotProcess:
    """A running `flujo bot serve`; `url` is where GitHub would send deliveries."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    async def healthy(self, timeout_s: float = 2.0) -> bool:
        """Whether `/healthz` answers within `timeout_s`. Asked from a thread of its own, so
        that what measures the bot is not the test's event loop (which also serves the
        fake GitHub, and may be busy)."""
        return await asyncio.to_thread(self._healthy, timeout_s)

    def _healthy(self, timeout_s: float) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=timeout_s) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def start_bot(
    fake: FakeGitHub,
    folder: Path,
    command: str = "serve",
    *,
    credentials: bool = True,
    **settings: str,
) -> BotProcess:
    """Start the bot for `fake`'s App, with extra `FLUJO_BOT_*` settings (lower-case names):
    `flujo bot serve`, or `flujo bot worker` (no web server: ready when it says so).

    Without `credentials` the App's id, key and secret are not passed: the bot reads them
    from `folder/.env` (as `flujo bot setup` stores them).
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),  # the allow-listed test skills live in tests/support/
        "FLUJO_BOT_GITHUB_URL": fake.base_url,
        "FLUJO_BOT_DB": str(folder / "bot.db"),
        "FLUJO_BOT_HOST": "127.0.0.1",
        "FLUJO_BOT_PORT": str(port),
        "FLUJO_BOT_RETRY_BASE_S": "0.05",
        "FLUJO_BOT_MAX_ATTEMPTS": "2",
    }
    if credentials:
        key = folder / "app.pem"
        key.write_text(fake.private_key_pem, encoding="utf-8")
        env["FLUJO_BOT_WEBHOOK_SECRET"] = fake.webhook_secret
        env["FLUJO_BOT_APP_ID"] = str(fake.app_id)
        env["FLUJO_BOT_PRIVATE_KEY_FILE"] = str(key)
    env.update({f"FLUJO_BOT_{name.upper()}": value for name, value in settings.items()})
    log = folder / "bot.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flujo", "bot", command],
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    bot = BotProcess(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while not ("worker started" in bot.output() if command == "worker" else await bot.healthy(0.5)):
        if process.poll() is not None or time.monotonic() > deadline:
            bot.stop()
            pytest.fail(f"flujo bot serve did not start:\n{bot.output()}")
        await asyncio.sleep(0.1)
    return bot


async def served_bot(fake: FakeGitHub, folder: Path, **settings: str) -> AsyncIterator[BotProcess]:
    bot = await start_bot(fake, folder, **settings)
    try:
        yield bot
    finally:
        bot.stop()


CHECKS = ("flujo/validate", "flujo/test", "flujo/policy")


async def settled(
    fake: FakeGitHub, bot: BotProcess, repo: str, sha: str, timeout_s: float
) -> dict[str, str | None]:
    """Wait until the three checks of `repo@sha` are completed, asking `/healthz` meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert await bot.healthy(2.0), f"/healthz did not answer:\n{bot.output()[-3000:]}"
        runs = {n: fake.check_runs_for(repo, sha, n) for n in CHECKS}
        if all(r and r[-1].status == "completed" for r in runs.values()):
            return {n: r[-1].conclusion for n, r in runs.items()}
        await asyncio.sleep(0.2)
    raise AssertionError(f"checks of {repo}@{sha[:7]} did not complete:\n{bot.output()[-3000:]}")


async def push(fake: FakeGitHub, bot: BotProcess, repo: str, files: dict[str, str]) -> str:
    before = fake.branch_sha(repo, "main")
    sha = fake.commit(repo, files)
    payload = fake.webhook("push", "payload", repo=repo, sha=sha, before=before)
    status, text = await fake.deliver(f"{bot.url}/webhooks", "push", payload)
    assert status == 202, text
    return sha
