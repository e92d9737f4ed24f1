"""How `diff_specs`, `bullets` and `flowchart` scale with pipeline size.

Run from the repository root:

    .venv/bin/python benchmarks/spec_diff.py

For generated pipelines of 100 and 1,000 steps, spec_scale.py's 5-operation JSON Patch
(a description, a map's `over`, validators added, a timeout removed, a step moved) is
applied; then it times, best of a few repetitions in one warm process:

* diff: `diff_specs(old, new)` + `bullets(diff)`
* charts: the before and after `flowchart` (folded from 50 steps, as by default)

against a baseline measured in the same run on the same files: loading both versions
with `flujo.spec.load.check` (what any command must do before it can compare them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spec_scale import _patch_for, assert_valid, best_of, fmt_ms, generate, table

from flujo.spec.edit import apply_patch
from flujo.spec.load import check
from flujo.spec.review.bullets import bullets
from flujo.spec.review.diff import diff_specs
from flujo.spec.review.mermaid import flowchart


def check_data(text: str) -> dict[str, Any]:
    from flujo.spec.source import parse

    data: dict[str, Any] = parse(text).data
    return data


def main() -> None:
    rows = []
    for size, repeats in ((100, 5), (1000, 3)):
        text = generate(size)
        old = assert_valid(check(text))
        new_text = apply_patch(text, _patch_for(check_data(text)))
        new = assert_valid(check(new_text))
        load = best_of(lambda: (check(text), check(new_text)), repeats)  # noqa: B023
        diff = diff_specs(old, new)
        compare = best_of(lambda: bullets(diff_specs(old, new)), repeats)  # noqa: B023
        charts = best_of(
            lambda: (
                flowchart(old, diff.marks("old")),  # noqa: B023
                flowchart(new, diff.marks("new")),  # noqa: B023
            ),
            repeats,
        )
        lines = len(flowchart(new, diff.marks("new")).splitlines())
        rows.append(
            [
                f"{size:,}",
                str(len(diff.changes)),
                fmt_ms(load),
                f"{fmt_ms(compare)} ({compare / load:.2f}×)",
                f"{fmt_ms(charts)} ({charts / load:.2f}×)",
                str(lines),
            ]
        )
    table(
        ["steps", "changes", "load both (baseline)", "diff + bullets", "2 charts", "chart lines"],
        rows,
    )


if __name__ == "__main__":
    main()
