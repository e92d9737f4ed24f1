"""Helpers for bot tests: real GitHub webhook payloads, signed as GitHub signs them."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from flujo.bot.webhook import signature_of
from tests.support.fakegithub.reference import reference_dir
from tests.support.specs import spec

if TYPE_CHECKING:
    from flujo.bot.github import GitHubForge
    from tests.support.fakegithub.server import FakeGitHub

REFERENCE = reference_dir()
SECRET = "test-webhook-secret"


def real_payload(event: str, name: str = "payload") -> dict[str, Any]:
    path = REFERENCE / "webhooks" / event / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def signed(
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    delivery: str | None = None,
) -> tuple[dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature_of(body, secret),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    return headers, body


# A valid spec whose test passes and whose policies pass, fail the run, need approval, warn.
GOOD = spec(
    """
    version: "1"
    name: greeter
    steps:
      - name: greet
        uses: template_render
        with: {template: "Hello, {{ input.name }}!"}
    tests:
      - name: greets by name
        input: {name: Ada}
        assertions:
          - "output == 'Hello, Ada!'"
    policies:
      - id: short
        assert: "len(output) < 50"
        action: FAIL_RUN
      - id: needs_review
        assert: "len(output) < 5"
        action: REQUIRE_APPROVAL
      - id: friendly
        assert: "'!' not in output"
        action: WARN
    """
)


@contextlib.asynccontextmanager
async def app_forge(fake: FakeGitHub, installation_id: int) -> AsyncIterator[GitHubForge]:
    """The bot's forge for an installation on the fake GitHub, authenticated as the App."""
    import aiohttp

    from flujo.bot.github import AppAuth

    async with aiohttp.ClientSession() as session:
        auth = AppAuth(
            session,
            app_id=str(fake.app_id),
            private_key=fake.private_key_pem,
            base_url=fake.base_url,
        )
        yield await auth.forge(installation_id)
