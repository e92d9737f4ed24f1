"""Comment commands: `@<app> recreate`, `@<app> ignore [reason]`, `@<app> eval`,
`@<app> explain`, on suggestion pull requests and the dashboard issue.

Pure parsing and the queued job a command becomes; `routers/dashboard.py` checks the
commenter's permission and acts. A command is a line that starts with the App's handle;
quoted lines (`>`) and code blocks are never commands (quoting someone's command does not
run it again).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from flujo.bot.queue import Delivery
from flujo.bot.suggestion_prs import SUGGEST_EVENT

Name = Literal["recreate", "ignore", "eval", "explain"]
NAMES: tuple[Name, ...] = ("recreate", "ignore", "eval", "explain")
ARGUMENT_LIMIT = 500
"""Characters of a command's argument kept (an ignore reason)."""


@dataclass(frozen=True, slots=True)
class Command:
    name: Name | None
    """None: the App was addressed with a word it does not know (`word` says which)."""
    word: str
    argument: str
    """The rest of the line (a reason, a suggestion id), trimmed."""


def parse(body: str, slug: str) -> Command | None:
    """The first command addressed to `@slug` (or `@slug[bot]`) in a comment, if any."""
    handle = re.compile(rf"^@{re.escape(slug)}(?:\[bot\])?(?![\w-])\s*(.*)$", re.IGNORECASE)
    fenced = False
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced or line.startswith(">"):
            continue
        found = handle.match(line)
        if found is None:
            continue
        word, _, rest = found.group(1).strip().partition(" ")
        word = word.lower()
        name = next((n for n in NAMES if n == word), None)
        return Command(name, word[:40], rest.strip()[:ARGUMENT_LIMIT])
    return None


def command_delivery(
    repo: str,
    installation: int,
    *,
    command: str,
    wanted: tuple[str, ...],
    reply_to: int,
    actor: str,
    delivery_id: str,
    now: float,
) -> Delivery:
    """A suggestion cycle a person asked for (a command or a dashboard box), run by the
    workers like the scheduled ones: in the isolated child, never in the event loop. Its
    id is the webhook delivery's, so a redelivered comment queues it once."""
    body = json.dumps(
        {
            "repository": {"full_name": repo},
            "installation": {"id": installation},
            "wanted": list(wanted),
            "command": command,
            "reply_to": reply_to,
            "actor": actor,
        }
    ).encode()
    return Delivery(f"command:{delivery_id}", SUGGEST_EVENT, body, now, now)
