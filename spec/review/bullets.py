"""One short Markdown bullet per semantic change, most important first.

`bullets(diff, notes)` words each `Change` for a reviewer ("🔁 **Raise** retries of
`fetch` from 1 to 3"). `notes` appends a caller's remark to a change, addressed by the
change's `key` (`agent:writer.model`, `step:fetch.config.max_retries`) or, for the first
(most important) change of a step, by the bare step name.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from flujo.spec.review.diff import Change, SpecDiff

_MAX_VALUE = 40


def bullets(diff: SpecDiff, notes: Mapping[str, str] | None = None) -> list[str]:
    """Markdown bullets (without the leading `- `), one per change, most important first."""
    notes = notes or {}
    noted_steps: set[str] = set()
    lines = []
    for change in diff.changes:
        text = describe(change)
        note = notes.get(change.key)
        if note is None and change.subject == "step" and change.name not in noted_steps:
            note = notes.get(change.name)
            noted_steps.add(change.name)
        if note:
            text = f"{text} — {note}"
        lines.append(text)
    return lines


def plain(bullet: str, *, emoji: bool = True) -> str:
    """A bullet as plain text (for a terminal or a PR title): no bold or code marks;
    without its leading emoji when `emoji` is False."""
    text = re.sub(r"(`+) ?(.*?) ?\1(?!`)", r"\2", bullet).replace("**", "")
    if not emoji:
        text = re.sub(r"^[^\w`'\"(]+", "", text)
    return text.strip()


def describe(change: Change) -> str:
    """The bullet for one change."""
    wording = _WORDING.get((change.category, change.kind)) or _WORDING.get((change.category, "*"))
    return wording(change) if wording else _generic(change)


# -- text helpers --------------------------------------------------------------------


def code(value: Any, limit: int = _MAX_VALUE) -> str:
    """`value` as an inline code span that stays one short, unbroken span."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if not text:
        return "`(empty)`"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest or text.startswith((" ", "`")) or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _model(name: Any, other: Any) -> str:
    """`gpt-4o` for `openai:gpt-4o` when both sides share the provider."""
    if isinstance(name, str) and isinstance(other, str):
        provider, _, short = name.partition(":")
        if short and other.partition(":")[0] == provider:
            return short
    return str(name)


def _where(change: Change) -> str:
    parent = change.detail.get("parent")
    if not parent or parent == "top level":
        return ""
    kind, _, rest = str(parent).partition(" of ")
    if kind.startswith("branch "):
        return f" in branch {code(kind.removeprefix('branch '))} of {code(rest)}"
    return f" in the {kind} of {code(rest)}"


def _steps_of(change: Change) -> str:
    users = change.steps
    if not users:
        return f"agent {code(change.name)}"
    if len(users) == 1:
        return code(users[0])
    shown = ", ".join(code(u) for u in users[:3])
    more = f" and {len(users) - 3} more" if len(users) > 3 else ""
    return f"agent {code(change.name)} (used by {shown}{more})"


def _raise_lower(before: Any, after: Any) -> str:
    if isinstance(before, int | float) and isinstance(after, int | float):
        return "Raise" if after > before else "Lower"
    return "Change"


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) else str(value)


def _lines_changed(before: Any, after: Any) -> str:
    old = str(before or "").splitlines()
    new = str(after or "").splitlines()
    added = removed = 0
    for line in difflib.ndiff(old, new):
        added += line.startswith("+ ")
        removed += line.startswith("- ")
    parts = [f"+{added} line{'s' * (added != 1)}"] if added else []
    if removed:
        parts.append(f"−{removed} line{'s' * (removed != 1)}")
    return f" ({', '.join(parts)})" if parts else ""


def _field(change: Change) -> str:
    return change.field.split(".")[-1] if change.field else change.category


# -- wordings ------------------------------------------------------------------------


def _step_added(c: Change) -> str:
    inner = c.detail.get("inner", 0)
    kind = "" if c.after in (None, "step") else f" ({c.after}"
    kind += f" with {inner} step{'s' * (inner != 1)})" if kind and inner else (")" if kind else "")
    after = c.detail.get("after_step")
    place = _where(c) + (f" after {code(after)}" if after else "")
    return f"✅ **Add** step {code(c.name)}{kind}{place}"


def _step_removed(c: Change) -> str:
    inner = c.detail.get("inner", 0)
    extra = f" and the {inner} step{'s' * (inner != 1)} inside it" if inner else ""
    return f"❌ **Remove** step {code(c.name)}{extra}"


def _step_moved(c: Change) -> str:
    if c.detail.get("reparented"):
        return f"🔀 **Move** {code(c.name)} from {_place(c.before)} to {_place(c.after)}"
    after, before = c.detail.get("after_step"), c.detail.get("before_step")
    where = f"after {code(after)}" if after else f"before {code(before)}"
    return f"🔀 **Reorder** {code(c.name)}: now runs {where}"


def _place(text: Any) -> str:
    text = str(text)
    if text == "top level":
        return "the top level"
    kind, _, container = text.partition(" of ")
    if kind.startswith("branch "):
        return f"branch {code(kind.removeprefix('branch '))} of {code(container)}"
    return f"the {kind} of {code(container)}"


def _step_changed(c: Change) -> str:
    def kind(name: object) -> str:  # `kind: step` is an ordinary step
        return "an ordinary step" if name == "step" else f"a {name} step"

    return f"🔧 **Turn** {code(c.name)} from {kind(c.before)} into {kind(c.after)}"


def _model_changed(c: Change) -> str:
    if c.subject == "agent":
        before, after = _model(c.before, c.after), _model(c.after, c.before)
        return f"💲 **Switch** {_steps_of(c)} from {code(before)} to {code(after)}"
    before = _model(c.detail.get("before_model"), c.detail.get("after_model"))
    after = _model(c.detail.get("after_model"), c.detail.get("before_model"))
    return f"💲 **Switch** {code(c.name)} from {code(before)} to {code(after)}"


def _prompt(c: Change) -> str:
    who = _steps_of(c) if len(c.steps) == 1 else f"agent {code(c.name)}"
    return f"✏️ **Edit** the prompt of {who}{_lines_changed(c.before, c.after)}"


def _validator(c: Change) -> str:
    name = code(c.detail.get("validator", _field(c)))
    if c.kind == "added":
        return f"✅ **Add** validator {name} to step {code(c.name)}"
    if c.kind == "removed":
        return f"❌ **Remove** validator {name} from step {code(c.name)}"
    return f"🛡️ **Change** validator {name} of {code(c.name)}: {_params(c.before, c.after)}"


def _params(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    parts = []
    for key in [*after, *(k for k in before if k not in after)]:
        if before.get(key) != after.get(key):
            parts.append(f"{code(key)} {_value(before.get(key))} → {_value(after.get(key))}")
    return ", ".join(parts[:3]) + (" …" if len(parts) > 3 else "")


def _value(value: Any) -> str:
    return "unset" if value is None else code(value)


def _retries(c: Change) -> str:
    if c.field.endswith("backoff"):
        return f"🔁 **Change** the retry backoff of {code(c.name)}"
    verb = _raise_lower(c.before, c.after)
    return f"🔁 **{verb}** retries of {code(c.name)} from {c.before} to {c.after}"


def _timeout(c: Change) -> str:
    if c.before is None:
        return f"⏱️ **Set** a timeout of {_seconds(c.after)} on {code(c.name)}"
    if c.after is None:
        return f"⏱️ **Remove** the timeout of {code(c.name)} (was {_seconds(c.before)})"
    verb = _raise_lower(c.before, c.after)
    span = f"from {_seconds(c.before)} to {_seconds(c.after)}"
    return f"⏱️ **{verb}** the timeout of {code(c.name)} {span}"


def _branches(c: Change) -> str:
    branch = c.detail.get("branch")
    if branch is not None or _field(c) == "default":
        label = code(branch) if branch is not None else "the default branch"
        label = f"branch {label}" if branch is not None else label
        if c.kind == "added":
            return f"🔀 **Add** {label} to {code(c.name)}"
        if c.kind == "removed":
            return f"🔀 **Remove** {label} from {code(c.name)}"
    span = f"from {_value(c.before)} to {_value(c.after)}"
    return f"🔀 **Change** {code(_field(c))} of {code(c.name)} {span}"


def _loop(c: Change) -> str:
    if _field(c) == "max_loops":
        verb = _raise_lower(c.before, c.after)
        return f"🔄 **{verb}** the loop limit of {code(c.name)} from {c.before} to {c.after}"
    return f"🔄 **Change** the exit condition of {code(c.name)} to {_value(c.after)}"


def _condition(c: Change) -> str:
    return f"🔀 **Change** the condition of {code(c.name)} to {code(c.after)}"


def _map(c: Change) -> str:
    return f"🔄 **Map** {code(c.name)} over {code(c.after)} instead of {code(c.before)}"


def _uses(c: Change) -> str:
    if c.subject == "agent":
        if c.kind == "added":
            return f"➕ **Add** agent {code(c.name)} ({code(c.after)})"
        return f"➖ **Remove** agent {code(c.name)}"
    if c.before is None:
        return f"🔧 **Make** {code(c.name)} use {code(c.after)}"
    if c.after is None:
        return f"🔧 **Make** {code(c.name)} pass its input through (was {code(c.before)})"
    return f"🔧 **Make** {code(c.name)} use {code(c.after)} instead of {code(c.before)}"


def _named(noun: str, icon: str) -> Callable[[Change], str]:
    def wording(c: Change) -> str:
        verb = {"added": "Add", "removed": "Remove"}.get(c.kind, "Change")
        what = f" ({', '.join(c.detail.get('fields', []))})" if c.kind == "changed" else ""
        return f"{icon} **{verb}** {noun} {code(c.name, 60)}{what}"

    return wording


def _limits(c: Change) -> str:
    label = {"total_cost_usd": "the cost cap per run", "total_tokens": "the token cap per run"}
    what = label.get(_field(c), code(_field(c)))
    if c.after is None:
        return f"🧾 **Remove** {what} (was {c.before})"
    if c.before is None:
        return f"🧾 **Set** {what} to {c.after}"
    return f"🧾 **{_raise_lower(c.before, c.after)}** {what} from {c.before} to {c.after}"


def _generic(c: Change) -> str:
    subject = code(c.name) if c.subject == "step" else f"{c.subject} {code(c.name)}"
    if c.subject == "agent":
        subject = _steps_of(c)
    if c.subject == "pipeline":
        subject = "the pipeline"
    what = code(c.field or c.category)
    if c.before is None:
        return f"⚙️ **Set** {what} of {subject} to {code(c.after)}"
    if c.after is None:
        return f"⚙️ **Unset** {what} of {subject} (was {code(c.before)})"
    return f"⚙️ **Change** {what} of {subject} from {code(c.before)} to {code(c.after)}"


def _description(c: Change) -> str:
    subject = "the pipeline" if c.subject == "pipeline" else code(c.name)
    return f"📝 **Reword** the description of {subject}"


_WORDING: dict[tuple[str, str], Callable[[Change], str]] = {
    ("step", "added"): _step_added,
    ("step", "removed"): _step_removed,
    ("step", "moved"): _step_moved,
    ("step", "renamed"): lambda c: f"🏷️ **Rename** step {code(c.before)} to {code(c.after)}",
    ("step", "changed"): _step_changed,
    ("model", "*"): _model_changed,
    ("prompt", "*"): _prompt,
    ("validators", "*"): _validator,
    ("retries", "*"): _retries,
    ("timeout", "*"): _timeout,
    ("branches", "*"): _branches,
    ("loop", "*"): _loop,
    ("condition", "*"): _condition,
    ("map", "*"): _map,
    ("uses", "*"): _uses,
    ("tests", "*"): _named("test", "🧪"),
    ("policies", "*"): _named("policy", "📜"),
    ("limits", "*"): _limits,
    ("description", "*"): _description,
}
