"""A model-backed skill used by name in a spec (`uses: text_to_sql_mini`) runs as a call of
its agent on the model server, and its output must pass the skill's own checks."""

from __future__ import annotations

import json
from pathlib import Path

from flujo.engine.fake_models import InProcessFake
from flujo.engine.fake_openai import ChatRequest, FakeBehaviour
from flujo.engine.runner import Runner
from flujo.engine.session import SessionOptions, run_many
from flujo.engine.store import RunStore
from flujo.spec.load import load_pipeline

SCHEMA = "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
SPEC = json.dumps(
    {
        "version": "1",
        "name": "packs",
        "steps": [
            {"name": "sql", "uses": "text_to_sql_mini", "with": {"schema": SCHEMA}},
            {"name": "checked", "uses": "sql_validate", "with": {"schema": SCHEMA}},
            {"name": "gist", "uses": "summarize", "input": "{{ steps.checked.output }}"},
        ],
    }
)


async def test_a_skill_pack_step_calls_its_model_with_the_rendered_prompt(tmp_path: Path) -> None:
    store = tmp_path / "flujo.db"
    (result,) = await run_many(
        load_pipeline(SPEC),
        ["How many customers are there?"],
        SessionOptions(fake=True, store=store, export=False),
    )
    assert result.success, result.error
    assert result.steps["checked"].output.startswith("SELECT")
    assert result.steps["sql"].model == "gpt-4o-mini" and result.steps["gist"].output
    runs = RunStore(store)
    spans = {s["step_name"]: s for s in runs.spans(result.run_id) if s["step_name"]}
    (run,) = runs.query("SELECT mode FROM runs WHERE run_id = ?", (result.run_id,))
    runs.close()
    assert run["mode"] == "fake"
    assert spans["sql"]["model"] == "gpt-4o-mini" and spans["sql"]["cost_usd"] > 0


async def test_a_skill_packs_checks_judge_its_output_and_are_fed_back() -> None:
    systems: list[str] = []

    def respond(chat: ChatRequest) -> str | None:
        systems.append(chat.system)
        return "SELECT nope FROM missing" if len(systems) == 1 else None

    models = InProcessFake(FakeBehaviour(responder=respond))
    spec = json.loads(SPEC)
    spec["steps"] = spec["steps"][:1]
    spec["steps"][0]["config"] = {"max_retries": 1}
    runner = Runner(load_pipeline(json.dumps(spec)), models=models, origin="test")
    try:
        result = await runner.run("How many customers are there?")
    finally:
        await models.close()
    assert result.success, result.error
    assert result.steps["sql"].attempts == 2
    assert SCHEMA in systems[0]  # the prompt was rendered with the step's `with:`


async def test_the_label_skill_answers_one_of_the_given_labels_on_the_fake_model() -> None:
    spec = load_pipeline(
        json.dumps(
            {
                "version": "1",
                "steps": [{"name": "tag", "uses": "label", "with": {"labels": ["bug", "idea"]}}],
            }
        )
    )
    (result,) = await run_many(
        spec, ["The app crashes on start."], SessionOptions(fake=True, export=False)
    )
    assert result.success, result.error  # the labels reach the model as its reply's schema
    assert result.output and set(result.output) <= {"bug", "idea"}
