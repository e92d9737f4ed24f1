"""The run store on SQLite and on PostgreSQL: the same tables and answers, versioned
migrations with a clear refusal of a newer schema, one repository's runs never visible to
another's, and a store that keeps working after the database restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flujo.engine.capture import captures_of_run, prune, write_captures
from flujo.engine.store import SCHEMA_VERSION, RunStore, StoreError
from flujo.engine.telemetry import SpanRecord
from flujo.learn.feedback import is_rejected, record_rejection
from tests.support.postgres import PostgresServer


def _run(store: RunStore, run_id: str, spans: int = 3) -> None:
    store.begin_run(
        run_id=run_id,
        spec_sha256="sha",
        spec_text="name: x",
        spec_path="x.yaml",
        pipeline="x",
        trace_id=1,
        mode="live",
        origin="cli",
    )
    records = []
    for i in range(spans):
        span = SpanRecord(i + 1, None, f"step {i}", 1_000 + i, {"flujo.step.name": f"s{i}"})
        span.end_ns = 2_000 + i
        records.append(span)
    store.write_spans(run_id, records)


def test_runs_spans_captures_and_feedback_round_trip(store_location: Path | str) -> None:
    store = RunStore(store_location)
    try:
        _run(store, "run-1")
        _run(store, "run-1-bis", spans=1)
        assert [r["run_id"] for r in store.list_runs()] == ["run-1-bis", "run-1"]
        assert store.find_run("run-1-b")["run_id"] == "run-1-bis"  # type: ignore[index]
        spans = store.spans("run-1")
        assert [s["step_name"] for s in spans] == ["s0", "s1", "s2"]
        assert spans[0]["span_id"] == "0000000000000001"
        row = ("run-1", "", "sha", "x.yaml", '{"q": 1}', '"a"', 0, 5.0)
        write_captures(store, [row, row], "x.yaml", keep=10)  # written twice: one row
        assert captures_of_run(store, "run-1") == [
            {"step": None, "input": {"q": 1}, "output": "a", "truncated": False}
        ]
        assert prune(store, keep=0) == 1
        fields = {"yaml_path": "", "step_name": "", "output": "1", "context": "{}"}
        point = {**fields, "state": "{}", "owner": "h:1", "run_id": "run-1", "step_index": -1}
        store.write_checkpoints([point, {**point, "step_index": 0}])
        assert store.drop_old_checkpoints(time.time() - 60) == 0
        assert store.drop_old_checkpoints(time.time() + 1) == 1
        assert store.checkpoints("run-1") == []
        patch = [{"op": "replace", "path": "/x", "value": 1}]
        record_rejection(store, "x.yaml", patch, "worse", "ana")
        record_rejection(store, "x.yaml", patch, "worse again", "ana")
        assert is_rejected(store, "x.yaml", patch)
    finally:
        store.close()


def test_a_store_of_a_newer_schema_is_refused_with_what_to_do(
    store_location: Path | str,
) -> None:
    RunStore(store_location).close()
    store = RunStore(store_location)
    store.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [("99",)])
    store.close()
    with pytest.raises(StoreError) as refused:
        RunStore(store_location)
    assert f"schema version 99, this Flujo needs {SCHEMA_VERSION}: move it aside" in str(
        refused.value
    )
    assert refused.value.exit_code == 2


def test_a_schema_3_store_gets_the_tables_of_examples_and_feedback(
    store_location: Path | str,
) -> None:
    store = RunStore(store_location)
    for table in ("captures", "evaluations", "suggestion_feedback", "cache_entries"):
        store.execute(f"DROP TABLE {table}")
    store.execute("ALTER TABLE runs DROP COLUMN prices_version")  # as schema 3 had it
    store.execute("DROP TABLE checkpoints")  # schema 5's
    store.execute("DROP INDEX runs_by_resumed")
    store.execute("ALTER TABLE runs DROP COLUMN resumed_from")
    store.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    store.close()
    store = RunStore(store_location)
    try:
        assert store.query("SELECT value FROM meta", ()) == [{"value": str(SCHEMA_VERSION)}]
        assert store.query("SELECT count(*) AS n FROM captures", ()) == [{"n": 0}]
        assert store.query("SELECT count(*) AS n FROM suggestion_feedback", ()) == [{"n": 0}]
        assert store.query("SELECT count(*) AS n FROM cache_entries", ()) == [{"n": 0}]
        assert store.query("SELECT count(prices_version) AS n FROM runs", ()) == [{"n": 0}]
        assert store.query("SELECT count(*) AS n FROM checkpoints", ()) == [{"n": 0}]
        assert store.query("SELECT count(resumed_from) AS n FROM runs", ()) == [{"n": 0}]
    finally:
        store.close()


def test_each_repository_sees_only_its_own_runs_on_a_shared_database(
    postgres_url: str,
) -> None:
    mine = RunStore(postgres_url, namespace="octo/one")
    theirs = RunStore(postgres_url, namespace="octo/two")
    try:
        _run(mine, "mine")
        _run(theirs, "theirs")
        assert [r["run_id"] for r in mine.list_runs()] == ["mine"]
        assert [r["run_id"] for r in theirs.list_runs()] == ["theirs"]
        assert theirs.spans("mine") == []
    finally:
        mine.close()
        theirs.close()


def test_the_store_works_again_after_the_database_restarts(
    postgres_server: PostgresServer,
) -> None:
    store = RunStore(postgres_server.create_database())
    try:
        _run(store, "before")
        postgres_server.restart()
        assert [r["run_id"] for r in store.list_runs()] == ["before"]  # asked again
        _run(store, "after")
        assert len(store.spans("after")) == 3
    finally:
        store.close()


def test_an_unreachable_database_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as refused:
        RunStore("postgresql://flujo:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in str(refused.value)
    assert "cannot open the run store postgresql://flujo:***@127.0.0.1:1/none" in str(refused.value)


def test_checkpoints_round_trip_and_link_a_resumed_run(store_location: Path | str) -> None:
    store = RunStore(store_location)
    try:
        _run(store, "r1", spans=1)
        row = {
            "run_id": "r1",
            "step_index": 0,
            "yaml_path": "steps[0]",
            "step_name": "a",
            "output": '"x"',
            "context": '{"k": 1}',
            "state": "{}",
            "owner": "host:1",
        }
        start = row | {"step_index": -1, "yaml_path": "", "step_name": ""}
        store.write_checkpoints([start, row])
        store.write_checkpoints([row | {"output": '"y"'}])  # written again: replaced
        rows = store.checkpoints("r1")
        assert [(r["step_index"], r["output"]) for r in rows] == [(-1, '"x"'), (0, '"y"')]
        store.mark_interrupted("r1", "the process ended")
        assert store.find_run("r1")["status"] == "cancelled"  # type: ignore[index]
        store.begin_run(
            run_id="r2",
            spec_sha256="sha",
            spec_text="name: x",
            spec_path="x.yaml",
            pipeline="x",
            trace_id=2,
            resumed_from="r1",
        )
        assert store.resumed_as("r1") == "r2" and store.resumed_as("r2") is None
        store.move_checkpoints("r1", "r2")
        assert store.checkpoints("r1") == [] and len(store.checkpoints("r2")) == 2
        store.drop_checkpoints("r2")
        assert store.checkpoints("r2") == []
    finally:
        store.close()


def test_a_percent_sign_in_a_statement_is_stored_as_written(store_location: Path | str) -> None:
    """psycopg reads `%` as a marker only in a statement sent with arguments: one without
    must not get `%%` stored (SQLite and PostgreSQL alike)."""
    store = RunStore(store_location)
    try:
        store.execute("INSERT INTO meta (key, value) VALUES ('plain', '100% plain')")
        store.execute("INSERT INTO meta (key, value) VALUES (?, '50% bound')", [("bound",)])
        rows = store.query("SELECT key, value FROM meta WHERE value LIKE '%\\%%' ESCAPE '\\'", ())
        assert sorted((r["key"], r["value"]) for r in rows) == [
            ("bound", "50% bound"),
            ("plain", "100% plain"),
        ]
        assert store.query("SELECT value FROM meta WHERE key = ?", ("plain",)) == [
            {"value": "100% plain"}
        ]
    finally:
        store.close()
