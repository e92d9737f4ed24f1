"""Fitting text into GitHub's size limit (check run summaries and texts, pull request bodies).

GitHub documents these limits as "65535 characters" but measures UTF-8 bytes: a check
run summary within 65,535 characters yet over 65,535 bytes is refused with "summary
exceeds a maximum bytesize of 65535" (github/docs#35252), and pull request bodies are
stored the same way. A text's UTF-8 size is never smaller than its count of code points
(`len()`) or UTF-16 units, so text that fits by `size()` fits however an endpoint counts.

`shrink` lets a caller drop whole parts first (fewer table rows, a diagram, ...); `fit`
then cuts what is still too long at a line, closes an open code fence and says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

GITHUB_TEXT_LIMIT = 65_535
"""GitHub's limit, in UTF-8 bytes, for a check run's summary or text and a pull request body."""

TRUNCATED = "\n\n_…truncated._\n"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")

Shrink = Callable[[int], str | None]
"""Given the excess in bytes, a smaller rendering, or None when nothing more can go."""


def size(text: str) -> int:
    """How GitHub measures `text` against its limit: UTF-8 bytes."""
    return len(text.encode("utf-8"))


def shrink(text: str, steps: Iterable[Shrink], *, limit: int = GITHUB_TEXT_LIMIT) -> str:
    """`text`, or the smaller renderings of `steps`, each tried in order for as long as the
    text is over `limit` and the step can cut more. The result may still be too long:
    pass it to `fit`."""
    for step in steps:
        while size(text) > limit:
            smaller = step(size(text) - limit)
            if smaller is None:
                break
            text = smaller
    return text


def fit(text: str, limit: int = GITHUB_TEXT_LIMIT, marker: str = TRUNCATED) -> str:
    """`text` if it fits `limit`; else its start, cut after a whole line where there is one,
    with an open code fence closed and `marker` (saying that something was cut) appended."""
    if size(text) <= limit:
        return text
    budget = limit - size(marker)
    if budget <= 0:
        return _head(marker, limit)
    head = _head(text, budget)
    while True:
        line_end = head.rfind("\n")
        if line_end > 0:
            head = head[:line_end]
        closing = _closing_fence(head)
        if size(head) + size(closing) <= budget:
            return head + closing + marker
        head = _head(head, budget - size(closing))


def _head(text: str, limit: int) -> str:
    """The longest start of `text` at most `limit` bytes (never half a character)."""
    return text.encode("utf-8")[: max(limit, 0)].decode("utf-8", "ignore")


def _closing_fence(text: str) -> str:
    """What closes the code fence left open at the end of `text` (CommonMark), or ""."""
    opened: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match is None:
            continue
        fence, rest = match.groups()
        if opened is None:
            opened = fence
        elif fence[0] == opened[0] and len(fence) >= len(opened) and not rest.strip():
            opened = None
    return "" if opened is None else "\n" + opened
