"""`revert_change`: a change undone on a file that moved on since, as `git revert` does."""

from __future__ import annotations

from flujo.spec.edit import revert_change

BEFORE = "steps:\n  - name: draft\n    config:\n      timeout_s: 5\n      max_retries: 1\n"
AFTER = BEFORE.replace("timeout_s: 5", "timeout_s: 10")


def test_lines_changed_elsewhere_since_are_kept() -> None:
    current = "# a comment added later\n" + AFTER + "  - name: check\n"
    reverted = revert_change(BEFORE, AFTER, current)
    assert reverted.text == "# a comment added later\n" + BEFORE + "  - name: check\n"


def test_the_same_line_changed_since_conflicts_at_its_line() -> None:
    reverted = revert_change(BEFORE, AFTER, AFTER.replace("timeout_s: 10", "timeout_s: 12"))
    assert reverted.text is None and reverted.conflicts == ((4, 4),)


def test_a_file_without_a_final_newline_stays_so() -> None:
    before, after = BEFORE.rstrip("\n"), AFTER.rstrip("\n")
    assert revert_change(before, after, "top: 1\n" + after).text == "top: 1\n" + before


def test_a_change_next_to_the_reverted_line_conflicts_as_in_git() -> None:
    current = AFTER.replace("max_retries: 1", "max_retries: 2")
    assert revert_change(BEFORE, AFTER, current).conflicts == ((4, 5),)
