"""The planner against brute force on generated registries, and its explanations."""

from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flujo.spec.marketplace import MarketplaceQuery, Offer, Plan


def brute_force(offers: list[Offer], q: MarketplaceQuery) -> list[Plan]:
    """Every simple plan (no type twice) meeting the constraints, best first."""
    found: list[Plan] = []

    def walk(here: str, path: tuple[Offer, ...], seen: frozenset[str]) -> None:
        if here == q.target and path:
            found.append(Plan(path))
            return
        if len(path) == q.max_steps:
            return
        for o in offers:
            if o.source == here and o.target not in seen and o.success > 0:
                walk(o.target, (*path, o), seen | {o.target})

    walk(q.source, (), frozenset({q.source}))
    ok = [
        p
        for p in found
        if p.success >= q.min_success - 1e-12
        and (q.max_latency_p95 is None or p.latency_p95_s <= q.max_latency_p95 + 1e-12)
    ]
    return sorted(ok, key=lambda p: objective(p, q))


def objective(plan: Plan, q: MarketplaceQuery) -> float:
    return plan.cost_usd if q.minimize == "cost" else plan.latency_p95_s


def registry(seed: int, types: int, skills: int) -> list[Offer]:
    rng = random.Random(seed)
    names = [f"T{i}" for i in range(types)]
    return [
        Offer(
            f"s{i}",
            rng.choice(names),
            rng.choice(names),
            round(rng.uniform(0.0, 0.01), 5),
            round(rng.uniform(0.05, 3.0), 3),
            round(rng.uniform(0.6, 1.0), 3),
        )
        for i in range(skills)
    ]


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    types=st.integers(2, 7),
    skills=st.integers(1, 22),
    minimize=st.sampled_from(["cost", "latency"]),
    min_success=st.sampled_from([0.0, 0.5, 0.7, 0.9]),
    max_latency=st.sampled_from([None, 2.0, 4.0]),
    max_steps=st.integers(1, 4),
)
def test_the_best_plan_is_the_brute_force_optimum(
    seed: int,
    types: int,
    skills: int,
    minimize: str,
    min_success: float,
    max_latency: float | None,
    max_steps: int,
) -> None:
    offers = registry(seed, types, skills)
    q = MarketplaceQuery(
        "T0",
        "T1",
        minimize,
        min_success,
        max_latency,
        max_steps=max_steps,
        limit=3,  # type: ignore[arg-type]
    )
    answer = q.run(offers)
    expected = brute_force(offers, q)
    if not expected:
        assert not answer.feasible and answer.explanation
        return
    assert answer.feasible
    assert objective(answer.plans[0], q) == pytest.approx(objective(expected[0], q))
    for plan in answer.plans:  # every plan offered meets the constraints, in order
        assert plan.success >= min_success - 1e-12 and len(plan.steps) <= max_steps
        assert max_latency is None or plan.latency_p95_s <= max_latency + 1e-12
        assert [s.target for s in plan.steps][-1] == "T1"
        assert all(a.target == b.source for a, b in pairwise(plan.steps))
    values = [objective(p, q) for p in answer.plans]
    assert values == sorted(values)


SQL = [
    Offer("text_to_sql", "str", "SQL", 0.002, 2.0, 0.92, "baseline only"),
    Offer("text_to_sql_mini", "str", "SQL", 0.0003, 1.2, 0.81, "baseline only"),
    Offer("sql_validate", "SQL", "ValidatedSQL", 0.0, 0.05, 0.97, "baseline only"),
    Offer("summarize", "str", "Summary", 0.001, 1.5, 0.95, "baseline only"),
]


def test_success_compounds_along_the_plan_and_decides_between_models() -> None:
    cheapest = MarketplaceQuery("str", "ValidatedSQL").run(SQL).plans[0]
    assert cheapest.names == ["text_to_sql_mini", "sql_validate"]
    reliable = MarketplaceQuery("str", "ValidatedSQL", min_success=0.85).run(SQL).plans[0]
    assert reliable.names == ["text_to_sql", "sql_validate"]
    assert reliable.success == pytest.approx(0.92 * 0.97)
    assert reliable.cost_usd == pytest.approx(0.002)
    assert reliable.latency_p95_s == pytest.approx(2.05)


def test_an_infeasible_query_names_the_constraint_and_the_closest_plan() -> None:
    too_sure = MarketplaceQuery("str", "ValidatedSQL", min_success=0.95).run(SQL)
    assert not too_sure.feasible
    assert too_sure.explanation == (
        "the most reliable plan (text_to_sql → sql_validate) succeeds 0.892, "
        "outside min_success 0.95"
    )
    too_fast = MarketplaceQuery("str", "ValidatedSQL", max_latency_p95=1.0).run(SQL)
    assert "fastest plan (text_to_sql_mini → sql_validate) has p95 1.25 s" in str(
        too_fast.explanation
    )
    both = MarketplaceQuery("str", "ValidatedSQL", min_success=0.85, max_latency_p95=1.5).run(SQL)
    assert "no plan meets all of them at once" in str(both.explanation)


def test_a_type_nothing_produces_says_what_can_be_reached() -> None:
    answer = MarketplaceQuery("str", "Chart").run(SQL)
    assert answer.explanation == (
        "no chain of skills turns `str` into `Chart`; from `str` they reach: "
        "`SQL`, `Summary`, `ValidatedSQL`"
    )
    allowed = MarketplaceQuery("str", "ValidatedSQL", allow=["summarize"]).run(SQL)
    assert str(allowed.explanation).startswith("no chain of allowed skills")


def test_cycles_and_zero_cost_adapters_terminate() -> None:
    loop = [
        Offer("a", "str", "JSON", 0.0, 0.0, 1.0, adapter=True),
        Offer("b", "JSON", "str", 0.0, 0.0, 1.0, adapter=True),
        *SQL,
    ]
    plans = MarketplaceQuery("str", "ValidatedSQL", limit=10).run(loop).plans
    assert all(len({s.source for s in p.steps}) == len(p.steps) for p in plans)
    assert not math.isnan(plans[0].cost_usd)
