"""Realised ROI: what a merged suggestion did, from planted before/after telemetry."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from flujo.engine.store import RunStore
from flujo.learn.feedback import record_acceptance, record_rejection
from flujo.learn.promises import Promise, record_promise
from flujo.learn.realised import realised
from flujo.learn.roi_figures import realised_by_month, suggestion_figures
from flujo.learn.roi_page import roi_page
from flujo.spec.model import Pipeline
from tests.support.learn import Profile, Telemetry, record
from tests.support.specs import spec

BEFORE = spec(
    """
    name: triage
    agents:
      classifier: {model: "openai:gpt-4o"}
    steps:
      - name: classify
        uses: agents.classifier
    """
)
AFTER = BEFORE.replace("gpt-4o", "gpt-4o-mini")


def _store(
    tmp_path: Path, *, after_runs: int = 30, fake_after: bool = False
) -> tuple[RunStore, float]:
    store = RunStore(tmp_path / "runs.db")
    merged = time.time() - 30 * 3600
    path = tmp_path / "triage.yml"  # one file, two versions (before and after the merge)
    path.write_text(BEFORE)
    old = Pipeline.from_yaml(path)
    path.write_text(AFTER)
    new = Pipeline.from_yaml(path)
    slow = Profile(latency_s=2.0, cost_usd=0.01, model="gpt-4o", fail_for_good_every=10)
    fast = Profile(latency_s=0.5, cost_usd=0.002, model="gpt-4o-mini", fail_for_good_every=10)
    record(store, old, Telemetry(runs=40, profiles={"classify": slow}), end=merged - 60)
    if after_runs:
        mode = "fake" if fake_after else "live"
        after = Telemetry(runs=after_runs, profiles={"classify": fast}, mode=mode)
        record(store, new, after, end=merged + after_runs * 3600, seed=8)
    return store, merged


def test_a_merged_cheaper_model_saves_what_its_live_runs_measure(tmp_path: Path) -> None:
    store, merged = _store(tmp_path)
    found = realised(store, str(tmp_path / "triage.yml"), merged, promised=0.008)
    assert found.before.runs == 40 and found.after.runs == 30
    assert found.before.spec_sha256 != found.after.spec_sha256
    # every 10th run fails after 2 attempts, each billed: 4 of 40 and 3 of 30 runs cost double
    assert found.before.cost_per_run == pytest.approx((36 * 0.01 + 4 * 0.02) / 40)  # 0.011
    assert found.after.cost_per_run == pytest.approx((27 * 0.002 + 3 * 0.004) / 30)  # 0.0022
    assert found.saving_per_run == pytest.approx(0.0088)
    assert found.promised_saving_per_run == 0.008
    low, high = found.before.cost_interval or (0.0, 0.0)
    assert low < 0.011 < high
    assert found.not_measured is None
    assert found.before.latency_p50_s is not None and found.after.latency_p50_s is not None
    assert found.after.latency_p50_s < found.before.latency_p50_s
    low, high = found.after.failure_interval
    assert found.after.failures == 3 and low < 0.1 < high  # every 10th run fails
    store.close()


def test_without_live_runs_of_the_merged_version_nothing_is_claimed(tmp_path: Path) -> None:
    store, merged = _store(tmp_path, fake_after=True)  # fake runs are no evidence
    found = realised(store, str(tmp_path / "triage.yml"), merged)
    assert found.after.runs == 0 and found.saving_per_run is None
    assert found.not_measured == "no live run of the merged version yet"
    store.close()


PROMISE = Promise(
    suggestion="0123456789ab",
    kind="cheaper_model",
    usd_per_run=0.008,
    usd_per_month=5.6,
    latency_s_per_run=-1.2,
    failures_avoided_per_month=0.0,
    confidence="high",
    runs=40,
    basis="40 live runs counted; ~700 runs/month is their observed rate (23.3/day) × 30",
    prices="2026-11-01",
)
PATCH = [{"op": "replace", "path": "/agents/classifier/model", "value": "openai:gpt-4o-mini"}]


def test_flujo_roi_draws_the_realised_saving_against_the_promise_in_chromium(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from flujo.cli import cli
    from tests.support.browser import open_page

    store, merged = _store(tmp_path)
    spec_path = str(tmp_path / "triage.yml")
    record_promise(store, spec_path, PATCH, PROMISE, pull=7, at=merged - 3600)
    record_acceptance(store, spec_path, PATCH, "ada")
    store.execute("UPDATE suggestion_feedback SET at = ?", [(merged,)])  # merged 30 h ago
    store.close()
    page = tmp_path / "roi.html"
    result = CliRunner().invoke(
        cli, ["roi", "--html", str(page), "--store", str(tmp_path / "runs.db")]
    )
    assert result.exit_code == 0, result.output
    text = page.read_text()
    promised = text.split('<td class="promised">')[1].split("</td>")[0]
    assert promised.startswith("$0.008 per run (~$5.60/month), 1.20 s per run faster")
    assert "estimated from 40 runs (40 live runs counted;" in promised
    assert "high confidence, prices 2026-11-01" in promised
    realised_text = text.split('<td class="realised">')[1].split("</td>")[0]
    assert realised_text.startswith("$0.0088 per run (~$")
    assert realised_text.endswith("from 40 live runs before and 30 after the merge")
    assert 'data-suggestion="0123456789ab"' in text and "#7 on" in text
    assert '<div class="figure" data-count="merged"><b>1</b>merged</div>' in text
    seen = open_page(page, screenshot=tmp_path / "roi.png")
    assert seen["outside"] == []  # self-contained: no request leaves the file
    assert int(str(seen["rendered"])) == 3  # savings per month, before/after, monthly spend


def test_realised_savings_per_month_count_the_merged_versions_live_runs(tmp_path: Path) -> None:
    store, merged = _store(tmp_path)
    spec_path = str(tmp_path / "triage.yml")
    record_promise(store, spec_path, PATCH, PROMISE, pull=7)
    record_acceptance(store, spec_path, PATCH, "ada")
    store.execute("UPDATE suggestion_feedback SET at = ?", [(merged,)])
    (figures,) = suggestion_figures(store, "0123456789ab")
    assert figures.state == "merged" and figures.pull == 7 and figures.promise == PROMISE
    assert figures.saving_per_run == pytest.approx(0.0088)
    months = realised_by_month(store, [figures])
    assert sum(m["runs"] for m in months) == 30  # every live run of the merged version
    assert sum(m["usd"] for m in months) == pytest.approx(30 * 0.0088)
    assert "realised $0.0088 per run" in figures.summary()
    store.close()


def test_proposed_merged_reverted_and_rejected_are_counted_from_what_happened(
    tmp_path: Path,
) -> None:
    store, _ = _store(tmp_path, after_runs=0)
    spec_path = str(tmp_path / "triage.yml")

    def patch(value: int) -> list[dict[str, object]]:
        return [{"op": "replace", "path": "/steps/0/config/timeout_s", "value": value}]

    for n in range(4):
        record_promise(store, spec_path, patch(n), replace(PROMISE, suggestion=f"s{n}"), pull=n)
    record_acceptance(store, spec_path, patch(0), "ada")
    record_rejection(store, spec_path, patch(1), "too slow", "ada")
    record_acceptance(store, spec_path, patch(2), "flujo (auto-apply)")
    record_rejection(store, spec_path, patch(2), "reverted after a regression: x", "flujo (watch)")
    states = {f.suggestion: f.state for f in suggestion_figures(store)}
    assert states == {"s0": "merged", "s1": "rejected", "s2": "reverted", "s3": "open"}
    (merged,) = [f for f in suggestion_figures(store) if f.state == "merged"]
    assert merged.realised_text() == "not measured: no live run of the merged version yet"
    page = roi_page(store)
    for count, label in ((4, "proposed"), (2, "merged"), (1, "reverted"), (1, "rejected")):
        assert f'data-count="{label}"><b>{count}</b>' in page
    store.close()


def test_flujo_roi_without_a_store_says_so(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flujo.cli import cli

    missing = tmp_path / "none.db"
    result = CliRunner().invoke(
        cli, ["roi", "--html", str(tmp_path / "p.html"), "--store", str(missing)]
    )
    assert result.exit_code == 2 and f"no run store at {missing}" in result.output
