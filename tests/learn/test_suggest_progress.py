"""`suggest` reports its progress (what `flujo suggest` draws on a terminal)."""

from __future__ import annotations

import shutil
from pathlib import Path

from flujo.engine.store import RunStore
from flujo.learn.suggest import suggest
from flujo.spec.model import Pipeline
from tests.support.learn import PLANTED, SEEDS, record


async def test_suggest_tells_progress_of_each_opportunity_weighed(tmp_path: Path) -> None:
    spec = tmp_path / "cheaper_model.yaml"
    shutil.copy(SEEDS / "cheaper_model.yaml", spec)
    store = RunStore(tmp_path / "runs.db")
    record(store, Pipeline.from_yaml(spec), PLANTED["cheaper_model"][0])
    calls: list[tuple[int, int]] = []
    report = await suggest(spec, store, progress=lambda done, total: calls.append((done, total)))
    store.close()
    assert report.suggestions and report.opportunities >= 1
    total = report.opportunities
    assert calls == [(i, total) for i in range(total + 1)]
