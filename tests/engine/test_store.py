"""The run store's span rows: what is written is what a reader gets back, whichever way
each row is written (rows without an error are written by a shorter statement, shared
extra attributes are encoded once per batch, the run's row is checked once per batch)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flujo.engine import telemetry as tm
from flujo.engine.results import PipelineResult
from flujo.engine.store import RunStore
from flujo.engine.telemetry import RunTelemetry, SpanRecord, StepAttributes


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    db = RunStore(tmp_path / "runs.db")
    yield db  # type: ignore[misc]
    db.close()


def begin(store: RunStore, run_id: str, telemetry: RunTelemetry) -> None:
    store.begin_run(
        run_id=run_id,
        spec_sha256="sha",
        spec_text="steps: []\n",
        spec_path=None,
        pipeline="p",
        trace_id=telemetry.trace_id,
        mode="fake",
        origin="test",
    )


_COLUMNS = {tm.ATTEMPT, tm.COST, tm.GEN_AI_MODEL, tm.GEN_AI_SYSTEM, tm.CAUSE}
_COLUMNS |= {tm.GEN_AI_INPUT_TOKENS, tm.GEN_AI_OUTPUT_TOKENS}
_COLUMNS |= {tm.STEP_NAME, tm.STEP_KIND, tm.YAML_PATH, tm.YAML_LINE}


def _stored_attributes(span: SpanRecord) -> dict[str, Any]:
    """What the store gives back of a span's attributes: all but the spec's hash (the run's
    row has it) and those with a column of their own whose value is None (NULL), and the
    failure cause only on a failed span."""
    expected = {
        k: v
        for k, v in span.attributes.items()
        if k != tm.SPEC_SHA and not (v is None and k in _COLUMNS)
    }
    if span.status != "ERROR":
        expected.pop(tm.CAUSE, None)
    return expected


def test_every_kind_of_span_reads_back_as_it_was_recorded(store_location: Path | str) -> None:
    store = RunStore(store_location)  # both backends: each shape of row has its statement
    try:
        _every_kind_of_span_reads_back(store)
    finally:
        store.close()


def _every_kind_of_span_reads_back(store: RunStore) -> None:
    telemetry = RunTelemetry("r1", "sha", "fake", "test")
    root = telemetry.start("flujo.run p", None, {tm.YAML_LINE: 1})
    step = {tm.STEP_NAME: "a", tm.STEP_KIND: "step", tm.YAML_PATH: "steps[0]", tm.YAML_LINE: 3}
    ok = telemetry.start("a", root, step, 1)
    ok.attributes |= {tm.COST: 0.5, tm.GEN_AI_MODEL: "m", "flujo.step.mocked": True}
    ok.end(True)
    one = telemetry.start("a", root, step, 2)  # 1 == True: must not share True's JSON
    one.attributes["flujo.step.mocked"] = 1
    one.end(True)
    failed = telemetry.start("a", root, step, 3)
    failed.attributes |= {tm.CAUSE: "provider", tm.HTTP_STATUS: 500, "flujo.context.writes": ["k"]}
    failed.end(False, "APIError: boom")
    failed.event("flujo.retry", attempt=4, delay_s=0.5)
    called = telemetry.start("a", root, step, 4)  # a model call that failed
    called.attributes |= {tm.GEN_AI_MODEL: "m", tm.GEN_AI_INPUT_TOKENS: 3, tm.CAUSE: "model"}
    called.end(False, "validator failed")
    open_ = telemetry.start("b", root, step | {tm.STEP_NAME: "b"}, 1)  # written while open
    root.end(False, "step 'a' failed")
    root.attributes[tm.CAUSE] = "provider"
    begin(store, "r1", telemetry)
    store.finish_run(PipelineResult("r1", "sha", status="failed"), telemetry.spans)

    rows = {int(row["span_id"], 16): row for row in store.spans("r1")}
    assert len(rows) == 6
    for span in telemetry.spans:
        row = rows[span.span_id]
        assert row["attributes"] == _stored_attributes(span)
        assert type(row["attributes"].get("flujo.step.mocked")) is type(
            span.attributes.get("flujo.step.mocked")
        )
        assert row["status"] == span.status and row["error"] == span.status_message
        assert row["end_ns"] == (span.end_ns or None)
        assert row["events"] == [[n, t, a] for n, t, a in span.events]
        assert row["cause"] == (span.attributes.get(tm.CAUSE) if span.status == "ERROR" else None)
    assert rows[open_.span_id]["status"] == "UNSET"
    assert rows[root.span_id]["parent_id"] is None
    assert rows[ok.span_id]["parent_id"] == f"{root.span_id:016x}"


def test_many_spans_of_mixed_shapes_read_back_as_recorded(store_location: Path | str) -> None:
    """SQLite writes several rows per statement (32, then 16, 8, … for the rest of a
    batch): rows on either side of each boundary, of every shape, and spans written open
    then again once ended read back as they were recorded."""
    store = RunStore(store_location)
    try:
        telemetry = RunTelemetry("r1", "sha", "fake", "test")
        root = telemetry.start("flujo.run p", None, {tm.YAML_LINE: 1})
        for i in range(120):
            step = {tm.STEP_NAME: f"s{i}", tm.STEP_KIND: "step", tm.YAML_PATH: f"steps[{i}]"}
            span = telemetry.start(f"s{i}", root, step | {tm.YAML_LINE: i + 2}, 1)
            if i % 4:
                span.attributes |= {tm.GEN_AI_MODEL: "m", tm.COST: i / 7, tm.GEN_AI_SYSTEM: "p"}
            if i % 17 == 0:
                span.event("flujo.retry", attempt=2, delay_s=0.5)
            if i % 13 == 0:
                span.attributes |= {tm.CAUSE: "model", "flujo.context.writes": [f"k{i}"]}
                span.end(False, f"failed {i}")
            elif i % 19:
                span.end(True)
        begin(store, "r1", telemetry)
        store.write_spans("r1", telemetry.spans)  # a long run's flush: some still open
        for span in telemetry.spans:
            if not span.end_ns:
                span.attributes[tm.GEN_AI_INPUT_TOKENS] = 3
                span.end(True)
        store.finish_run(PipelineResult("r1", "sha"), telemetry.spans)

        rows = {int(row["span_id"], 16): row for row in store.spans("r1")}
        assert len(rows) == len(telemetry.spans) == 121
        for span in telemetry.spans:
            row = rows[span.span_id]
            assert row["attributes"] == _stored_attributes(span)
            assert (row["name"], row["status"], row["error"]) == (
                span.name,
                span.status,
                span.status_message,
            )
            assert (row["start_ns"], row["end_ns"]) == (span.start_ns, span.end_ns)
            assert row["cost_usd"] == span.attributes.get(tm.COST)
            assert row["events"] == [[n, t, a] for n, t, a in span.events]
    finally:
        store.close()


def test_rows_of_one_statement_read_back_their_own_model_kind_and_attributes(
    store_location: Path | str,
) -> None:
    """SQLite binds a text all rows of a statement have in common (model, provider, kind,
    extra attributes) once: a row whose text differs from the others' in its statement
    (of 32 rows, then 16, 8, …) reads back its own."""
    store = RunStore(store_location)
    try:
        telemetry = RunTelemetry("r1", "sha", "fake", "test")
        root = telemetry.start("flujo.run p", None, {tm.YAML_LINE: 1})
        for i in range(100):
            step = StepAttributes(
                {tm.STEP_NAME: f"s{i}", tm.STEP_KIND: "loop" if i == 40 else "step"}
                | {tm.YAML_PATH: f"steps[{i}]", tm.YAML_LINE: i + 2}
                | ({"flujo.step.extra": "x"} if i in (77, 98) else {})
            )
            span = telemetry.start(f"s{i}", root, step, 1)
            span.attributes |= {tm.GEN_AI_SYSTEM: "q" if i == 31 else "p", tm.COST: 0.25}
            span.attributes |= {tm.GEN_AI_MODEL: "m2" if i in (5, 40, 99) else "m"}
            span.attributes |= {tm.GEN_AI_INPUT_TOKENS: 1, tm.GEN_AI_OUTPUT_TOKENS: 2}
            span.end(True)
        root.end(True)
        begin(store, "r1", telemetry)
        store.finish_run(PipelineResult("r1", "sha"), telemetry.spans)

        rows = {int(row["span_id"], 16): row for row in store.spans("r1")}
        assert len(rows) == len(telemetry.spans) == 101
        for span in telemetry.spans:
            assert rows[span.span_id]["attributes"] == _stored_attributes(span)
        models = [rows[span.span_id]["attributes"][tm.GEN_AI_MODEL] for span in telemetry.spans[1:]]
        assert [i for i, model in enumerate(models) if model == "m2"] == [5, 40, 99]
    finally:
        store.close()


def test_spans_of_steps_read_back_as_recorded_in_runs_of_any_mode_and_origin(
    store_location: Path | str,
) -> None:
    """A step's columns that do not change from span to span are worked out once per step
    (and run mode and origin): runs of other modes and origins, spans with attributes
    besides a model call's, failed, open and imported steps' spans read back as
    recorded all the same."""
    store = RunStore(store_location)
    try:
        steps = [
            StepAttributes({tm.YAML_PATH: "steps[0]", tm.YAML_LINE: 3, tm.STEP_NAME: "a"}),
            StepAttributes({tm.YAML_PATH: "steps[0]", tm.STEP_NAME: "b", tm.YAML_FILE: "lib.yaml"}),
        ]
        call = {tm.GEN_AI_SYSTEM: "openai", tm.GEN_AI_MODEL: "m", tm.COST: 0.5}
        call |= {tm.GEN_AI_INPUT_TOKENS: 3, tm.GEN_AI_OUTPUT_TOKENS: 4}
        runs = (("r1", "fake", "test"), ("r2", "live", "cli"), ("r3", "fake", "test"))
        for run_id, mode, origin in runs:
            telemetry = RunTelemetry(run_id, "sha", mode, origin)
            root = telemetry.start("flujo.run p", None, {tm.YAML_LINE: 1})
            for step in steps:
                name = step[tm.STEP_NAME]
                telemetry.start(name, root, step, 1).end(True)
                called = telemetry.start(name, root, step, 2)
                called.attributes |= call
                called.end(True)
                unpriced = telemetry.start(name, root, step, 3)
                unpriced.attributes |= call | {tm.COST: None}
                unpriced.end(True)
                cached = telemetry.start(name, root, step, 4)
                cached.attributes |= call | {tm.GEN_AI_CACHED_INPUT_TOKENS: 2}
                cached.end(True)
                failed = telemetry.start(name, root, step, 5)
                failed.attributes |= call | {tm.CAUSE: "model"}
                failed.end(False, "validator failed")
                cancelled = telemetry.start(name, root, step, 6)
                cancelled.attributes[tm.CAUSE] = "cancelled"
                cancelled.end(False, "cancelled")
                mocked = telemetry.start(name, root, step)  # no attempt
                mocked.attributes["flujo.step.mocked"] = True
                mocked.end(True)
                retried = telemetry.start(name, root, step, 7)
                retried.event("flujo.retry", attempt=8, delay_s=0.5)
                retried.end(True)
                telemetry.start(name, root, step, 8)  # still open
            root.end(True)
            begin(store, run_id, telemetry)
            store.finish_run(PipelineResult(run_id, "sha"), telemetry.spans)

            rows = {int(row["span_id"], 16): row for row in store.spans(run_id)}
            assert len(rows) == len(telemetry.spans) == 19
            for span in telemetry.spans:
                row = rows[span.span_id]
                assert row["attributes"] == _stored_attributes(span)
                assert row["attributes"][tm.RUN_MODE] == mode
                assert (row["name"], row["status"], row["error"]) == (
                    span.name,
                    span.status,
                    span.status_message,
                )
                assert (row["start_ns"], row["end_ns"]) == (span.start_ns, span.end_ns or None)
                assert row["events"] == [[n, t, a] for n, t, a in span.events]
        assert set(steps[0].derived) == {("fake", "test"), ("live", "cli")}
    finally:
        store.close()


def test_span_ids_are_unique_nonzero_and_fit_sqlite_integers() -> None:
    telemetry = RunTelemetry("r", "sha")
    root = telemetry.start("root", None, {})
    ids = [telemetry.start(f"s{i}", root, {}, 1).span_id for i in range(1000)]
    ids.append(root.span_id)
    assert len(set(ids)) == len(ids)
    assert all(0 < i < 2**63 for i in ids)
    assert RunTelemetry("r2", "sha").start("root", None, {}).span_id != root.span_id


def test_a_started_span_has_every_field_of_a_new_span() -> None:
    """`RunTelemetry.start` sets a new span's fields one by one (calling the class costs
    more): none is left unset, each is what the class would have made."""
    telemetry = RunTelemetry("r", "sha", "fake", "test")
    root = telemetry.start("root", None, {tm.YAML_LINE: 1})
    step = StepAttributes({tm.STEP_NAME: "a"})
    span = telemetry.start("a", root, step, 2)
    merged = {**telemetry.base, tm.STEP_NAME: "a", tm.ATTEMPT: 2}
    assert span == SpanRecord(span.span_id, root.span_id, "a", span.start_ns, merged, step=step)
    assert root == SpanRecord(root.span_id, None, "root", root.start_ns, root.attributes)
    assert root.attributes == {**telemetry.base, tm.YAML_LINE: 1}


def test_spans_of_a_run_never_begun_are_refused_and_foreign_keys_stay_on(
    store: RunStore,
) -> None:
    telemetry = RunTelemetry("ghost", "sha")
    telemetry.start("flujo.run p", None, {}).end(True)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.write_spans("ghost", telemetry.spans)
    assert store.query("SELECT count(*) AS n FROM spans", ())[0]["n"] == 0
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # still checked
        store.execute(
            "INSERT INTO runs (run_id, spec_sha256, status, started_at) VALUES (?, ?, ?, ?)",
            [("r", "no such spec", "running", 0.0)],
        )
    begin(store, "ghost", telemetry)  # the store still works after the refusal
    store.write_spans("ghost", telemetry.spans)
    assert len(store.spans("ghost")) == 1
