"""Captured examples and `flujo eval`: capture at run time, redaction, agreement on a
candidate the fake provider answers differently on a known share of inputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from flujo.engine.capture import REDACTED, CaptureSettings, Redactor, captures_of_run, encode
from flujo.engine.fake_openai import ChatRequest, FakeBehaviour, FakeOpenAI
from flujo.engine.session import SessionOptions, run_many
from flujo.engine.store import RunStore
from flujo.learn.evaluate import evaluate, load_examples, wilson
from flujo.spec.model import Pipeline

SPEC = """\
version: "1"
name: triage
agents:
  classifier:
    model: openai:gpt-4o
    system_prompt: Classify the ticket.
    output_schema:
      type: object
      required: [label]
      properties:
        label: {type: string}
steps:
  - name: classify
    uses: agents.classifier
    input: "{{ input.ticket }}"
tests:
  - name: labels
    input: {ticket: "ticket 1"}
    assertions: ["result.output.label == 'billing'"]
    mocks: {classify: {label: billing}}
telemetry:
  capture: {rate: 1.0, max_bytes: 4096, redact: ["secret-\\\\d+"]}
"""
N = 40
DIFFERENT_EVERY = 5  # the candidate model answers differently on 1 input in 5 (20%)


def responder(chat: ChatRequest) -> str | None:
    number = int("".join(c for c in chat.prompt if c.isdigit()) or 0)
    label = "billing"
    if chat.model == "gpt-4o-mini" and number % DIFFERENT_EVERY == 0:
        label = "other"
    return json.dumps({"label": label})


def inputs() -> list[dict[str, str]]:
    return [{"ticket": f"ticket {i} key sk-{'a' * 20} secret-{i}"} for i in range(N)]


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "triage.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


async def _record(spec: Path, store: Path, *, live: bool) -> list[Any]:
    pipeline = Pipeline.from_yaml(spec)
    async with FakeOpenAI(FakeBehaviour(responder=responder)) as server:
        # a separate local server used through its URL: runs are `live`, as with a provider
        options = SessionOptions(base_url=server.base_url, store=store, export=False)
        if not live:
            options = SessionOptions(fake=True, store=store, export=False)
        return await run_many(pipeline, inputs(), options)


def test_redaction_and_size_cap() -> None:
    redactor = Redactor(("secret-\\d+",))
    value = {"api_key": "abc", "text": "use sk-" + "x" * 30 + " and secret-42", "n": 3}
    assert redactor.value(value) == {
        "api_key": REDACTED,
        "text": f"use {REDACTED} and {REDACTED}",
        "n": 3,
    }
    text, cut = encode("y" * 1000, redactor, 100)
    assert cut and len(text.encode()) <= 100


def test_capture_settings_from_environment(spec: Path) -> None:
    pipeline = Pipeline.from_yaml(spec)
    assert CaptureSettings.for_pipeline(pipeline, {}).rate == 1.0
    env = {"FLUJO_CAPTURE_RATE": "0", "FLUJO_CAPTURE_MAX_BYTES": "128"}
    settings = CaptureSettings.for_pipeline(pipeline, env)
    assert settings.rate == 0 and not settings.enabled and settings.max_bytes == 128


def test_live_runs_are_captured_redacted_and_candidate_agreement_is_measured(
    spec: Path, tmp_path: Path
) -> None:
    store_path = tmp_path / "flujo.db"
    results = asyncio.run(_record(spec, store_path, live=True))
    assert {r.mode for r in results} == {"live"}
    store = RunStore(store_path)
    captured = captures_of_run(store, results[3].run_id)
    steps = {c["step"]: c for c in captured}
    assert steps["classify"]["input"] == f"ticket 3 key {REDACTED} {REDACTED}"
    assert steps["classify"]["output"] == {"label": "billing"}
    assert len(load_examples(store, str(spec))) == N

    candidate = Pipeline.from_yaml(SPEC.replace("openai:gpt-4o\n", "openai:gpt-4o-mini\n"))

    progress: list[tuple[int, int]] = []  # what `flujo eval` shows on a terminal

    async def run_eval() -> Any:
        async with FakeOpenAI(FakeBehaviour(responder=responder)) as server:
            options = SessionOptions(base_url=server.base_url)
            return await evaluate(
                Pipeline.from_yaml(spec),
                candidate,
                store,
                options,
                spec_path=str(spec),
                progress=lambda done, total: progress.append((done, total)),
            )

    report = asyncio.run(run_eval())
    assert progress == [(i, N) for i in range(N + 1)]
    data = report.to_dict()
    assert data["mode"] == "live" and data["steps"] == ["classify"]
    assert data["comparators"] == {"classify": "json_fields"}
    assert data["examples"] == N and data["baseline_reused"] == N
    low, high = data["interval_95"]
    assert low <= 1 - 1 / DIFFERENT_EVERY <= high
    assert data["agreed"] == N - N // DIFFERENT_EVERY
    assert len(data["disagreements"]) == N // DIFFERENT_EVERY
    assert data["eval_cost_usd"] > 0
    store.close()


def test_fake_runs_give_no_examples(spec: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "flujo.db"
    asyncio.run(_record(spec, store_path, live=False))
    store = RunStore(store_path)
    assert load_examples(store, str(spec)) == []
    store.close()


def test_wilson() -> None:
    low, high = wilson(32, 40)
    assert 0.65 < low < 0.8 < high < 0.91
    assert wilson(0, 0) == (0.0, 1.0)


def _live_store(spec: Path, tmp_path: Path) -> RunStore:
    asyncio.run(_record(spec, tmp_path / "flujo.db", live=True))
    return RunStore(tmp_path / "flujo.db")


def _run_eval(spec: Path, store: RunStore, candidate: Pipeline | None, **kw: Any) -> Any:
    async def go() -> Any:
        async with FakeOpenAI(FakeBehaviour(responder=responder)) as server:
            options = SessionOptions(base_url=server.base_url)
            return await evaluate(
                Pipeline.from_yaml(spec), candidate, store, options, spec_path=str(spec), **kw
            )

    return asyncio.run(go())


def test_dataset_run_reports_pass_rates_and_percentiles(spec: Path, tmp_path: Path) -> None:
    store = _live_store(spec, tmp_path)
    data = _run_eval(spec, store, None, examples=10).to_dict()
    assert data["candidate"] is None and data["examples"] == 10
    assert data["checks_passed"] == 10 and data["pass_rate"] == 1.0
    # the test's assertion (label is billing) holds on every captured input
    assert (data["assertions_passed"], data["assertions_total"]) == (10, 10)
    assert data["after"]["latency_s_p95"] is not None and data["after"]["cost_usd_per_run"] > 0
    store.close()


def test_max_cost_stops_before_it_is_crossed(spec: Path, tmp_path: Path) -> None:
    store = _live_store(spec, tmp_path)
    candidate = Pipeline.from_yaml(SPEC.replace("openai:gpt-4o\n", "openai:gpt-4o-mini\n"))
    one = _run_eval(spec, store, candidate, examples=1).eval_cost_usd
    report = _run_eval(spec, store, candidate, max_cost=one * 3.5)
    assert report.stopped and report.examples == 3
    assert report.eval_cost_usd <= one * 3.5
    store.close()


def test_a_changed_spec_version_runs_the_baseline_again(spec: Path, tmp_path: Path) -> None:
    store = _live_store(spec, tmp_path)
    # the baseline is now a different version (a description changed): outputs are not reused
    edited = spec.read_text(encoding="utf-8").replace("name: triage", "name: triage2")
    spec.write_text(edited, encoding="utf-8")
    candidate = Pipeline.from_yaml(edited.replace("openai:gpt-4o\n", "openai:gpt-4o-mini\n"))
    data = _run_eval(spec, store, candidate, examples=10).to_dict()
    assert data["baseline_reused"] == 0 and data["examples"] == 10
    assert data["agreed"] == 8
    store.close()


def test_comparators_follow_the_schema_or_the_spec() -> None:
    from flujo.learn.evaluate import comparator

    pipeline = Pipeline.from_yaml(
        """
agents:
  n: {model: "openai:gpt-4o", output_schema: {type: number}}
  t: {model: "openai:gpt-4o"}
steps:
  - {name: a, uses: agents.n, eval: {tolerance: 0.01}}
  - {name: b, uses: agents.t}
  - {name: c, uses: agents.t, eval: {compare: exact}}
"""
    )
    name, same = comparator(pipeline, pipeline.step("a"))  # type: ignore[arg-type]
    assert name == "numeric" and same(100.0, 100.5) and not same(100.0, 102.0)
    name, same = comparator(pipeline, pipeline.step("b"))  # type: ignore[arg-type]
    assert name == "text" and same("Billing.", " billing") and not same("billing", "sales")
    name, same = comparator(pipeline, pipeline.step("c"))  # type: ignore[arg-type]
    assert name == "exact" and not same("Billing.", "billing")


def test_runs_show_prints_captured_examples_and_prune_drops_them(
    spec: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from flujo.cli import cli

    store = _live_store(spec, tmp_path)
    run_id = store.list_runs(1)[0]["run_id"]
    store.close()
    db = str(tmp_path / "flujo.db")
    shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--store", db])
    assert shown.exit_code == 0
    assert "captured examples (redacted):" in shown.stdout and REDACTED in shown.stdout
    assert "sk-aaaa" not in shown.stdout
    as_json = json.loads(
        CliRunner().invoke(cli, ["runs", "show", run_id, "--store", db, "--json"]).stdout
    )
    assert {c["step"] for c in as_json["captured"]} == {None, "classify"}
    pruned = CliRunner().invoke(cli, ["runs", "prune", "--keep", "5", "--store", db])
    assert pruned.exit_code == 0 and f"dropped the captured examples of {N - 5} runs" in (
        pruned.stdout
    )
    again = CliRunner().invoke(cli, ["runs", "prune", "--older-than", "0m", "--store", db])
    assert "dropped the captured examples of 5 runs" in again.stdout
    bad = CliRunner().invoke(cli, ["runs", "prune", "--store", db])
    assert bad.exit_code == 2


def test_a_judge_agent_of_the_spec_decides_agreement(tmp_path: Path) -> None:
    judged = SPEC.replace(
        '    input: "{{ input.ticket }}"\n',
        '    input: "{{ input.ticket }}"\n    eval: {compare: judge, judge: referee}\n',
    ).replace("agents:\n", "agents:\n  referee:\n    model: openai:gpt-4o-mini\n", 1)
    spec = tmp_path / "judged.yaml"
    spec.write_text(judged, encoding="utf-8")
    asyncio.run(_record(spec, tmp_path / "flujo.db", live=True))
    store = RunStore(tmp_path / "flujo.db")

    def referee(chat: ChatRequest) -> str | None:
        if "before" in chat.prompt:  # the judge's question: labels differ only in case
            return "different" if '"other"' in chat.prompt else "same"
        return responder(chat)

    candidate = Pipeline.from_yaml(judged.replace("openai:gpt-4o\n", "openai:gpt-4o-mini\n"))

    async def go() -> Any:
        async with FakeOpenAI(FakeBehaviour(responder=referee)) as server:
            options = SessionOptions(base_url=server.base_url)
            return await evaluate(
                Pipeline.from_yaml(spec),
                candidate,
                store,
                options,
                spec_path=str(spec),
                examples=10,
            )

    data = asyncio.run(go()).to_dict()
    assert data["comparators"] == {"classify": "judge"}
    assert data["agreed"] == 8  # the referee says "different" on the 2 changed labels
    store.close()
