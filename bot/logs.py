"""Logging for the bot: one line per event, secrets masked before anything is written.

Events that operators count and search (deliveries, jobs) carry their facts as fields
(`log_event`): `key=value` after the message in the text format, keys of one JSON object
per line with `FLUJO_BOT_LOG_FORMAT=json`. Fields never hold secrets or a body's content.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

# Installation/OAuth tokens, App JWTs and PEM keys, whatever a message carries.
_TOKEN = re.compile(
    r"\bgh[opsur]_[A-Za-z0-9_]{16,}\b"
    r"|\bv1\.[0-9a-f]{40}\b"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
)
MASK = "[redacted]"
FIELDS = "flujo_fields"  # the LogRecord attribute holding an event's fields
_PLAIN = re.compile(r"[^\s=\"]+")


class Redactor(logging.Filter):
    """Masks known secret values and anything shaped like a GitHub token or key."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _TOKEN.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            setattr(
                record,
                FIELDS,
                {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()},
            )
        return True


def log_event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """One line for an event with its facts as fields (None values are left out)."""
    if logger.isEnabledFor(level):
        kept = {k: v for k, v in fields.items() if v is not None}
        logger.log(level, message, extra={FIELDS: kept})


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value …` (a traceback, if any, masked too)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redactor = redactor or Redactor()

    def formatException(self, ei: Any) -> str:
        return self._redactor.redact(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, FIELDS, None) or {}
        pairs = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        if not pairs:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback after the fields
        return f"{head} {pairs}{newline}{rest}"


class JsonFormatter(TextFormatter):
    """One JSON object per line: time, level, logger, message, the event's fields (and
    `exception` when there is one, masked)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, FIELDS, None) or {}).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def configure_logging(
    level: str, secrets: Iterable[str] = (), fmt: Literal["text", "json"] = "text"
) -> None:
    handler = logging.StreamHandler()
    redactor = Redactor(secrets)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


MAX_FIELD = 160
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def bounded(text: object, limit: int = MAX_FIELD) -> str:
    """`text` as one short printable line (what a client sent may hold anything)."""
    line = _UNPRINTABLE.sub("?", str(text))
    return line if len(line) <= limit else line[: limit - 1] + "…"


class RefusalLog:
    """Refused requests from unauthenticated clients, logged so they cannot flood the log.

    The first refusal of each kind (where, status, reason) in a window of `window_s`
    seconds is logged as one bounded line (no body, no header but the delivery id, which
    is checked); the others are counted and reported with the next line of that kind
    after the window: "(4,321 more like it since the last such line)". At most `max_kinds`
    kinds are tracked; beyond, refusals share one kind.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        window_s: float = 60.0,
        max_kinds: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._window_s = window_s
        self._max_kinds = max_kinds
        self._clock = clock
        self._kinds: dict[tuple[str, int, str], tuple[float, int]] = {}

    def refused(self, where: str, status: int, reason: str, remote: str | None) -> None:
        now = self._clock()
        reason = bounded(reason)
        key = (where, status, reason)
        if key not in self._kinds and len(self._kinds) >= self._max_kinds:
            self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self._window_s}
            if len(self._kinds) >= self._max_kinds:
                key = (where, status, "(other reasons)")
        since, hidden = self._kinds.get(key, (float("-inf"), 0))
        if now - since < self._window_s:
            self._kinds[key] = (since, hidden + 1)
            return
        self._kinds[key] = (now, 0)
        more = f" ({hidden:,} more like it since the last such line)" if hidden else ""
        self._log.warning(
            "%s refused (%d): %s [from %s]%s", where, status, key[2], bounded(remote, 64), more
        )
