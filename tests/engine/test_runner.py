"""The runner: step kinds, context passing, retries, timeouts, validators, fallbacks,
usage limits, the run store and spans."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flujo.engine.runner import Runner
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline
from flujo.spec.registry import StepRegistry
from tests.support import skills as engine_skills
from tests.support.specs import spec

ALLOW = StepRegistry(allow=["tests.support.skills:*"], entry_points=False)


def load(text: str) -> Pipeline:
    return Pipeline.from_yaml(spec(text), registry=ALLOW)


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    engine_skills.calls.clear()


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    db = RunStore(tmp_path / "runs.db")
    yield db  # type: ignore[misc]
    db.close()


async def run(text: str, value: Any = None, **kwargs: Any) -> Any:
    return await Runner(load(text), registry=ALLOW, **kwargs).run(value)


async def test_context_passes_input_previous_and_named_outputs() -> None:
    result = await run(
        """
        steps:
          - name: parse
            uses: json_parse
          - name: shout
            uses: "tests.support.skills:shout"
            input: "{{ steps.parse.output.word }}"
          - name: both
            uses: passthrough
            input:
              first: "{{ previous }}"
              original: "{{ input }}"
              parsed: "{{ steps.parse.output }}"
        """,
        '{"word": "roses"}',
    )
    assert result.success and result.status == "succeeded"
    assert result.steps.shout.output == "ROSES"
    assert result.output == {
        "first": "ROSES",
        "original": '{"word": "roses"}',
        "parsed": {"word": "roses"},  # a lone {{ }} keeps the value's type
    }
    assert [s.yaml_path for s in result.steps.values()] == ["steps[0]", "steps[1]", "steps[2]"]


async def test_parallel_branches_merge_by_name_or_in_order() -> None:
    text = """
        steps:
          - name: fan
            kind: parallel
            merge: {merge}
            branches:
              a: {{steps: [{{name: up, uses: "tests.support.skills:shout"}}]}}
              b: {{steps: [{{name: same, uses: passthrough}}]}}
        """
    as_dict = await run(text.format(merge="dict"), "hi")
    assert as_dict.output == {"a": "HI", "b": "hi"}
    as_list = await run(text.format(merge="list"), "hi")
    assert as_list.output == ["HI", "hi"]


async def test_a_failing_branch_fails_the_step_unless_ignored() -> None:
    text = """
        steps:
          - name: fan
            kind: parallel
            on_branch_failure: {mode}
            branches:
              ok: {{steps: [{{name: fine, uses: passthrough}}]}}
              bad: {{steps: [{{name: broken, uses: "tests.support.skills:boom"}}]}}
        """
    failed = await run(text.format(mode="fail"), 1)
    assert failed.status == "failed" and failed.error_path == "steps[0].branches.bad.steps[0]"
    assert "this step always fails" in failed.error
    ignored = await run(text.format(mode="ignore"), 1)
    assert ignored.success and ignored.output == {"ok": 1}


async def test_retries_with_backoff_then_success() -> None:
    result = await run(
        """
        steps:
          - name: fetch
            uses: "tests.support.skills:flaky"
            with: {fail_times: 2}
            config:
              max_retries: 3
              backoff: {initial_s: 0.01, multiplier: 2, jitter: false}
        """,
        "v",
    )
    assert result.success and result.output == "v"
    assert result.steps.fetch.attempts == 3


async def test_retries_exhausted_fail_the_run_with_the_last_error(store: RunStore) -> None:
    result = await run(
        """
        steps:
          - name: fetch
            uses: "tests.support.skills:flaky"
            with: {fail_times: 5}
            config: {max_retries: 1, backoff: {initial_s: 0, jitter: false}}
          - name: never
            uses: passthrough
        """,
        "v",
        store=store,
    )
    assert result.status == "failed"
    assert result.error == "step 'fetch' failed: ConnectionError: flaky failure 2"
    assert result.error_path == "steps[0]" and "never" not in result.steps
    spans = [s for s in store.spans(result.run_id) if s["step_name"] == "fetch"]
    assert [(s["attempt"], s["status"]) for s in spans] == [(1, "ERROR"), (2, "ERROR")]
    assert [e[0] for e in spans[0]["events"]] == ["exception", "flujo.retry"]


async def test_a_timeout_fails_the_attempt() -> None:
    result = await run(
        """
        steps:
          - name: wait
            uses: "tests.support.skills:slow"
            with: {seconds: 5}
            config: {timeout_s: 0.05, max_retries: 1, backoff: {initial_s: 0}}
        """
    )
    assert result.status == "failed"
    assert result.error == "step 'wait' failed: timed out after 0.05s"
    assert result.steps.wait.attempts == 2
    assert result.latency_s < 2


async def test_a_failing_validator_retries_then_fails_the_step() -> None:
    result = await run(
        """
        steps:
          - name: write
            uses: "tests.support.skills:too_long"
            config: {max_retries: 2, backoff: {initial_s: 0}}
            validators:
              - uses: max_length
                with: {max: 10}
        """
    )
    assert result.status == "failed"
    assert result.steps.write.attempts == 3
    assert result.error == (
        "step 'write' failed: validator failed: max_length: output has length 50, more than 10"
    )


async def test_a_fallback_takes_over_when_retries_are_exhausted() -> None:
    result = await run(
        """
        steps:
          - name: primary
            uses: "tests.support.skills:boom"
            fallback:
              name: backup
              uses: "tests.support.skills:shout"
          - name: after
            uses: passthrough
        """,
        "calm",
    )
    assert result.success and result.output == "CALM"
    assert result.steps.primary.success is False
    assert result.steps.primary.error == "ValueError: this step always fails"
    assert result.steps.primary.output == "CALM"
    assert result.steps.backup.yaml_path == "steps[0].fallback"


async def test_a_template_error_fails_the_step_with_the_reason() -> None:
    result = await run(
        """
        steps:
          - name: a
            uses: passthrough
            input: "{{ steps.a.output.nothing.deeper }}"
        """
    )
    assert result.status == "failed"
    assert result.error.startswith("step 'a' failed: input template: UndefinedError")


async def test_the_store_keeps_runs_spans_and_the_spec_text(store: RunStore) -> None:
    pipeline = load(
        """
        name: stored
        steps:
          - name: first
            uses: passthrough
          - name: group
            kind: parallel
            branches:
              x:
                steps:
                  - name: inner
                    uses: passthrough
        """
    )
    result = await Runner(pipeline, registry=ALLOW, store=store).run("v")
    (row,) = store.list_runs()
    assert row["run_id"] == result.run_id and row["status"] == "succeeded"
    assert row["spec_sha256"] == pipeline.spec_sha256
    assert store.spec_text(pipeline.spec_sha256) == pipeline.source.text  # type: ignore[union-attr]
    spans = {s["step_name"]: s for s in store.spans(result.run_id) if s["step_name"]}
    for name in ("first", "group", "inner"):
        step = pipeline.step(name)
        assert spans[name]["yaml_path"] == step.yaml_path
        assert spans[name]["line"] == step.line
    assert spans["inner"]["parent_id"] == spans["group"]["span_id"]
    root = next(s for s in store.spans(result.run_id) if s["parent_id"] is None)
    assert spans["first"]["parent_id"] == root["span_id"]
    assert store.find_run(result.run_id[:10])["run_id"] == result.run_id  # type: ignore[index]


async def test_a_cancelled_run_is_recorded_as_cancelled(store: RunStore) -> None:
    runner = Runner(
        load(
            """
            steps:
              - name: quick
                uses: passthrough
              - name: wait
                uses: "tests.support.skills:slow"
                with: {seconds: 30}
            """
        ),
        registry=ALLOW,
        store=store,
    )
    task = asyncio.create_task(runner.run("v"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = store.list_runs()
    assert row["status"] == "cancelled"
    statuses = {s["step_name"]: s["status"] for s in store.spans(row["run_id"])}
    assert statuses["quick"] == "OK" and statuses["wait"] == "ERROR"


async def test_concurrent_runs_in_several_stores_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    stores = [RunStore(path) for _ in range(3)]
    pipeline = load("steps: [{name: a, uses: passthrough}, {name: b, uses: passthrough}]")
    runners = [Runner(pipeline, registry=ALLOW, store=s) for s in stores]
    results = await asyncio.gather(*(runners[i % 3].run(i) for i in range(30)))
    reader = RunStore(path)
    assert len(reader.list_runs(limit=100)) == 30
    assert all(len(reader.spans(r.run_id)) == 3 for r in results)
    for db in [*stores, reader]:
        db.close()


async def test_a_changed_spec_applies_on_the_next_run_only(tmp_path: Path, store: RunStore) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "steps:\n  - name: wait\n    uses: 'tests.support.skills:slow'\n    with: {seconds: 0.3}\n"
        "  - name: last\n    uses: 'tests.support.skills:shout'\n"
    )
    first = Pipeline.from_yaml(path, registry=ALLOW)
    task = asyncio.create_task(Runner(first, registry=ALLOW, store=store).run("old"))
    await asyncio.sleep(0.05)
    path.write_text("steps:\n  - name: last\n    uses: passthrough\n")
    result = await task
    assert result.output == "OLD" and result.spec_sha256 == first.spec_sha256
    second = Pipeline.from_yaml(path, registry=ALLOW)
    rerun = await Runner(second, registry=ALLOW, store=store).run("new")
    assert rerun.output == "new" and rerun.spec_sha256 != first.spec_sha256
    assert store.spec_text(first.spec_sha256) != store.spec_text(second.spec_sha256)


async def test_flujo_run_is_the_short_way_to_run_a_spec() -> None:
    import flujo

    result = await flujo.run(
        load("steps: [{name: up, uses: 'tests.support.skills:shout'}]"), "hello", registry=ALLOW
    )
    assert result.success and result.output == "HELLO"
    from_text = await flujo.run(
        "steps: [{name: up, uses: 'tests.support.skills:shout'}]\n", "hi", registry=ALLOW
    )
    assert isinstance(from_text, flujo.PipelineResult) and from_text.output == "HI"
    with pytest.raises(flujo.SpecError):
        await flujo.run("steps: [{name: up, uses: nope}]\n", "hi")


async def test_a_long_run_writes_its_spans_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flujo.engine.runner as runner_module

    monkeypatch.setattr(runner_module, "FLUSH_EVERY_S", 0.0)
    path = tmp_path / "runs.db"
    store = RunStore(path)
    runner = Runner(
        load(
            """
            steps:
              - {name: early, uses: passthrough}
              - {name: wait, uses: "tests.support.skills:slow", with: {seconds: 0.6}}
            """
        ),
        registry=ALLOW,
        store=store,
    )
    task = asyncio.create_task(runner.run("v", run_id="long-run"))
    await asyncio.sleep(0.3)
    reader = RunStore(path)
    written = {s["step_name"]: s["status"] for s in reader.spans("long-run")}
    assert written.get("early") == "OK"  # on disk before the run ends
    assert (await task).success
    assert {s["step_name"] for s in reader.spans("long-run")} == {None, "early", "wait"}
    reader.close()
    store.close()


async def test_each_write_of_a_long_run_carries_what_changed_not_the_whole_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flujo.engine.runner as runner_module

    monkeypatch.setattr(runner_module, "FLUSH_EVERY_S", 0.0)  # a write after every step
    store = RunStore(tmp_path / "runs.db")
    handed: list[int] = []
    write_spans, finish_run = store.write_spans, store.finish_run

    def counted_write(run_id: str, spans: list[Any]) -> None:
        handed.append(len(spans))
        write_spans(run_id, spans)

    def counted_finish(result: Any, spans: list[Any]) -> None:
        handed.append(len(spans))
        finish_run(result, spans)

    monkeypatch.setattr(store, "write_spans", counted_write)
    monkeypatch.setattr(store, "finish_run", counted_finish)
    steps = "\n".join(f"  - {{name: s{i}, uses: passthrough}}" for i in range(40))
    runner = Runner(load(f"steps:\n{steps}\n"), registry=ALLOW, store=store)
    result = await runner.run("v", run_id="long")
    assert result.success
    rows = store.spans("long")
    assert len(rows) == 41 and all(row["status"] == "OK" for row in rows)
    assert rows[0]["end_ns"] is not None  # the run's span, open in every write but the last
    # each step's span once, the open run span again each time: linear, not 41 * 40 / 2
    assert sum(handed) <= 2 * 41 + 1
    store.close()
