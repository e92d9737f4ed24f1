"""The bake-in's tally and verdict: enough fresh examples, agreement at the floor, and no
failure cause (model or provider) the baseline did not have on the same inputs."""

from __future__ import annotations

from typing import Any

from flujo.learn.bake import BakeTally, judge


def look(
    examples: int, agreed: int, before: dict[str, int], after: dict[str, int]
) -> dict[str, Any]:
    return {
        "examples": examples,
        "agreed": agreed,
        "mode": "live",
        "newest": 1000.0 + examples,
        "failures": {"before": before, "after": after},
        "disagreements": [],
        "eval_cost_usd": 0.01,
    }


def test_looks_add_up_and_a_full_agreeing_bake_merges() -> None:
    tally = BakeTally(0.0, 86400.0).add(look(12, 12, {}, {})).add(look(8, 8, {}, {}))
    assert (tally.examples, tally.agreed, tally.looks, tally.since) == (20, 20, 2, 1012.0)
    assert judge(tally, 0.95, 20).merge
    figures = "\n".join(tally.figures(0.95, 20))
    assert "Examples compared: 20 (`flujo eval` runs live" in figures
    assert "Agreement: 100% (20 of 20 examples agreed" in figures
    assert "Wilson 95% interval 84%–100%" in figures


def test_a_new_model_failure_cause_stops_it_but_one_the_baseline_had_does_not() -> None:
    new = BakeTally(0.0, 1.0).add(look(20, 20, {}, {"model": 2}))
    verdict = judge(new, 0.9, 10)
    assert not verdict.merge
    assert "the candidate failed with cause model on 2 of 20 examples" in verdict.reasons[0]
    known = BakeTally(0.0, 1.0).add(look(20, 20, {"model": 1, "input": 3}, {"model": 2}))
    assert judge(known, 0.9, 10).merge
    harness = BakeTally(0.0, 1.0).add(look(20, 20, {}, {"harness": 1}))
    assert judge(harness, 0.9, 10).merge  # only model and provider causes count


def test_too_few_examples_or_low_agreement_wait_for_a_person_and_none_is_not_measured() -> None:
    few = BakeTally(0.0, 1.0).add(look(5, 5, {}, {}))
    assert judge(few, 0.9, 10).reasons == (
        "only 5 fresh example(s) compared, fewer than the 10 `auto_apply.min_examples` needs",
    )
    low = BakeTally(0.0, 1.0).add(look(20, 15, {}, {}))
    assert "agreement 75% (15 of 20) is below the floor of 90%" in judge(low, 0.9, 10).reasons
    empty = BakeTally(0.0, 1.0)
    assert not judge(empty, 0.9, 10).merge
    assert empty.figures(0.9, 10) == [
        "Examples compared: 0 (not measured: no production input was captured since it opened).",
        "Agreement: not measured (no fresh examples compared).",
    ]
