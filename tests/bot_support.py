"""Helpers for bot tests: real GitHub webhook payloads, signed as GitHub signs them."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from flujo.bot.webhook import signature_of

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("FLUJO_GITHUB_REFERENCE") or ROOT.parent / "shared" / "github")
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
