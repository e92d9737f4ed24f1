"""`POST /webhooks`: only signed, well-formed deliveries are stored; the rest get a 4xx."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from flujo.bot.app import BOT, Bot, create_app
from flujo.bot.forge import Forge
from flujo.bot.settings import BotSettings, SettingsError
from tests.support.bot import SECRET, real_payload, signed


class NoForge:
    async def __call__(self, installation_id: int) -> Forge:
        raise RuntimeError("no forge in this test")


@pytest.fixture
async def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = BotSettings(webhook_secret=SECRET, db=tmp_path / "bot.db", max_attempts=1)
    app = create_app(settings, Bot(settings, forge_for=NoForge()))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_a_signed_real_push_is_acknowledged_with_202_and_stored(client: TestClient) -> None:
    headers, body = signed("push", real_payload("push"), delivery="abc-1")
    response = await client.post("/webhooks", data=body, headers=headers)
    assert response.status == 202
    assert await response.json() == {"delivery": "abc-1", "queued": True}
    bot = client.server.app[BOT]
    assert bot.queue.get("abc-1") is not None


async def test_a_redelivery_is_acknowledged_but_not_queued_again(client: TestClient) -> None:
    headers, body = signed("push", real_payload("push"), delivery="abc-2")
    assert (await client.post("/webhooks", data=body, headers=headers)).status == 202
    again = await client.post("/webhooks", data=body, headers=headers)
    assert again.status == 200 and (await again.json())["queued"] is False
    assert len(client.server.app[BOT].queue.list_jobs()) == 1


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        (lambda h, b: (h.pop("X-Hub-Signature-256"), b)[1], 401, "missing X-Hub-Signature-256"),
        (lambda h, b: (h.update({"X-Hub-Signature-256": "sha1=abc"}), b)[1], 401, "malformed"),
        (lambda h, b: b + b" ", 401, "does not match"),
        (lambda h, b: b.replace(b'"ref"', b'"REF"', 1), 401, "does not match"),
        (lambda h, b: (h.pop("X-GitHub-Event"), b)[1], 400, "X-GitHub-Event"),
        (lambda h, b: (h.pop("X-GitHub-Delivery"), b)[1], 400, "X-GitHub-Delivery"),
        (
            lambda h, b: (h.update({"Content-Type": "application/x-www-form-urlencoded"}), b)[1],
            415,
            "content type",
        ),
    ],
    ids=["unsigned", "sha1", "trailing-byte", "tampered", "no-event", "no-delivery", "form"],
)
async def test_bad_deliveries_are_refused_with_a_log_line_and_not_stored(
    client: TestClient, change, status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    headers, body = signed("push", real_payload("push"))
    body = change(headers, body)
    with caplog.at_level(logging.WARNING, logger="flujo.bot.webhook"):
        response = await client.post("/webhooks", data=body, headers=headers)
    assert response.status == status
    assert reason in (await response.json())["error"]
    assert any(reason in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text
    assert client.server.app[BOT].queue.list_jobs() == []


async def test_a_signed_body_that_is_not_a_json_object_is_refused(client: TestClient) -> None:
    headers, body = signed("push", b"[1, 2, 3]")
    response = await client.post("/webhooks", data=body, headers=headers)
    assert response.status == 400


async def test_an_oversized_delivery_is_refused_before_it_is_read(client: TestClient) -> None:
    body = b'{"x": "' + b"a" * (25 * 1024 * 1024) + b'"}'
    headers, _ = signed("push", b"{}")
    response = await client.post("/webhooks", data=io.BytesIO(body), headers=headers)
    assert response.status == 413


async def test_ping_is_answered_without_queueing(client: TestClient) -> None:
    headers, body = signed("ping", real_payload("ping"))
    response = await client.post("/webhooks", data=body, headers=headers)
    assert response.status == 200 and await response.json() == {"pong": True}
    assert client.server.app[BOT].queue.list_jobs() == []


async def test_health_and_readiness(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


def test_the_server_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FLUJO_BOT_WEBHOOK_SECRET"):
        create_app(BotSettings(webhook_secret=None, db=tmp_path / "bot.db"))


def test_secrets_do_not_show_in_settings_reprs() -> None:
    settings = BotSettings(webhook_secret="s3cr3t-value", private_key="-----BEGIN KEY")
    assert "s3cr3t-value" not in repr(settings) and "BEGIN" not in repr(settings)


async def _stall(
    port: int, length: int = 1000
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a signed-looking POST that announces `length` bytes and sends one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: {length}\r\n\r\n{{"
        ).encode()
    )
    await writer.drain()
    return reader, writer


async def _handler_app(tmp_path: Path, **limits: float) -> TestServer:
    from aiohttp import web

    from flujo.bot.sqlite_queue import SQLiteQueue
    from flujo.bot.webhook import WebhookHandler

    queue = SQLiteQueue(tmp_path / "q.db")
    handler = WebhookHandler(SECRET, queue, **limits)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_post("/webhooks", handler.handle)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_a_stalled_upload_is_dropped_after_the_read_timeout(tmp_path: Path) -> None:
    server = await _handler_app(tmp_path, read_timeout_s=0.3)
    try:
        reader, writer = await _stall(server.port or 0)
        async with TestClient(server) as client:  # others are served meanwhile
            headers, body = signed("push", real_payload("push"), delivery="after-stall")
            assert (await client.post("/webhooks", data=body, headers=headers)).status == 202
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.split()[1] == b"408"
        writer.close()
    finally:
        await server.close()


async def test_unauthenticated_bodies_are_read_a_few_at_a_time(tmp_path: Path) -> None:
    # Two slow uploads hold both readers; a third waits briefly and gets a 503 instead of
    # being buffered: memory stays bounded by readers x body limit, whoever connects. A
    # delivery that arrives whole is not held up by them: nothing of it is waited for.
    server = await _handler_app(tmp_path, max_readers=2, slot_wait_s=0.2, read_timeout_s=5)
    try:
        stalled = [(await _stall(server.port or 0))[1] for _ in range(2)]
        await asyncio.sleep(0.1)
        reader, third = await _stall(server.port or 0)
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.split()[1] == b"503"
        third.close()
        async with TestClient(server) as client:
            headers, body = signed("push", real_payload("push"), delivery="whole")
            whole = await client.post("/webhooks", data=body, headers=headers)
            assert whole.status == 202
            for writer in stalled:
                writer.close()
            await asyncio.sleep(0.1)
            reader, fourth = await _stall(server.port or 0)
            fourth.write(b"}" + b" " * 998)  # the rest of the announced 1000 bytes
            status_line = await asyncio.wait_for(reader.readline(), 5)
            assert status_line.split()[1] == b"401"  # read in full, then its signature refused
            fourth.close()
    finally:
        await server.close()


async def test_a_body_without_a_length_is_cut_at_the_limit(tmp_path: Path) -> None:
    server = await _handler_app(tmp_path)
    try:
        from flujo.bot.webhook import WebhookHandler

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(40):
                yield b"x" * (1024 * 1024)

        handler_limit = WebhookHandler.__init__.__kwdefaults__["max_body"]  # type: ignore[index]
        assert handler_limit < 40 * 1024 * 1024
        async with TestClient(server) as client:
            headers, _ = signed("push", real_payload("push"), delivery="big")
            response = await client.post("/webhooks", data=chunks(), headers=headers)
            assert response.status == 413
    finally:
        await server.close()


async def test_refused_requests_cannot_flood_the_log_nor_write_what_they_sent(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "BODY-CONTENT-" + "x" * 50
    bot = client.server.app[BOT]
    token = bot.state.issue_token(42, "acme/flows")

    async def post(path: str, body: bytes, headers: dict[str, str]) -> None:
        with contextlib.suppress(aiohttp.ClientError):  # the server may hang up (oversize)
            await asyncio.wait_for(client.post(path, data=body, headers=headers), 5)

    with caplog.at_level(logging.DEBUG):
        for i in range(100):
            headers, body = signed("push", {"leak": marker}, secret="wrong")
            headers["X-GitHub-Delivery"] = f"{marker}-{i}"
            await post("/webhooks", body, headers)  # bad signature
            await post("/webhooks", b"{" + marker.encode(), {})  # unsigned
            headers, body = signed("push", {"leak": marker})
            headers |= {"Content-Length": str(30 * 1024 * 1024), "Connection": "close"}
            async with aiohttp.ClientSession() as http:  # oversize; the server hangs up
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await asyncio.wait_for(
                        http.post(client.make_url("/webhooks"), data=body, headers=headers), 5
                    )
            for auth in ("Bearer nope", f"Bearer {token}"):  # a bad token; a malformed body
                kind = f"application/json{marker}" if i % 2 else "application/json"
                await post(
                    "/v1/traces",
                    b"{" + marker.encode(),
                    {"Authorization": auth, "Content-Type": kind},
                )
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert 4 <= len(lines) <= 6, lines  # one per kind of refusal, not one per request
    assert any("signature does not match" in line for line in lines)
    assert any("body larger than" in line for line in lines)
    assert any("unknown or missing token" in line for line in lines)
    for line in lines:
        assert marker not in line and token not in line and SECRET not in line
        assert "\n" not in line and len(line) < 400
    assert "Traceback" not in caplog.text


def test_a_refusal_seen_again_after_the_window_says_how_many_were_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flujo.bot.logs import RefusalLog

    now = [0.0]
    refusals = RefusalLog(logging.getLogger("test.refusals"), window_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for _ in range(1000):
            refusals.refused("webhook", 401, "signature does not match the body", "10.0.0.1")
        refusals.refused("webhook", 400, "missing X-GitHub-Event", "10.0.0.1")
        now[0] = 61.0
        refusals.refused("webhook", 401, "signature does not match the body", "10.0.0.2")
    assert [r.getMessage() for r in caplog.records] == [
        "webhook refused (401): signature does not match the body [from 10.0.0.1]",
        "webhook refused (400): missing X-GitHub-Event [from 10.0.0.1]",
        "webhook refused (401): signature does not match the body [from 10.0.0.2] (999 more "
        "like it since the last such line)",
    ]
