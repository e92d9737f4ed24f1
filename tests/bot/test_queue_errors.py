"""The queue's errors are part of its contract (bot/queue.py): a store out of reach is
`QueueUnavailable`, whatever the store, so the web server and the GitHub client know
neither SQLite nor the workers."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from flujo.bot.queue import Delivery, Permanent, QueueUnavailable, RetryLater
from flujo.bot.sqlite_queue import SQLiteQueue, read_jobs
from flujo.bot.webhook import WebhookHandler
from flujo.cli import cli
from flujo.spec.errors import FlujoError
from tests.cli.test_house import imports_of
from tests.support.bot import SECRET, real_payload, signed
from tests.support.specs import ROOT


@pytest.mark.parametrize("name", ["github", "webhook"])
def test_the_web_server_and_the_github_client_know_only_the_queue_contract(name: str) -> None:
    source = (ROOT / "bot" / f"{name}.py").read_text(encoding="utf-8")
    imported = {target for _, target in imports_of(source, f"flujo.bot.{name}")}
    forbidden = [
        t for t in imported if t.partition(".")[0] == "sqlite3" or t.startswith("flujo.bot.worker")
    ]
    assert forbidden == []
    assert "flujo.bot.queue" in imported


def test_the_queue_errors_are_flujo_errors() -> None:
    assert issubclass(QueueUnavailable, FlujoError) and QueueUnavailable.exit_code == 2
    assert issubclass(RetryLater, FlujoError) and issubclass(Permanent, FlujoError)
    assert RetryLater("rate limited", 12.5).at == 12.5


class FailingStatements:
    """A connection whose statements starting with `prefix` fail as a broken disk would."""

    def __init__(self, db: sqlite3.Connection, prefix: str) -> None:
        self._db = db
        self._prefix = prefix

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith(self._prefix):
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.mark.parametrize("prefix", ["INSERT", "BEGIN"], ids=["statement", "transaction"])
async def test_sqlite_errors_of_the_queue_are_raised_as_queue_unavailable(
    tmp_path: Path, prefix: str
) -> None:
    queue = SQLiteQueue(tmp_path / "bot.db")
    writer = queue._writer
    real = writer._db
    writer._db = FailingStatements(real, prefix)  # type: ignore[assignment]
    try:
        with pytest.raises(QueueUnavailable, match="disk I/O error") as raised:
            await queue.enqueue(Delivery("d-1", "push", b"{}", time.time()))
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert str(tmp_path / "bot.db") in str(raised.value)
    finally:
        writer._db = real
    assert await queue.enqueue(Delivery("d-1", "push", b"{}", time.time()))  # stored now
    await queue.close()


def test_reading_a_file_that_is_not_a_queue_is_queue_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(QueueUnavailable, match="file is not a database"):
        read_jobs(path)
    result = CliRunner().invoke(cli, ["bot", "jobs"], env={"FLUJO_BOT_DB": str(path)})
    assert result.exit_code == 2
    assert result.stderr == f"flujo: queue {path}: file is not a database\n"


class UnavailableQueue:
    async def enqueue(self, delivery: Delivery) -> bool:
        raise QueueUnavailable("queue bot.db: disk I/O error")


async def test_a_delivery_the_queue_cannot_store_gets_a_503_so_github_redelivers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = WebhookHandler(SECRET, UnavailableQueue())  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_post("/webhooks", handler.handle)
    headers, body = signed("push", real_payload("push"), delivery="abc-9")
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.ERROR, logger="flujo.bot.webhook"):
            response = await client.post("/webhooks", data=body, headers=headers)
        assert response.status == 503
        assert await response.json() == {"error": "cannot store the delivery"}
    assert "cannot store delivery abc-9: queue bot.db: disk I/O error" in caplog.text
