"""`cache`, `dynamic_router` and `agentic_loop` steps on the fake model server: outputs
reused from the run store, branches an agent chose, a planner calling tools; spans and
yaml_paths as for every kind, and flujo 0.x blueprints running as their migrations do."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flujo.engine.fake_models import InProcessFake
from flujo.engine.fake_openai import ChatRequest, FakeBehaviour
from flujo.engine.runner import Runner
from flujo.engine.store import RunStore
from flujo.spec.legacy.migrate import migrate
from flujo.spec.model import Pipeline
from tests.support.legacy import ALLOW, LEGACY, load
from tests.support.specs import spec

AGENTS = """
agents:
  writer: {model: "openai:gpt-4o-mini", system_prompt: Write a short answer.}
  router: {model: "openai:gpt-4o-mini", system_prompt: Route the request.}
  planner: {model: "openai:gpt-4o-mini", system_prompt: Plan the next command.}
"""


class Script:
    """Fake model replies by agent (system prompt), counting the calls."""

    def __init__(self, routes: Any = None, plan: list[Any] | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.routes = routes
        self.plan = list(plan or [])
        self.prompts: list[str] = []

    def __call__(self, chat: ChatRequest) -> str | None:
        agent = chat.system.split()[0]
        self.calls[agent] += 1
        if agent == "Route":
            return json.dumps(self.routes)
        if agent == "Plan":
            self.prompts.append(chat.prompt)
            return json.dumps(self.plan.pop(0) if self.plan else {"type": "think"})
        return None

    def models(self) -> InProcessFake:
        return InProcessFake(FakeBehaviour(responder=self))


def pipeline(steps: str) -> Pipeline:
    return Pipeline.from_yaml(spec(AGENTS + steps), registry=ALLOW)


CACHED = """
steps:
  - kind: cache
    name: cached
    ttl_s: 60
    wrapped_step:
      name: answer
      uses: agents.writer
      input: "Answer: {{ input.q }}"
      sink_to: answer
  - name: after
    uses: template_render
    with: {template: "{{ context.answer }}"}
"""


def spans_of(store: RunStore, run_id: str) -> dict[str, dict[str, Any]]:
    return {s["step_name"]: s for s in store.spans(run_id) if s["step_name"]}


async def test_a_cached_step_reuses_its_output_for_an_equal_input_from_the_store(
    tmp_path: Path,
) -> None:
    script = Script()
    store = RunStore(tmp_path / "runs.db")
    try:
        first = await Runner(pipeline(CACHED), models=script.models(), store=store).run({"q": "a"})
        # another runner (another process, as far as the store knows) on the same store
        again = await Runner(pipeline(CACHED), models=script.models(), store=store).run({"q": "a"})
        other = await Runner(pipeline(CACHED), models=script.models(), store=store).run({"q": "b"})
        spans = [spans_of(store, r.run_id) for r in (first, again, other)]
    finally:
        store.close()
    assert script.calls["Write"] == 2  # a and b; the second a came from the store
    assert again.output == first.output and again.steps["answer"].output == first.output
    assert again.context["answer"] == first.output  # the wrapped step's sink_to still writes
    hits = [s["cached"]["attributes"]["flujo.cache.hit"] for s in spans]
    assert hits == [False, True, False]
    assert "answer" not in spans[1]  # the wrapped step did not run
    assert spans[0]["answer"]["yaml_path"] == "steps[0].wrapped_step"
    assert spans[0]["cached"]["kind"] == "cache"


async def test_a_cached_output_expires_and_an_edited_step_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script()
    store = RunStore(tmp_path / "runs.db")
    try:
        await Runner(pipeline(CACHED), models=script.models(), store=store).run({"q": "a"})
        later = time.time() + 61
        monkeypatch.setattr("flujo.engine.store.time.time", lambda: later)
        await Runner(pipeline(CACHED), models=script.models(), store=store).run({"q": "a"})
        assert script.calls["Write"] == 2  # ttl_s: 60 had passed
        edited = CACHED.replace("Answer:", "Reply to:")
        await Runner(pipeline(edited), models=script.models(), store=store).run({"q": "a"})
        assert script.calls["Write"] == 3  # another prompt: not the stored output
    finally:
        store.close()


async def test_without_a_store_a_runner_keeps_cached_outputs_in_memory() -> None:
    script = Script()
    runner = Runner(pipeline(CACHED), models=script.models())
    outputs = [(await runner.run({"q": "a"})).output for _ in range(3)]
    assert script.calls["Write"] == 1 and len(set(outputs)) == 1


ROUTED = """
steps:
  - kind: dynamic_router
    name: route
    router_agent: agents.router
    branches:
      billing:
        steps:
          - {name: bill, uses: template_render, with: {template: "BILL {{ previous }}"}}
      support:
        steps:
          - {name: help, uses: template_render, with: {template: "HELP {{ previous }}"}}
"""


@pytest.mark.parametrize(
    ("routes", "ran"),
    [
        (["billing"], {"billing"}),
        ("support", {"support"}),
        ({"branches": ["support", "billing"]}, {"billing", "support"}),
        ([], set()),
    ],
)
async def test_a_router_runs_the_branches_its_agent_names(
    routes: Any, ran: set[str], tmp_path: Path
) -> None:
    store = RunStore(tmp_path / "runs.db")
    try:
        models = Script(routes=routes).models()
        result = await Runner(pipeline(ROUTED), models=models, store=store).run("x")
        spans = spans_of(store, result.run_id)
    finally:
        store.close()
    assert result.status == "succeeded", result.error
    assert set(result.output) == ran
    assert {"bill", "help"} & set(spans) == {"bill" if b == "billing" else "help" for b in ran}
    assert spans["route_router"]["yaml_path"] == "steps[0].router_agent"
    assert spans["route_router"]["model"] == "gpt-4o-mini"
    assert spans["route"]["kind"] == "dynamic_router"


async def test_a_router_choosing_an_unknown_branch_fails_naming_the_branches() -> None:
    models = Script(routes=["refunds"]).models()
    result = await Runner(pipeline(ROUTED), models=models).run("x")
    assert result.status == "failed" and result.error_path == "steps[0]"
    assert "the router chose 'refunds': the branches are billing, support" in (result.error or "")


LOOP = """
steps:
  - kind: agentic_loop
    name: research
    planner: agents.planner
    max_loops: 3
    tools:
      shout: {name: shout, uses: template_render, with: {template: "LOUD {{ previous }}"}}
"""


async def test_an_agentic_loop_runs_tools_until_the_planner_finishes(tmp_path: Path) -> None:
    script = Script(
        plan=[
            {"type": "run_agent", "agent_name": "shout", "input_data": "hi"},
            {"type": "run_agent", "agent_name": "search", "input_data": "x"},
            {"type": "finish", "final_answer": "done"},
        ]
    )
    store = RunStore(tmp_path / "runs.db")
    try:
        runner = Runner(pipeline(LOOP), models=script.models(), store=store)
        result = await runner.run("goal")
        spans = [s for s in store.spans(result.run_id) if s["step_name"]]
    finally:
        store.close()
    assert result.status == "succeeded" and result.output == "done"
    assert result.steps["shout"].output == "LOUD hi"
    # the planner saw the tool's result, then the unknown tool's error
    assert "LOUD hi" in script.prompts[1]
    assert "no tool named 'search'; the tools are: shout" in script.prompts[2]
    assert [(s["step_name"], s["yaml_path"]) for s in spans] == [
        ("research", "steps[0]"),
        ("research_planner", "steps[0].planner"),
        ("shout", "steps[0].tools.shout"),
        ("research_planner", "steps[0].planner"),
        ("research_planner", "steps[0].planner"),
    ]
    assert result.steps["research"].attempts == 3  # turns


async def test_an_agentic_loop_is_bounded_by_max_loops_and_usage_limits() -> None:
    never = Script(plan=[{"type": "run_agent", "agent_name": "shout", "input_data": "a"}] * 9)
    result = await Runner(pipeline(LOOP), models=never.models()).run("goal")
    assert result.status == "failed"
    assert "did not finish within max_loops (3)" in (result.error or "")
    assert never.calls["Plan"] == 3
    capped = pipeline(LOOP + "usage_limits: {total_tokens: 40}\n")
    never = Script(plan=[{"type": "run_agent", "agent_name": "shout", "input_data": "a"}] * 9)
    result = await Runner(capped, models=never.models()).run("goal")
    assert result.status == "failed" and result.cause == "limit"
    assert never.calls["Plan"] < 3


async def test_a_0x_blueprint_with_these_kinds_runs_as_its_migration_does(copy: Path) -> None:
    path = copy / "delegating.yaml"
    outcomes = []
    for text in (path.read_text(encoding="utf-8"), migrate(path).text):
        path.write_text(text, encoding="utf-8")
        script = Script(
            routes={"branches": ["billing"]},  # its output_schema is an object
            plan=[
                {"type": "run_agent", "agent_name": "search", "input_data": 7},
                {"type": "finish", "final_answer": "found"},
            ],
        )
        store = RunStore(copy / "runs.db")
        try:
            runner = Runner(load(path), registry=ALLOW, models=script.models(), store=store)
            result = await runner.run("question")
            spans = spans_of(store, result.run_id)
        finally:
            store.close()
        assert result.status == "succeeded", result.error
        outcomes.append(
            (
                result.output,
                {n: (s.success, s.output) for n, s in result.steps.items()},
                {n: s["yaml_path"] for n, s in spans.items()},
            )
        )
    legacy, current = outcomes
    assert legacy[:2] == current[:2]
    assert legacy[0] == "found" and legacy[1]["research_search"] == (True, "7")
    # 0.6's paths for the 0.x file; the current format's for the migrated one
    assert legacy[2]["bill"] == "steps[1].router.branches.billing.steps[0]"
    assert legacy[2]["route_router"] == "steps[1].router.router_agent"
    assert legacy[2]["research_search"] == "steps[2].registry.search"
    assert legacy[2]["answer"] == "steps[0].wrapped_step"
    assert current[2]["bill"] == "steps[1].branches.billing.steps[0]"


def test_the_test_blueprint_covers_each_kind() -> None:
    text = (LEGACY / "delegating.yaml").read_text(encoding="utf-8")
    for kind in ("cache", "dynamic_router", "agentic_loop"):
        assert f"kind: {kind}" in text


@pytest.mark.parametrize("steps", [CACHED, ROUTED, LOOP])
def test_each_kind_is_written_back_and_read_again_unchanged(steps: str) -> None:
    loaded = pipeline(steps)
    again = Pipeline.from_yaml(loaded.to_yaml(), registry=ALLOW)
    assert again == loaded
    assert [s.yaml_path for _, s in again.walk()] == [s.yaml_path for _, s in loaded.walk()]


def test_review_diagrams_draw_each_kind_with_what_it_runs() -> None:
    from flujo.spec.review.mermaid import flowchart

    text = flowchart(
        pipeline(CACHED + ROUTED.replace("steps:\n", "", 1) + LOOP.split("steps:\n")[1])
    )
    assert "cached · cached agents.writer" in text
    assert "route · router chooses" in text and "branch billing" in text
    assert "s_route_5f_router" in text and "s_research_5f_planner" in text
    assert "research · planner agents.planner with shout" in text
