"""`kind: jit`: a goal planned into typed skills at run time, checked, run, replayed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flujo.engine.fake_models import InProcessFake
from flujo.engine.fake_openai import ChatRequest, FakeBehaviour
from flujo.engine.runner import Runner
from flujo.engine.session import SessionOptions, run_many
from flujo.spec.load import load_pipeline
from flujo.spec.model import Pipeline
from tests.support.specs import ROOT

SALES = ROOT / "examples" / "sales_question.yaml"
QUESTION = {"question": "How many customers are there?"}


def jit_spec(**fields: Any) -> Pipeline:
    step = {
        "name": "query",
        "kind": "jit",
        "goal": "Write a query that compiles.",
        "output_type": "ValidatedSQL",
        "with": {"schema": "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"},
    } | fields
    return load_pipeline(json.dumps({"version": "1", "name": "j", "steps": [step]}))


async def test_a_goal_becomes_checked_steps_that_run_under_the_jit_steps_path(
    tmp_path: Path,
) -> None:
    store = tmp_path / "flujo.db"
    (result,) = await run_many(
        load_pipeline(SALES), [QUESTION], SessionOptions(fake=True, store=store, export=False)
    )
    assert result.success, result.error
    assert result.steps["query"].output.startswith("SELECT") and "FROM customers" in result.output
    assert result.steps["query-0-text_to_sql_mini"].yaml_path == "steps[2].jit.steps[0]"
    assert result.steps["query-1-sql_validate"].yaml_path == "steps[2].jit.steps[1]"
    from flujo.engine.store import RunStore

    runs = RunStore(store)
    spans = {s["yaml_path"]: s for s in runs.spans(result.run_id) if s["yaml_path"]}
    runs.close()
    jit = spans["steps[2]"]["attributes"]
    assert jit["flujo.jit.plan"] == "text_to_sql_mini → sql_validate"
    assert jit["flujo.jit.builder"] == "offline" and len(jit["flujo.jit.plan_sha256"]) == 64
    assert spans["steps[2].jit.steps[0]"]["model"] == "gpt-4o-mini"


async def test_a_recorded_plan_is_replayed_identically_and_a_missing_one_fails_clearly(
    tmp_path: Path,
) -> None:
    cassette = tmp_path / "cassette"
    pipeline = load_pipeline(SALES)
    (recorded,) = await run_many(
        pipeline,
        [QUESTION],
        SessionOptions(fake=True, record=cassette, use_store=False, export=False),
    )
    (plan_file,) = (cassette / "plans").glob("*.json")
    assert json.loads(plan_file.read_text())["skills"] == ["text_to_sql_mini", "sql_validate"]
    (replayed,) = await run_many(
        load_pipeline(SALES),
        [QUESTION],
        SessionOptions(replay=cassette, use_store=False, export=False),
    )
    assert replayed.success and replayed.output == recorded.output
    plan_file.unlink()
    (missing,) = await run_many(
        load_pipeline(SALES),
        [QUESTION],
        SessionOptions(replay=cassette, use_store=False, export=False),
    )
    assert not missing.success and missing.cause == "harness"
    assert "no recorded plan for jit step 'query'" in str(missing.error)


async def test_the_budget_bounds_the_plan_and_says_which_limit_ruled_it_out() -> None:
    options = SessionOptions(fake=True, use_store=False, export=False)
    (poor,) = await run_many(jit_spec(budget={"max_cost_usd": 1e-9}), ["q"], options)
    assert not poor.success and poor.cause == "input"
    assert "the cheapest plan (text_to_sql_mini → sql_validate) costs" in str(poor.error)
    assert "outside max_cost_usd 1e-09" in str(poor.error)
    (narrow,) = await run_many(jit_spec(budget={"allow": ["sql_validate"]}), ["q"], options)
    assert "no chain of allowed skills turns `str` into `ValidatedSQL`" in str(narrow.error)
    (needs,) = await run_many(jit_spec(**{"with": {}}), ["q"], options)
    assert not needs.success


def planner_replies(*plans: list[str]) -> tuple[FakeBehaviour, list[str]]:
    """A fake provider whose planner answers `plans` in turn; other calls as usual."""
    asked: list[str] = []

    def respond(chat: ChatRequest) -> str | None:
        if "You plan pipelines of typed skills" not in chat.system:
            return None
        asked.append(chat.prompt)
        return json.dumps({"skills": plans[min(len(asked), len(plans)) - 1]})

    return FakeBehaviour(responder=respond), asked


async def test_a_model_builders_bad_plan_is_refused_with_its_reason_and_asked_again() -> None:
    behaviour, asked = planner_replies(
        ["os:system"], ["text_to_sql", "json_parse"], ["text_to_sql", "sql_validate"]
    )
    models = InProcessFake(behaviour)
    runner = Runner(jit_spec(builder="openai:gpt-4o"), models=models, origin="test")
    try:
        first = await runner.run("How many customers?")
        second = await runner.run("How many customers?")
    finally:
        await models.close()
    assert first.success, first.error
    assert first.steps["query-0-text_to_sql"].model == "gpt-4o"
    assert len(asked) == 3  # planned once per runner: the second run reuses the plan
    assert second.success and second.total_tokens < first.total_tokens  # no planning
    assert first.total_cost_usd is not None and first.total_cost_usd > second.total_cost_usd  # type: ignore[operator]


async def test_a_model_builder_that_never_gives_a_valid_plan_fails_the_step_with_reasons() -> None:
    behaviour, asked = planner_replies(["flujo.builtins:run_shell"])
    models = InProcessFake(behaviour)
    runner = Runner(jit_spec(builder="openai:gpt-4o", max_attempts=2), models=models)
    try:
        result = await runner.run("q")
    finally:
        await models.close()
    assert len(asked) == 2 and not result.success and result.cause == "model"
    assert "openai:gpt-4o gave no valid plan in 2 attempts" in str(result.error)
    assert "is not a skill the registry allows" in str(result.error)


def test_validate_flags_unknown_types_and_skills_at_their_lines(write) -> None:  # type: ignore[no-untyped-def]
    from flujo.spec.load import check

    text = SALES.read_text().replace("output_type: ValidatedSQL", "output_type: ValidSQL")
    text = text.replace("max_steps: 3", "max_steps: 3\n      allow: [sql_validat]")
    _, diagnostics = check(write("s.yaml", text))
    messages = {(d.yaml_path, d.message.split(";")[0]) for d in diagnostics}
    assert ("steps[2].output_type", "unknown type 'ValidSQL'") in messages
    assert ("steps[2].budget.allow[0]", "unknown skill 'sql_validat'") in messages


def test_a_repositorys_own_types_are_known_to_validate(write) -> None:  # type: ignore[no-untyped-def]
    from flujo.spec.load import check, registry_for

    text = SALES.read_text().replace("output_type: ValidatedSQL", "output_type: Invoice")
    spec = write("flows/s.yaml", text)
    _, before = check(spec, registry=registry_for(spec))
    assert any(d.yaml_path == "steps[2].output_type" for d in before)
    write(".github/flujo.yml", "types:\n  Invoice: {type: object, required: [total]}\n")
    _, after = check(spec, registry=registry_for(spec))
    assert not any(d.yaml_path == "steps[2].output_type" for d in after)
    bad = write(".github/flujo.yml", "types:\n  SQL: {type: string}\n")
    from flujo.spec.config import load_config
    from flujo.spec.errors import SpecError

    try:
        load_config(bad)
    except SpecError as exc:
        assert "type 'SQL' is built in" in str(exc)
    else:
        raise AssertionError("a built-in type name was accepted")


async def test_the_jit_span_says_how_the_run_got_its_plan_and_what_building_it_cost(
    tmp_path: Path,
) -> None:
    from flujo.engine.store import RunStore

    behaviour, _ = planner_replies(["text_to_sql", "sql_validate"])
    models = InProcessFake(behaviour)
    store = RunStore(tmp_path / "flujo.db")
    runner = Runner(jit_spec(builder="openai:gpt-4o"), models=models, store=store)
    try:
        first = await runner.run("How many customers?")
        second = await runner.run("How many customers?")
    finally:
        await models.close()
    built, reused = (
        next(s["attributes"] for s in store.spans(r.run_id) if s["step_name"] == "query")
        for r in (first, second)
    )
    store.close()
    assert built["flujo.jit.plan_source"] == "built"
    assert built["flujo.jit.builder_cost_usd"] > 0 and built["flujo.jit.builder_latency_s"] > 0
    assert reused["flujo.jit.plan_source"] == "reused"
    assert "flujo.jit.builder_cost_usd" not in reused
