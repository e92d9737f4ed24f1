"""`POST /webhooks`: verify, store, acknowledge. Nothing else happens on this path.

The signature header is checked before the body is read; the body is then read in
chunks straight into the HMAC, by at most `max_readers` requests at a time and within
`read_timeout_s`, so unauthenticated clients can hold neither memory nor connections.
A body that has arrived whole with its headers (the usual delivery of a few kilobytes)
is taken from aiohttp's buffer at once: nothing is waited for, so neither a reader slot
nor a timer is needed. It is stored as it came and parsed by a worker (see `worker.py`),
so the acknowledgement costs one HMAC and a share of one grouped commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable

from aiohttp import web

from flujo.bot.logs import RefusalLog
from flujo.bot.queue import Delivery, DeliveryQueue, QueueUnavailable
from flujo.bot.settings import MAX_BODY_BYTES
from flujo.spec.errors import FlujoError

log = logging.getLogger("flujo.bot.webhook")

SIGNATURE_HEADER = "X-Hub-Signature-256"
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")
_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_EVENT = re.compile(r"[a-z_]{1,64}")
MAX_READERS = 8  # bodies read at once: memory stays under MAX_READERS x the body limit
READ_TIMEOUT_S = 10.0  # a whole body, however slowly it arrives
SLOT_WAIT_S = 5.0  # how long a request waits for a free reader before a 503


def signature_of(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for this body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookHandler:
    """The aiohttp handler; holds the secret and the queue, nothing global."""

    def __init__(
        self,
        secret: str,
        queue: DeliveryQueue,
        *,
        on_enqueued: Callable[[], None] | None = None,
        record: Callable[[str, str], None] | None = None,
        max_body: int = MAX_BODY_BYTES,
        max_readers: int = MAX_READERS,
        read_timeout_s: float = READ_TIMEOUT_S,
        slot_wait_s: float = SLOT_WAIT_S,
        refusals: RefusalLog | None = None,
    ) -> None:
        """`refusals` logs refused requests (one line per kind per minute by default)."""
        if not secret:
            raise ValueError("a webhook secret is required")
        self._key = secret.encode()
        self._queue = queue
        self._notify = on_enqueued
        self._record = record
        self._max_body = max_body
        self._readers = asyncio.Semaphore(max_readers)
        self._read_timeout_s = read_timeout_s
        self._slot_wait_s = slot_wait_s
        self._refusals = refusals or RefusalLog(log)

    def _refuse(self, status: int, reason: str, request: web.Request) -> web.Response:
        """Answer a refused request; logged as one bounded line, never its body."""
        self._refusals.refused("webhook", status, reason, request.remote)
        return web.json_response({"error": reason}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer a delivery; `record(event, outcome)` counts it (refused ones as event
        "-": until the signature is checked, the headers are anyone's)."""
        response = await self._handle(request)
        if self._record is not None:
            outcome = response.get(OUTCOME) or "refused"
            event = request.headers.get("X-GitHub-Event", "") if outcome != "refused" else "-"
            self._record(event, outcome)
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        headers = request.headers
        signature = headers.get(SIGNATURE_HEADER)
        if signature is None:
            return self._refuse(401, f"missing {SIGNATURE_HEADER} header", request)
        if not _SIGNATURE.fullmatch(signature):
            return self._refuse(401, f"malformed {SIGNATURE_HEADER} header", request)
        if request.content_length is not None and request.content_length > self._max_body:
            return self._refuse(413, f"body larger than {self._max_body} bytes", request)
        arrived = _arrived(request, self._max_body)
        if arrived is not None:  # all there already: nothing to wait for, nothing to bound
            body = arrived
            digest = hmac.new(self._key, body, hashlib.sha256).hexdigest()
        else:
            try:
                async with asyncio.timeout(self._slot_wait_s):
                    await self._readers.acquire()
            except TimeoutError:
                return self._refuse(503, "too many deliveries are being read; try again", request)
            try:
                async with asyncio.timeout(self._read_timeout_s):
                    body, digest = await self._read(request)
            except TimeoutError:
                return self._refuse(
                    408, f"body not received within {self._read_timeout_s:g} s", request
                )
            except _TooLarge:
                return self._refuse(413, f"body larger than {self._max_body} bytes", request)
            finally:
                self._readers.release()
        if not hmac.compare_digest("sha256=" + digest, signature):
            return self._refuse(401, "signature does not match the body", request)
        event = headers.get("X-GitHub-Event", "")
        delivery_id = headers.get("X-GitHub-Delivery", "")
        if not _EVENT.fullmatch(event):
            return self._refuse(400, "missing or malformed X-GitHub-Event header", request)
        if not _DELIVERY_ID.fullmatch(delivery_id):
            return self._refuse(400, "missing or malformed X-GitHub-Delivery header", request)
        if request.content_type != "application/json":
            return self._refuse(415, "content type must be application/json", request)
        if body.lstrip()[:1] != b"{":
            return self._refuse(400, "body is not a JSON object", request)
        if event == "ping":
            return _outcome(web.json_response({"pong": True}), "ping")
        try:
            stored = await self._queue.enqueue(Delivery(delivery_id, event, body, time.time()))
        except QueueUnavailable as exc:  # not stored: GitHub must see a failure and redeliver
            log.error("cannot store delivery %s: %s", delivery_id, exc)
            failed = web.json_response({"error": "cannot store the delivery"}, status=503)
            return _outcome(failed, "unavailable")
        if stored and self._notify is not None:
            self._notify()
        answer = web.json_response(
            {"delivery": delivery_id, "queued": stored}, status=202 if stored else 200
        )
        return _outcome(answer, "queued" if stored else "duplicate")

    async def _read(self, request: web.Request) -> tuple[bytes, str]:
        """The body and its HMAC, read chunk by chunk; raises `_TooLarge` past the limit."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        body = bytearray()
        async for chunk in request.content.iter_any():
            if len(body) + len(chunk) > self._max_body:
                raise _TooLarge
            mac.update(chunk)
            body += chunk
        return bytes(body), mac.hexdigest()


def _arrived(request: web.Request, max_body: int) -> bytes | None:
    """The body when the whole of it, within the limit, has arrived with the headers (a
    delivery of a few kilobytes usually has: aiohttp has read it into its buffer); None
    when some of it is still to come and must be waited for."""
    content = request.content
    if not content.is_eof() or content.total_bytes > max_body:
        return None
    return content.read_nowait(-1)


OUTCOME = web.ResponseKey("flujo_outcome", str)  # a verified delivery's outcome


def _outcome(response: web.Response, outcome: str) -> web.Response:
    response[OUTCOME] = outcome
    return response


class _TooLarge(FlujoError):
    """A body went over the limit while it was read."""
