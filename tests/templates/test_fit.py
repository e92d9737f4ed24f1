"""GitHub's size limit, measured once (UTF-8 bytes), and the one way texts are made to fit."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from flujo.templates.fit import GITHUB_TEXT_LIMIT, TRUNCATED, fit, shrink, size


def test_size_is_utf8_bytes_as_github_measures() -> None:
    assert GITHUB_TEXT_LIMIT == 65_535
    assert size("abc") == 3 and size("é") == 2 and size("✅") == 3 and size("🙂") == 4
    # Fits by characters (and UTF-16 units) yet not by bytes: GitHub refuses it.
    text = "✅ passed\n" * 7_000
    assert len(text) < GITHUB_TEXT_LIMIT < size(text)
    cut = fit(text)
    assert size(cut) <= GITHUB_TEXT_LIMIT and cut.endswith(TRUNCATED)
    assert cut.removesuffix(TRUNCATED).endswith("✅ passed")  # cut after a whole line


def test_text_that_fits_is_left_alone() -> None:
    assert fit("short\n```\nopen") == "short\n```\nopen"
    assert fit("x" * 10, limit=10) == "x" * 10


def test_an_open_fence_is_closed_with_its_own_fence() -> None:
    text = "intro\n````json\n" + "```\n" * 50 + "line\n" * 100
    cut = fit(text, limit=300, marker="\n(cut)\n")
    assert size(cut) <= 300
    assert cut.endswith("\n````\n(cut)\n")
    tilde = fit("a\n~~~\n" + "b\n" * 400, limit=100, marker="")
    assert tilde.endswith("\n~~~") and size(tilde) <= 100


def test_no_line_break_cuts_between_characters_never_inside_one() -> None:
    cut = fit("🙂" * 100, limit=41, marker="…")
    assert cut == "🙂" * 9 + "…"
    assert fit("abc", limit=2, marker="…") == ""  # "…" alone is 3 bytes
    assert fit("abcdef", limit=0) == ""


def test_shrink_steps_in_order_while_too_long() -> None:
    calls: list[tuple[str, int]] = []
    sections = {"a": "a" * 50, "b": "b" * 50}

    def drop(name: str) -> Callable[[int], str | None]:
        def step(excess: int) -> str | None:
            calls.append((name, excess))
            if not sections.pop(name, None):
                return None
            return "".join(sections.values()) + "tail"

        return step

    text = shrink("a" * 50 + "b" * 50 + "tail", [drop("a"), drop("b")], limit=60)
    assert text == "b" * 50 + "tail" and calls == [("a", 44)]  # enough: "b" stays
    sections.update(a="a" * 50, b="b" * 50)
    calls.clear()
    text = shrink("a" * 50 + "b" * 50 + "tail", [drop("a"), drop("b")], limit=10)
    assert text == "tail" and calls == [("a", 94), ("a", 44), ("b", 44)]


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8"), max_size=600).map(lambda t: t + "\n```x\n" + t),
    limit=st.integers(0, 500),
    marker=st.sampled_from(["", TRUNCATED, "\n…🙂\n"]),
)
def test_any_text_fits_any_limit(text: str, limit: int, marker: str) -> None:
    cut = fit(text, limit=limit, marker=marker)
    assert size(cut) <= limit
    if size(text) <= limit:
        assert cut == text
