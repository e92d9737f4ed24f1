"""The dashboard issue's text: the bot's section, merged into what people wrote around it.

One issue per repository shows the open suggestion pull requests, the suggestions waiting
(with a box to create one now), the ignored ones (with a box to un-ignore), bake-ins and
watches in progress and the last check failures. The bot owns only the text between its
two marker comments; whatever people write before or after is kept verbatim. The whole
body fits GitHub's limit however many entries there are (the longest lists are cut, and
say how many are not shown). Every string that came from a repository or a person is
escaped (`templates.pr_body.escape`): it cannot close a marker or forge a box. Pure
functions: the router (`routers/dashboard.py`) reads the data and talks to the forge.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from flujo.bot.dashboard_state import CheckFailure
from flujo.bot.pacing import Waiting
from flujo.templates.fit import GITHUB_TEXT_LIMIT, size
from flujo.templates.pr_body import escape as inert

if TYPE_CHECKING:
    from flujo.learn.roi_figures import SuggestionFigures

START = "<!-- flujo:dashboard:start (the bot rewrites everything down to the end marker) -->"
END = "<!-- flujo:dashboard:end -->"
_SECTION = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
_TICKED = re.compile(r"^\s*[-*] \[[xX]\] <!-- flujo:(create|unignore):([0-9a-f]{12,16}) -->", re.M)
TITLE_LIMIT = 160
"""Characters of a title or reason shown per entry."""

Kind = Literal["create", "unignore"]


@dataclass(frozen=True, slots=True)
class OpenPull:
    number: int
    title: str
    spec: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A rejected patch: the bot will not propose it again until it is un-ignored."""

    key: str
    """`ignore_key(spec, patch_hash)`: what its box names."""
    spec: str
    change: str
    """What the patch does, in words."""
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class InProgress:
    """A suggestion under auto-apply: baking before its merge, or watched after it."""

    number: int
    spec: str
    state: str
    last: str
    """Its latest decision, as shown on the pull request."""


@dataclass(frozen=True, slots=True)
class DashboardData:
    open_pulls: Sequence[OpenPull] = ()
    waiting: Sequence[Waiting] = ()
    ignored: Sequence[Ignored] = ()
    in_progress: Sequence[InProgress] = ()
    failures: Sequence[CheckFailure] = ()
    realised: Sequence[SuggestionFigures] = ()
    """Merged (and reverted) suggestions, newest first: promised against realised."""
    roi_url: str | None = None
    """The repository's realised-ROI page (None: the bot has no public URL)."""
    notes: Sequence[str] = field(default=())
    """Lines shown under the heading (e.g. that a suggestion cycle could not finish)."""


@dataclass(frozen=True, slots=True)
class Tick:
    kind: Kind
    key: str
    """A suggestion id (`create`) or an `ignore_key` (`unignore`)."""


def ignore_key(spec: str, patch_hash: str) -> str:
    """The name of an ignored patch's box (its spec and patch, hashed)."""
    return hashlib.sha256(f"{spec}\n{patch_hash}".encode()).hexdigest()[:16]


def describe_patch(patch: Sequence[dict[str, object]]) -> str:
    """A JSON Patch in words: `replace /steps/0/model with openai:gpt-4o-mini`."""
    parts = []
    for op in patch[:3]:
        verb, path = str(op.get("op", "?")), str(op.get("path", ""))
        value = op.get("value")
        parts.append(f"{verb} {path}" + (f" with {value}" if value is not None else ""))
    more = f" (+{len(patch) - 3} more)" if len(patch) > 3 else ""
    return "; ".join(parts) + more or "an empty patch"


def ticked(body: str) -> list[Tick]:
    """The boxes ticked in the bot's section of `body` (boxes elsewhere are people's own)."""
    found = _SECTION.search(body)
    if found is None:
        return []
    seen: dict[tuple[str, str], Tick] = {}
    for kind, key in _TICKED.findall(found.group(0)):
        seen.setdefault((kind, key), Tick(kind, key))
    return list(seen.values())


def merged_body(current: str, section: str) -> str:
    """`current` with the bot's section replaced by `section` (appended when people removed
    the markers); everything else stays as they wrote it."""
    if _SECTION.search(current) is not None:
        return _SECTION.sub(lambda _: section, current, count=1)
    return f"{current.rstrip()}\n\n{section}\n" if current.strip() else f"{section}\n"


def outside(current: str) -> str:
    """What people wrote around the bot's section."""
    return _SECTION.sub("", current)


def render(
    data: DashboardData,
    slug: str,
    *,
    now: float,
    budget: int = GITHUB_TEXT_LIMIT,
) -> str:
    """The bot's section, markers included, at most `budget` UTF-8 bytes (GitHub's limit,
    less what people wrote around it). Long lists are cut, and say how many entries are
    not shown; the headings and the commands always show."""
    at = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        START,
        "## Flujo dashboard",
        "",
        f"_Kept up to date by the Flujo bot (last update {at}). Write your own notes above "
        "or below the two marker comments; tick a box to act on it (needs write access to "
        "this repository)._",
    ]
    head += [f"\n> {inert(note, 500)}" for note in data.notes]
    if data.roi_url:
        head.append(f"\nRealised savings over time: [the ROI page]({data.roi_url}).")
    sections = [
        (
            "Open suggestion pull requests",
            [
                f"- #{p.number} {inert(p.title, TITLE_LIMIT)} (`{_code(p.spec)}`)"
                for p in data.open_pulls
            ],
            "none",
        ),
        (
            "Waiting",
            [
                f"- [ ] <!-- flujo:create:{w.suggestion} --> **Create now:** "
                f"{inert(w.title, TITLE_LIMIT)} (`{_code(w.spec)}`): {inert(w.detail, TITLE_LIMIT)}"
                for w in data.waiting
                if _ID.fullmatch(w.suggestion)
            ],
            "nothing waiting",
        ),
        (
            "Ignored",
            [
                f"- [ ] <!-- flujo:unignore:{i.key} --> **Un-ignore:** `{_code(i.spec)}`: "
                f"{inert(i.change, TITLE_LIMIT)}: {inert(i.reason, TITLE_LIMIT)} "
                f"(@{inert(i.actor, 40)})"
                for i in data.ignored
            ],
            "nothing ignored",
        ),
        (
            "Bake-ins and watches in progress",
            [
                f"- #{a.number} `{_code(a.spec)}`: {inert(a.state, 40)}, "
                f"{inert(a.last or 'no decision yet', TITLE_LIMIT)}"
                for a in data.in_progress
            ],
            "none",
        ),
        (
            "Merged suggestions: promised and realised",
            [
                f"- {f'#{f.pull} ' if f.pull else ''}`{_code(f.spec)}`, {f.state}: promised "
                f"{inert(f.promised_text(), 400)}; realised {inert(f.realised_text(), 400)}"
                for f in data.realised
            ],
            "none merged yet",
        ),
        (
            "Last check failures",
            [
                f"- `{_code(f.name)}` on {f.sha[:7]} "
                f"({datetime.fromtimestamp(f.at, UTC).strftime('%Y-%m-%d %H:%M UTC')}): "
                f"{inert(f.title, TITLE_LIMIT)}"
                for f in data.failures
            ],
            "none",
        ),
    ]
    tail = [
        "",
        "<details><summary>Commands</summary>",
        "",
        f"Comment on a suggestion pull request: `@{slug} recreate` (propose it again on "
        f"the default branch's head), `@{slug} ignore [reason]` (close it; it is never "
        f"proposed again), `@{slug} eval` (measure it on captured examples), `@{slug} "
        f"explain` (why it was suggested). On this issue: `@{slug} recreate` runs a "
        f"suggestion cycle now, `@{slug} ignore <id> [reason]` ignores a waiting "
        f"suggestion, `@{slug} explain <id>` says why it waits. Only people with write "
        "access to this repository may use them.",
        "",
        "</details>",
        END,
    ]
    fixed = "\n".join(head + tail)
    headings = {title: f"\n### {title} ({len(lines)})\n" for title, lines, _ in sections}
    room = budget - size(fixed) - sum(size(h) + 1 for h in headings.values())
    shown = _share([lines for _, lines, _ in sections], room)
    out = list(head)
    for (title, lines, empty), count in zip(sections, shown, strict=True):
        out.append(headings[title])
        kept = lines[:count]
        out += kept or ([f"_{empty}_"] if not lines else [])
        if count < len(lines):
            out.append(_more(len(lines) - count))
    return "\n".join(out + tail)


_ID = re.compile(r"[0-9a-f]{12}")
_MORE_ROOM = 120  # the "… not shown" line of a cut list


def _code(text: str) -> str:
    """Text inside inline code: one line, no backticks (they would end it) and no `<` (it
    could spell a marker comment), bounded."""
    flat = " ".join(text.split()).replace("`", "'").replace("<", "‹")
    return flat[:200]


def _more(count: int) -> str:
    return f"- _…and {count} more, not shown: GitHub limits an issue's body to 65,536 characters._"


def _share(sections: list[list[str]], room: int) -> list[int]:
    """How many lines of each section fit in `room` bytes: each section first gets an
    equal share (so a long list cannot crowd the others out), then what is left goes to
    the sections still cut, in order."""
    counts = [0] * len(sections)
    left = max(0, room - _MORE_ROOM * len(sections) - 40 * len(sections))
    share = left // max(1, len(sections))
    for rounds in (True, False):
        for i, lines in enumerate(sections):
            allowance = share if rounds else left
            used = 0
            while counts[i] < len(lines) and used + size(lines[counts[i]]) + 1 <= allowance:
                used += size(lines[counts[i]]) + 1
                counts[i] += 1
            left -= used
    return counts
