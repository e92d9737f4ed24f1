"""Realised ROI: what a merged suggestion did, from planted before/after telemetry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flujo.engine.store import RunStore
from flujo.learn.realised import realised
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


def test_flujo_roi_draws_the_realised_saving_of_a_merged_suggestion_in_chromium(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from flujo.cli import cli
    from flujo.learn.feedback import record_acceptance
    from tests.support.browser import open_page

    store, merged = _store(tmp_path)
    spec_path = str(tmp_path / "triage.yml")
    patch = [{"op": "replace", "path": "/agents/classifier/model", "value": "openai:gpt-4o-mini"}]
    record_acceptance(store, spec_path, patch, "ada")
    store.execute("UPDATE suggestion_feedback SET at = ?", [(merged,)])  # merged 30 h ago
    store.close()
    page = tmp_path / "roi.html"
    result = CliRunner().invoke(
        cli, ["roi", "--html", str(page), "--store", str(tmp_path / "runs.db")]
    )
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "Realised saving: <b>$0.0088 per run</b>" in text
    assert "Promised: not recorded with the merge" in text
    assert "<b>1</b>suggestions merged" in text
    seen = open_page(page, screenshot=tmp_path / "roi.png")
    assert seen["outside"] == []  # self-contained: no request leaves the file
    assert int(str(seen["rendered"])) == 3  # savings, before/after, monthly spend


def test_flujo_roi_without_a_store_says_so(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flujo.cli import cli

    missing = tmp_path / "none.db"
    result = CliRunner().invoke(
        cli, ["roi", "--html", str(tmp_path / "p.html"), "--store", str(missing)]
    )
    assert result.exit_code == 2 and f"no run store at {missing}" in result.output
