"""Steps where an agent decides what runs: `dynamic_router` and `agentic_loop`.

A dynamic router runs its `router_agent` step, reads the branch names from its output (a
list of names, one name, JSON text of either, or a mapping holding the list) and runs
those branches concurrently, as `parallel` does. An agentic loop asks its `planner` step,
turn by turn, for a command (flujo 0.x's shapes): `run_agent` runs one of its `tools` on
`input_data` and the result joins the history the planner sees next, `finish` ends the
loop with `final_answer`, `ask_human` asks a person (as a `hitl` step does). The planner
is given `{goal, history}`; every call is a plain step with its own span and record, so
usage limits stop a loop as they stop any step, and `max_loops` bounds its turns.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flujo.engine.render import render
from flujo.engine.runner import StepFailed, _reason

if TYPE_CHECKING:
    from flujo.engine.results import StepResult
    from flujo.engine.runner import _Run
    from flujo.engine.telemetry import SpanRecord
    from flujo.spec.model import AgenticLoopStep, DynamicRouterStep

_LIST_KEYS = ("branches", "selected", "names", "branch")


def chosen_branches(output: Any) -> list[str] | None:
    """The branch names a router's output gives, in order, without repeats (None when
    it gives none in a form this understands)."""
    if isinstance(output, str):
        text = output.strip()
        if text.startswith(("[", "{", '"')):
            try:
                return chosen_branches(json.loads(text))
            except ValueError:
                return None
        return [text] if text else []
    if isinstance(output, dict):
        for key in _LIST_KEYS:
            if key in output:
                return chosen_branches(output[key])
        values = list(output.values())
        return chosen_branches(values[0]) if len(values) == 1 else None
    if isinstance(output, list | tuple) and all(isinstance(name, str) for name in output):
        return list(dict.fromkeys(name.strip() for name in output))
    return None


async def run_router(
    run: _Run, step: DynamicRouterStep, scope_input: Any, previous: Any, span: SpanRecord
) -> dict[str, Any]:
    """Run `step`: its router, then the branches the router named; their outputs by name."""
    choice = await run.step(step.router_agent, scope_input, previous, span)
    names = chosen_branches(choice)
    known = ", ".join(step.branches)
    if names is None:
        raise StepFailed(
            step,
            f"the router's output names no branches (expected a list of branch names, "
            f"one of: {known}; got {type(choice).__name__})",
        )
    unknown = [name for name in names if name not in step.branches]
    if unknown:
        raise StepFailed(
            step, f"the router chose {', '.join(map(repr, unknown))}: the branches are {known}"
        )
    span.event("flujo.router.chosen", branches=",".join(names))
    return await run.branches(
        step.branches, names, step.on_branch_failure, scope_input, previous, span
    )


def command_of(output: Any) -> dict[str, Any] | None:
    """The planner's command as a mapping (JSON text is read), None when it is none."""
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            return None
    if isinstance(output, dict) and isinstance(output.get("type"), str):
        return output
    return None


async def run_agentic_loop(
    run: _Run,
    step: AgenticLoopStep,
    scope_input: Any,
    previous: Any,
    span: SpanRecord,
    record: StepResult,
) -> Any:
    """Run `step` until the planner says `finish` (its `final_answer`, through
    `output_template` when there is one); more than `max_loops` turns fail the step."""
    history: list[dict[str, Any]] = []
    tools = ", ".join(step.tools) or "none"
    for turn in range(1, step.max_loops + 1):
        record.attempts = turn
        asked = {"goal": previous, "history": history}
        output = await run.step(step.planner, scope_input, asked, span)
        command = command_of(output)
        kind = command.get("type") if command is not None else None
        entry: dict[str, Any] = {"turn": turn, "command": command if command else output}
        if command is not None and kind == "finish":
            span.event("flujo.agentic.finish", turn=turn)
            return _final(run, step, command.get("final_answer"), scope_input)
        if command is not None and kind == "run_agent":
            name = command.get("agent_name")
            tool = step.tools.get(name) if isinstance(name, str) else None
            if tool is None:
                entry["error"] = f"no tool named {name!r}; the tools are: {tools}"
            else:
                span.event("flujo.agentic.tool", turn=turn, tool=str(name))
                entry["result"] = await run.step(tool, scope_input, command.get("input_data"), span)
        elif command is not None and kind == "ask_human":
            entry["answer"] = await _ask(run, step, str(command.get("question", "")))
        else:
            entry["error"] = (
                "not a command: answer with a JSON object whose `type` is `run_agent` "
                "(with `agent_name` and `input_data`), `ask_human` (with `question`) or "
                "`finish` (with `final_answer`)"
            )
        if "error" in entry:
            span.event("flujo.agentic.invalid", turn=turn, message=entry["error"])
        history.append(entry)
    raise StepFailed(step, f"the planner did not finish within max_loops ({step.max_loops})")


async def _ask(run: _Run, step: AgenticLoopStep, question: str) -> Any:
    from flujo.engine.human import NoAnswer
    from flujo.spec.model import HitlStep

    human = run.human
    if human is None:
        raise StepFailed(step, "the planner asked a person and nobody can answer here", "harness")
    try:
        return await human.answer(HitlStep(name=step.name, message=question), question)
    except NoAnswer as exc:
        raise StepFailed(step, str(exc), "harness") from None


def _final(run: _Run, step: AgenticLoopStep, answer: Any, scope_input: Any) -> Any:
    if not step.output_template:
        return answer
    try:
        return render(step.output_template, run._context(scope_input, answer))
    except MemoryError:
        raise
    except Exception as exc:
        raise StepFailed(step, f"output_template: {_reason(exc)}") from None
