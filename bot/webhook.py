"""`POST /webhooks`: verify, store, acknowledge. Nothing else happens on this path.

The signature is checked before anything is read from the body; the body is stored as
it came and parsed by a worker (see `worker.py`), so the acknowledgement costs one
HMAC and a share of one grouped commit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable

from aiohttp import web

from flujo.bot.queue import Delivery, DeliveryQueue, QueueUnavailable
from flujo.bot.settings import MAX_BODY_BYTES

log = logging.getLogger("flujo.bot.webhook")

SIGNATURE_HEADER = "X-Hub-Signature-256"
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")
_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_EVENT = re.compile(r"[a-z_]{1,64}")


def signature_of(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for this body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _refuse(status: int, reason: str, request: web.Request) -> web.Response:
    delivery = request.headers.get("X-GitHub-Delivery", "-")[:64]
    log.warning(
        "webhook refused (%d): %s [delivery %s from %s]", status, reason, delivery, request.remote
    )
    return web.json_response({"error": reason}, status=status)


class WebhookHandler:
    """The aiohttp handler; holds the secret and the queue, nothing global."""

    def __init__(
        self,
        secret: str,
        queue: DeliveryQueue,
        *,
        on_enqueued: Callable[[], None] | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self._key = secret.encode()
        self._queue = queue
        self._notify = on_enqueued
        self._max_body = max_body

    async def handle(self, request: web.Request) -> web.Response:
        headers = request.headers
        signature = headers.get(SIGNATURE_HEADER)
        if signature is None:
            return _refuse(401, f"missing {SIGNATURE_HEADER} header", request)
        if not _SIGNATURE.fullmatch(signature):
            return _refuse(401, f"malformed {SIGNATURE_HEADER} header", request)
        if request.content_length is not None and request.content_length > self._max_body:
            return _refuse(413, f"body larger than {self._max_body} bytes", request)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"body larger than {self._max_body} bytes", request)
        expected = "sha256=" + hmac.new(self._key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return _refuse(401, "signature does not match the body", request)
        event = headers.get("X-GitHub-Event", "")
        delivery_id = headers.get("X-GitHub-Delivery", "")
        if not _EVENT.fullmatch(event):
            return _refuse(400, "missing or malformed X-GitHub-Event header", request)
        if not _DELIVERY_ID.fullmatch(delivery_id):
            return _refuse(400, "missing or malformed X-GitHub-Delivery header", request)
        if request.content_type != "application/json":
            return _refuse(415, "content type must be application/json", request)
        if body.lstrip()[:1] != b"{":
            return _refuse(400, "body is not a JSON object", request)
        if event == "ping":
            return web.json_response({"pong": True})
        try:
            stored = await self._queue.enqueue(Delivery(delivery_id, event, body, time.time()))
        except QueueUnavailable as exc:  # not stored: GitHub must see a failure and redeliver
            log.error("cannot store delivery %s: %s", delivery_id, exc)
            return web.json_response({"error": "cannot store the delivery"}, status=503)
        if stored and self._notify is not None:
            self._notify()
        return web.json_response(
            {"delivery": delivery_id, "queued": stored}, status=202 if stored else 200
        )
