"""Webhook routing: one gidgethub Router per concern, composed once.

Handlers receive the event and a `BotContext`; they parse the event once into its model
(`events.py`), decide with pure functions (`evaluate.py`, `verdicts.py`) and act only
through the context's forge and state.
"""

from __future__ import annotations

from gidgethub.routing import Router

from flujo.bot.routers import (
    auto_apply,
    check_requests,
    dashboard,
    installations,
    overrides,
    suggestions,
)

router = Router(
    check_requests.router,
    overrides.router,
    installations.router,
    suggestions.router,
    auto_apply.router,
    dashboard.router,  # after `suggestions`: a closed suggestion is recorded before it shows
)
