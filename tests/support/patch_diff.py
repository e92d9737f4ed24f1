"""Line diffs of patched YAML, in the original's line numbers (shared by patch tests)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


def lines_of(text: str) -> list[str]:
    """Lines split on LF only (`str.splitlines` also splits on U+2028, FF, NEL...)."""
    return text.split("\n")


@dataclass(frozen=True)
class Diff:
    """How the patched text differs from the original, in the original's line numbers."""

    changed: frozenset[int]
    """1-based original lines that were deleted or rewritten."""
    inserted_at: frozenset[int]
    """1-based original lines before which only new lines were inserted."""

    @property
    def touched(self) -> frozenset[int]:
        return self.changed | self.inserted_at


def diff(original: str, patched: str, *, earliest: bool = False) -> Diff:
    """The lines difflib finds changed. A deleted block whose last line is also the line
    before it (a blank line between two items) can be told as deleted there or one line
    earlier, with the same result: `earliest` tells each such block as early as it goes."""
    old = lines_of(original)
    matcher = difflib.SequenceMatcher(a=old, b=lines_of(patched), autojunk=False)
    changed: set[int] = set()
    inserted: set[int] = set()
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag == "delete" and earliest:
            while i1 > 0 and old[i1 - 1] == old[i2 - 1]:
                i1, i2 = i1 - 1, i2 - 1
        if tag in ("replace", "delete"):
            changed.update(range(i1 + 1, i2 + 1))
        elif tag == "insert":
            inserted.add(i1 + 1)
    return Diff(frozenset(changed), frozenset(inserted))


def within(path: str, ancestor: str) -> bool:
    return (
        ancestor == ""
        or path == ancestor
        or path.startswith(f"{ancestor}.")
        or path.startswith(f"{ancestor}[")
    )
