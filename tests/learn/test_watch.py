"""The watch's statistics: regressions need a minimum of live runs and a one-sided test."""

from __future__ import annotations

import math
from pathlib import Path

from flujo.engine.store import RunStore
from flujo.learn.watch import Runs, compare, fisher_greater, mann_whitney_greater, production_runs
from flujo.spec.model import Pipeline
from tests.support.learn import SEEDS, Profile, Telemetry, record


def runs(total: int, failures: int, cost: float = 0.001, latency: float = 1.0) -> Runs:
    return Runs(
        "a" * 64,
        total,
        {"model": failures} if failures else {},
        [cost] * total,
        [latency + i * 0.001 for i in range(total)],
    )


def test_fisher_exact_matches_a_hand_computed_table() -> None:
    # new 3/3 failed vs old 0/3: P = C(3,3)C(3,0)/C(6,3) = 1/20
    assert math.isclose(fisher_greater(3, 3, 0, 3), 0.05)
    assert fisher_greater(0, 10, 5, 10) == 1.0


def test_mann_whitney_sees_a_shift_and_not_noise() -> None:
    old = [1.0 + i / 100 for i in range(40)]
    assert mann_whitney_greater([v + 1.0 for v in old], old) < 1e-6
    assert mann_whitney_greater(old, old) > 0.4


def test_more_failures_of_one_cause_is_a_regression_with_its_figures() -> None:
    report = compare(runs(40, 0), runs(40, 12), min_runs=30)
    assert report.verdict == "regression"
    (finding,) = report.findings
    assert finding.startswith("failures (cause model): 12 of 40 runs (30%) vs 0 of 40 (0%)")
    assert "live production runs: 40 of the new version" in report.summary()


def test_a_small_difference_or_too_few_runs_is_no_regression() -> None:
    assert compare(runs(40, 1), runs(40, 2), min_runs=30).verdict == "no_regression"
    few = compare(runs(40, 0), runs(10, 10), min_runs=30)
    assert few.verdict == "not_enough_runs"
    assert "10 new and 40 previous so far" in few.summary()


def test_cost_and_latency_regress_only_when_clearly_higher() -> None:
    assert compare(runs(40, 0, cost=0.001), runs(40, 0, cost=0.002), 30).verdict == "regression"
    same = compare(runs(40, 0, cost=0.001), runs(40, 0, cost=0.001), 30)
    assert same.verdict == "no_regression"
    assert any(f.startswith("cost per run: mean $0.001 vs $0.001") for f in same.figures)


def test_fake_and_test_runs_are_never_production_evidence(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    pipeline = Pipeline.from_yaml(SEEDS / "timeouts.yaml")
    profile = {"draft": Profile(1.0, 0.001, fail_for_good_every=2)}
    record(store, pipeline, Telemetry(runs=30, every_s=1, profiles=profile, mode="fake"), end=100)
    record(
        store,
        pipeline,
        Telemetry(runs=30, every_s=1, profiles=profile, origin="test"),
        end=200,
        seed=2,
    )
    record(store, pipeline, Telemetry(runs=5, every_s=1, profiles=profile), end=300, seed=3)
    counted = production_runs(store, pipeline.spec_sha256, since=0)
    assert counted.total == 5 and sum(counted.failures.values()) == 3
    store.close()
