"""Provenance and failure causes: every run says how it reached its models (mode) and
what started it (origin); every failed attempt says why it failed (cause), on its span
and in the store; a store of the previous schema is migrated in place."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine import telemetry as tm
from flujo.engine.embedded_tests import run_tests
from flujo.engine.runner import Completion, Runner
from flujo.engine.session import SessionOptions
from flujo.engine.store import SCHEMA_VERSION, RunStore
from flujo.spec.model import Pipeline
from tests.support.specs import errors, spec

ONE_AGENT = spec(
    """
    name: answering
    agents:
      helper: {model: "openai:gpt-4o-mini"}
    steps:
      - name: answer
        uses: agents.helper
        input: "{{ input.question }}"
        config: {max_retries: 3, backoff: {initial_s: 0.001, max_s: 0.001}}
    """
)


class Models:
    """A model client whose every call returns `output` or raises `error`."""

    def __init__(self, output: Any = "fine", error: BaseException | None = None) -> None:
        self.output, self.error, self.calls = output, error, 0

    async def complete(self, agent: Any, step: Any, prompt: Any, feedback: Any) -> Completion:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Completion(self.output, "gpt-4o-mini", 10, 10, 0.001)


class NotFoundError(Exception):
    """Shaped like openai's: an APIError subclass with a status code."""

    status_code = 404


class APIError(Exception):
    pass


class NotFound(NotFoundError, APIError):
    pass


@pytest.fixture
def store(store_location: Path | str) -> RunStore:
    db = RunStore(store_location)
    yield db  # type: ignore[misc]
    db.close()


def failed_spans(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    return [s for s in store.spans(run_id) if s["status"] == "ERROR" and s["step_name"]]


# -- provenance -------------------------------------------------------------------------


def test_the_session_says_how_runs_reach_models(tmp_path: Path) -> None:
    assert SessionOptions().mode == "live" and SessionOptions().origin == "cli"
    assert SessionOptions(replay=tmp_path).mode == "replay"
    assert SessionOptions(fake=True).mode == "fake"
    assert SessionOptions(offline=True).mode == "mock"


async def test_mode_and_origin_are_on_the_run_and_every_span(store: RunStore) -> None:
    pipeline = Pipeline.from_yaml(ONE_AGENT)
    runner = Runner(pipeline, models=Models(), store=store, mode="replay", origin="eval")
    result = await runner.run({"question": "why?"})
    assert (result.mode, result.origin) == ("replay", "eval")
    (row,) = store.list_runs()
    assert (row["mode"], row["origin"]) == ("replay", "eval")
    spans = store.spans(result.run_id)
    assert len(spans) == 2
    for span in spans:
        assert span["attributes"][tm.RUN_MODE] == "replay"
        assert span["attributes"][tm.RUN_ORIGIN] == "eval"


async def test_code_runs_are_sdk_live_mocked_runs_mock_and_tests_test(store: RunStore) -> None:
    pipeline = Pipeline.from_yaml(
        ONE_AGENT
        + spec(
            """
            tests:
              - name: mocked
                input: {question: q}
                mocks: {answer: "a"}
                assertions: ["output == 'a'"]
            """
        )
    )
    runner = Runner(pipeline, models=Models(), store=store)
    live = await runner.run({"question": "q"})
    mocked = await runner.run({"question": "q"}, mocks={"answer": "a"})
    (tested,) = await run_tests(pipeline, runner, spec="p.yaml")
    assert tested.outcome == "passed"
    rows = {r["run_id"]: r for r in store.list_runs()}
    assert (rows[live.run_id]["mode"], rows[live.run_id]["origin"]) == ("live", "sdk")
    assert rows[mocked.run_id]["mode"] == "mock"
    (test_run,) = set(rows) - {live.run_id, mocked.run_id}
    assert (rows[test_run]["mode"], rows[test_run]["origin"]) == ("mock", "test")


def test_runs_list_and_show_give_mode_origin_and_cause(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(ONE_AGENT)
    db = str(tmp_path / "runs.db")
    cli_runner = CliRunner()
    ran = cli_runner.invoke(cli, ["run", str(path), "--input", '{"q": 1}', "--fake", "--store", db])
    assert ran.exit_code == 1  # the template names a missing key: an input failure
    listed = cli_runner.invoke(cli, ["runs", "list", "--store", db])
    header, row = listed.stdout.splitlines()
    assert "MODE" in header and "ORIGIN" in header and "SPEC" in header
    assert "failed (input)" in row and " fake " in row and " cli " in row
    assert row.endswith(str(path))
    as_json = json.loads(cli_runner.invoke(cli, ["runs", "list", "--store", db, "--json"]).stdout)
    assert as_json[0]["mode"] == "fake" and as_json[0]["origin"] == "cli"
    assert as_json[0]["cause"] == "input" and as_json[0]["spec_path"] == str(path)
    run_id = as_json[0]["run_id"]
    shown = cli_runner.invoke(cli, ["runs", "show", run_id, "--store", db]).stdout
    assert "failed (input)  mode fake  origin cli" in shown
    assert "[input] input template:" in shown
    shown_json = json.loads(
        cli_runner.invoke(cli, ["runs", "show", run_id, "--json", "--store", db]).stdout
    )
    assert shown_json["run"]["mode"] == "fake"
    (step,) = [s for s in shown_json["spans"] if s["step_name"] == "answer"]
    assert step["cause"] == "input" and step["attributes"][tm.RUN_MODE] == "fake"


# -- causes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "value"),
    [("{{ input.question }}", {"q": 1}), ("Question: {{ input.question }}", {"q": 1})],
)
async def test_a_template_missing_key_fails_at_once_as_input(
    store: RunStore, template: str, value: Any
) -> None:
    models = Models()
    pipeline = Pipeline.from_yaml(ONE_AGENT.replace("{{ input.question }}", template))
    result = await Runner(pipeline, models=models, store=store).run(value)
    assert not result.success and result.cause == "input"
    assert models.calls == 0 and result.steps["answer"].attempts == 1
    assert "input template" in (result.error or "")
    (span,) = failed_spans(store, result.run_id)
    assert span["cause"] == "input" and span["attempt"] == 1
    assert store.list_runs()[0]["cause"] == "input"


async def test_a_validator_failure_is_a_model_failure_and_is_retried(store: RunStore) -> None:
    text = ONE_AGENT.replace("config:", "validators: [non_empty]\n    config:")
    models = Models(output="")
    result = await Runner(Pipeline.from_yaml(text), models=models, store=store).run(
        {"question": "q"}
    )
    assert result.cause == "model" and models.calls == 4
    assert {s["cause"] for s in failed_spans(store, result.run_id)} == {"model"}


@pytest.mark.parametrize(
    ("error", "status"), [(TimeoutError(), None), (NotFound("Error code: 404 - no model"), 404)]
)
async def test_timeouts_and_http_errors_are_provider_failures(
    store: RunStore, error: BaseException, status: int | None
) -> None:
    result = await Runner(
        Pipeline.from_yaml(ONE_AGENT), models=Models(error=error), store=store
    ).run({"question": "q"})
    assert result.cause == "provider"
    spans = failed_spans(store, result.run_id)
    assert len(spans) == 4 and {s["cause"] for s in spans} == {"provider"}
    assert {s["attributes"].get(tm.HTTP_STATUS) for s in spans} == {status}


async def test_no_model_configured_is_a_harness_failure_never_retried(store: RunStore) -> None:
    result = await Runner(Pipeline.from_yaml(ONE_AGENT), store=store).run({"question": "q"})
    assert result.cause == "harness" and result.steps["answer"].attempts == 1
    (span,) = failed_spans(store, result.run_id)
    assert span["cause"] == "harness"


async def test_a_usage_limit_is_a_limit_failure(store: RunStore) -> None:
    text = ONE_AGENT + "usage_limits: {total_tokens: 5}\n"
    result = await Runner(Pipeline.from_yaml(text), models=Models(), store=store).run(
        {"question": "q"}
    )
    assert result.cause == "limit"
    (span,) = failed_spans(store, result.run_id)
    assert span["cause"] == "limit"


async def test_a_cancelled_run_is_recorded_as_cancelled(store: RunStore) -> None:
    class Hanging(Models):
        async def complete(self, *args: Any) -> Completion:
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    runner = Runner(Pipeline.from_yaml(ONE_AGENT), models=Hanging(), store=store)
    task = asyncio.create_task(runner.run({"question": "q"}))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = store.list_runs()
    assert row["status"] == "cancelled" and row["cause"] == "cancelled"
    (span,) = failed_spans(store, row["run_id"])
    assert span["cause"] == "cancelled"


INPUT_SCHEMA = ONE_AGENT + spec(
    """
    input_schema:
      type: object
      required: [question]
      properties:
        question: {type: string}
    """
)


async def test_input_schema_is_checked_before_the_first_step(store: RunStore) -> None:
    models = Models()
    runner = Runner(Pipeline.from_yaml(INPUT_SCHEMA), models=models, store=store)
    bad = await runner.run({"question": 3})
    assert not bad.success and bad.cause == "input" and bad.error_path == "input_schema"
    assert "does not match input_schema" in (bad.error or "") and "/question" in (bad.error or "")
    assert models.calls == 0 and bad.steps == {}
    good = await runner.run({"question": "why?"})
    assert good.success and models.calls == 1


def test_input_schema_is_validated_like_output_schema() -> None:
    found = errors(ONE_AGENT + "input_schema: {type: objekt}\n")
    assert [(d.yaml_path, d.code) for d in found] == [("input_schema.type", "invalid-schema")]


def test_run_refuses_input_that_looks_like_json_but_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(ONE_AGENT)
    db = str(tmp_path / "runs.db")
    ran = CliRunner().invoke(
        cli, ["run", str(path), "--input", '{"question":\n "q",}', "--fake", "--store", db]
    )
    assert ran.exit_code == 2
    assert "looks like JSON but does not parse" in ran.stderr and "line 2" in ran.stderr
    assert not Path(db).exists() or RunStore(db).list_runs() == []


# -- the store's schema -----------------------------------------------------------------


def test_a_schema_2_store_is_migrated_and_its_runs_are_of_unknown_provenance(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE specs (sha256 TEXT PRIMARY KEY, path TEXT, name TEXT, text TEXT NOT NULL,
            first_seen REAL NOT NULL);
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, spec_sha256 TEXT NOT NULL, spec_path TEXT,
            pipeline TEXT, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
            latency_s REAL, total_cost_usd REAL, total_tokens INTEGER, error TEXT,
            error_path TEXT, trace_id TEXT, policies TEXT);
        CREATE TABLE spans (run_id TEXT NOT NULL, span_id INTEGER NOT NULL, parent_id INTEGER,
            name TEXT NOT NULL, step_name TEXT, kind TEXT, yaml_path TEXT, line INTEGER,
            attempt INTEGER, status TEXT NOT NULL, error TEXT, start_ns INTEGER NOT NULL,
            end_ns INTEGER, cost_usd REAL, input_tokens INTEGER, output_tokens INTEGER,
            model TEXT, provider TEXT, attributes TEXT NOT NULL, events TEXT NOT NULL,
            PRIMARY KEY (run_id, span_id));
        INSERT INTO specs VALUES ('abc', 'p.yaml', 'p', 'steps: []', 1.0);
        INSERT INTO runs (run_id, spec_sha256, status, started_at)
            VALUES ('r1', 'abc', 'failed', 1.0);
        INSERT INTO spans (run_id, span_id, name, step_name, status, error, start_ns,
            attributes, events)
            VALUES ('r1', 1, 'a', 'a', 'ERROR', 'timed out after 5s', 1, '{}', '[]');
        """
    )
    db.close()
    store = RunStore(path)
    (row,) = store.list_runs()
    assert (row["mode"], row["origin"], row["cause"]) == ("unknown", "unknown", None)
    assert row["prices_version"] is None  # schema 4: the table of old costs is not known
    (span,) = store.spans("r1")
    assert span["cause"] == "provider"  # inferred from the error text of the old row
    version = store.query("SELECT value FROM meta WHERE key = 'schema_version'", ())
    assert version == [{"value": str(SCHEMA_VERSION)}] and SCHEMA_VERSION == 5
    assert row["resumed_from"] is None  # schema 5: no older run was resumed
    store.close()
    RunStore(path).close()  # opening a migrated store again changes nothing


async def test_a_cassette_miss_is_a_harness_failure_of_a_replayed_run(tmp_path: Path) -> None:
    from flujo.engine.session import run_many

    (tmp_path / "cassette").mkdir()
    options = SessionOptions(replay=tmp_path / "cassette", store=tmp_path / "runs.db")
    (result,) = await run_many(Pipeline.from_yaml(ONE_AGENT), [{"question": "q"}], options)
    assert (result.mode, result.origin, result.cause) == ("replay", "cli", "harness")
    assert result.steps["answer"].attempts == 1
    store = RunStore(tmp_path / "runs.db")
    (row,) = store.list_runs()
    assert (row["mode"], row["cause"]) == ("replay", "harness")
    (span,) = failed_spans(store, row["run_id"])
    assert span["cause"] == "harness" and "cassette" in span["error"]
    store.close()
