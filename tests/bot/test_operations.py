"""Operating the bot: every bad setting named at once, one log line per delivery and job,
Prometheus metrics, and dead letters queued again by hand.

The log, metrics and retry tests run the real `flujo bot serve` against the fake GitHub.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from flujo.cli import cli
from tests.support.bot import GOOD
from tests.support.bot_process import BotProcess, push, settled, start_bot
from tests.support.fakegithub.server import FakeGitHub
from tests.support.specs import ROOT

REPO = "acme/flows"
SPEC = "flujo/greeter.yml"
PASSING = GOOD.replace("< 5", "< 50")


@pytest.fixture
def no_bot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No FLUJO_BOT_* variable and no .env file around."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("FLUJO_BOT_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_serve_names_every_missing_or_malformed_setting_at_once(no_bot_env: Path) -> None:
    env = {
        "FLUJO_BOT_APP_ID": "Iv1.8a61f9b3a7aba766",  # the client id, a common mistake
        "FLUJO_BOT_PORT": "eighty",
        "FLUJO_BOT_PRIVATE_KEY_FILE": str(no_bot_env / "missing.pem"),
        "FLUJO_BOT_SKILLS_ALLOW": "acme.skills",
    }
    result = CliRunner().invoke(cli, ["bot", "serve"], env=env)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0] == "flujo bot serve: cannot start, 5 settings to fix:"
    found = {line.split(":")[0].strip(): line for line in lines[1:6]}
    assert set(found) == {
        "FLUJO_BOT_APP_ID",
        "FLUJO_BOT_PORT",
        "FLUJO_BOT_PRIVATE_KEY_FILE",
        "FLUJO_BOT_SKILLS_ALLOW",
        "FLUJO_BOT_WEBHOOK_SECRET",
    }
    assert "must be a number" in found["FLUJO_BOT_APP_ID"]
    assert "cannot read the App private key" in found["FLUJO_BOT_PRIVATE_KEY_FILE"]
    assert "not JSON" in found["FLUJO_BOT_SKILLS_ALLOW"]
    assert "missing" in found["FLUJO_BOT_WEBHOOK_SECRET"]
    assert "flujo bot setup" in result.output
    assert "Traceback" not in result.output and "Iv1.8a61f9b3a7aba766" not in result.output


def test_a_numeric_app_id_with_a_key_and_a_secret_is_enough(no_bot_env: Path) -> None:
    from flujo.bot.settings import load_settings
    from tests.support.fakegithub.server import app_private_key_pem

    os.environ.update(
        {
            "FLUJO_BOT_APP_ID": " 123456 ",
            "FLUJO_BOT_PRIVATE_KEY": app_private_key_pem(),
            "FLUJO_BOT_WEBHOOK_SECRET": "s3cret",
        }
    )
    try:
        assert load_settings(serving=True).app() == "123456"
    finally:
        for name in ("FLUJO_BOT_APP_ID", "FLUJO_BOT_PRIVATE_KEY", "FLUJO_BOT_WEBHOOK_SECRET"):
            del os.environ[name]


def test_text_log_lines_carry_the_fields_quoted_and_masked() -> None:
    import logging

    from flujo.bot.logs import FIELDS, Redactor, TextFormatter

    record = logging.LogRecord("flujo.bot.worker", logging.WARNING, "", 0, "job failed", (), None)
    setattr(record, FIELDS, {"job": 3, "repository": "acme/flows", "error": "token s3cret-v"})
    Redactor(["s3cret-v"]).filter(record)
    line = TextFormatter().format(record)
    assert line.endswith(': job failed job=3 repository=acme/flows error="token [redacted]"')


def log_lines(bot: BotProcess) -> list[dict[str, Any]]:
    """Every line of the bot's output, each a JSON object (fails on any other line)."""
    lines = [line for line in bot.output().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return parsed


async def metrics(bot: BotProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`/metrics` parsed by Prometheus's own parser: (name, labels) → value."""
    async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/metrics") as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=")
        text = await reply.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_served_bot_logs_each_delivery_and_job_as_json_and_counts_them(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.add_installation(42, "acme")
    fake_github.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    bot = await start_bot(fake_github, tmp_path / "bot", log_format="json")
    try:
        sha = fake_github.commit(REPO, {SPEC: PASSING})
        payload = fake_github.webhook("push", "payload", repo=REPO, sha=sha)
        delivery = str(uuid.uuid4())
        url = f"{bot.url}/webhooks"
        assert (await fake_github.deliver(url, "push", payload, delivery_id=delivery))[0] == 202
        assert await settled(fake_github, bot, REPO, sha, 60) == {
            "flujo/validate": "success",
            "flujo/test": "success",
            "flujo/policy": "success",
        }
        assert (await fake_github.deliver(url, "push", payload, delivery_id=delivery))[0] == 200
        async with aiohttp.ClientSession() as http:
            forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "push"}
            async with http.post(url, data=b"{}", headers=forged) as reply:
                assert reply.status == 401
        found = await metrics(bot)
        await asyncio.sleep(0.2)  # the job's line is written right after its last request
    finally:
        bot.stop()

    lines = log_lines(bot)
    mine = [line for line in lines if line.get("delivery") == delivery]
    queued = [line for line in mine if line["message"] == "delivery queued"]
    done = [line for line in mine if line["message"] == "job done"]
    assert len(queued) == 1 and len(done) == 1, mine
    expected = {"delivery": delivery, "event": "push", "repository": REPO, "installation": 42}
    assert queued[0].items() >= expected.items() and queued[0]["level"] == "INFO"
    assert done[0].items() >= {**expected, "outcome": "done", "attempt": 1}.items()
    assert 0 < done[0]["duration_s"] < 60
    text = bot.output()
    for secret in (fake_github.webhook_secret, "PRIVATE KEY", *fake_github.tokens):
        assert secret not in text
    assert "Hello, {{ input.name }}" not in text  # nothing of a body's content

    def value(name: str, **labels: str) -> float | None:
        return found.get((name, tuple(sorted(labels.items()))))

    assert value("flujo_bot_deliveries_total", event="push", outcome="queued") == 1
    assert value("flujo_bot_deliveries_total", event="push", outcome="duplicate") == 1
    assert value("flujo_bot_deliveries_total", event="-", outcome="refused") == 1
    assert value("flujo_bot_queue_jobs", state="done") == 1
    assert value("flujo_bot_queue_jobs", state="dead") == 0
    assert value("flujo_bot_job_duration_seconds_count", event="push", outcome="done") == 1
    assert value("flujo_bot_github_rate_limit_remaining", installation="42", resource="core") == (
        fake_github.rate_remaining
    )
    assert value("flujo_bot_github_rate_limit_remaining", installation="app", resource="core")


def run_jobs(db: Path, *args: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    """`flujo bot jobs ARGS` as an operator runs it beside the served bot (on its
    PostgreSQL database when `database_url` is given)."""
    env = {"PATH": os.environ.get("PATH", ""), "FLUJO_BOT_DB": str(db)}
    if database_url:
        env["FLUJO_BOT_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "flujo", "bot", "jobs", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The queue of the bot and of `flujo bot jobs`: the SQLite file, then PostgreSQL."""
    return "" if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


async def test_a_dead_letter_retried_by_hand_is_handled_by_the_running_bot(
    fake_github: FakeGitHub, tmp_path: Path, database_url: str
) -> None:
    fake_github.add_installation(42, "acme")
    fake_github.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    # The App cannot get a token (e.g. its key was rotated): the delivery is dead-lettered.
    fake_github.fail("POST", "/app/installations/{installation_id}/access_tokens", 403)
    settings = {"database_url": database_url} if database_url else {}
    bot = await start_bot(fake_github, tmp_path / "bot", **settings)
    db = tmp_path / "bot" / "bot.db"

    def jobs(*args: str) -> subprocess.CompletedProcess[str]:
        return run_jobs(db, *args, database_url=database_url)

    try:
        sha = await push(fake_github, bot, REPO, {SPEC: PASSING})
        deadline = time.monotonic() + 30
        while not (dead := json.loads(jobs("--state", "dead", "--json").stdout)):
            assert time.monotonic() < deadline, bot.output()
            await asyncio.sleep(0.2)
        assert fake_github.check_runs_for(REPO, sha) == []
        listed = jobs()
        assert listed.returncode == 0 and "dead     push" in listed.stdout, listed.stdout

        retried = jobs("--retry", str(dead[0]["id"]))
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout.startswith(f"dead letter {dead[0]['id']} queued again as job ")
        assert await settled(fake_github, bot, REPO, sha, 30) == {
            "flujo/validate": "success",
            "flujo/test": "success",
            "flujo/policy": "success",
        }

        again = jobs("--retry", str(dead[0]["id"]))
        assert again.returncode == 1 and f"there is no job {dead[0]['id']}" in again.stderr
        new_id = json.loads(jobs("--json").stdout)[0]["id"]
        done = jobs("--retry", str(new_id))
        assert done.returncode == 1, done.stdout
        assert f"job {new_id} is done, not a dead letter" in done.stderr
        assert "Traceback" not in done.stderr + again.stderr
    finally:
        bot.stop()
