"""Risk that reflects what the step does: a step whose output picks a branch, is judged
by a policy or checked by a validator is riskier to change than one only shown; a step
marked `critical: true` is always high risk; the pull request's first lines say what the
step does and the concrete failure to watch for."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from flujo.engine.store import RunStore
from flujo.learn.proposal import proposal_for
from flujo.learn.step_role import risk_for, role_of, roles
from flujo.learn.suggest import Suggestion, suggest
from flujo.spec.edit import apply_patch
from flujo.spec.model import Pipeline
from tests.support.learn import PLANTED, SEEDS, Profile, Telemetry, record
from tests.support.specs import spec

ROUTED = spec(
    """
    version: "1"
    name: routed
    agents:
      classifier:
        model: "openai:gpt-4o"
        system_prompt: "Label the ticket as billing, bug or other. Answer in JSON."
        output_schema:
          type: object
          required: [label]
          properties:
            label: {enum: [billing, bug, other]}
      writer: {model: "openai:gpt-4o-mini", system_prompt: "Answer the customer."}
    steps:
      - name: classify
        uses: agents.classifier
        input: "{{ input.text }}"
      - name: route
        kind: conditional
        condition_expression: "steps.classify.output.label"
        branches:
          billing: {steps: [{name: refund, uses: agents.writer, input: "{{ input.text }}"}]}
          bug: {steps: [{name: file_bug, uses: agents.writer, input: "{{ input.text }}"}]}
    """
)
CLASSIFY = Profile(0.4, 0.0003, 80, 6, "gpt-4o")


def suggestions_for(tmp_path: Path, text: str, telemetry: Telemetry) -> list[Suggestion]:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    store = RunStore(tmp_path / "runs.db")
    record(store, Pipeline.from_yaml(path), telemetry)
    try:
        return asyncio.run(suggest(path, store)).suggestions
    finally:
        store.close()


def test_a_step_that_picks_a_branch_decides() -> None:
    pipeline = Pipeline.from_yaml(ROUTED)
    (classify, refund) = roles(pipeline, ["classify", "refund"])
    assert classify.level == "decides"
    assert classify.decides() == "picks the branch of `route` (billing, bug)"
    assert classify.does == (
        'asks openai:gpt-4o "Label the ticket as billing, bug or other." and answers '
        "{label: billing|bug|other}"
    )
    assert refund.level == "display" and "display only" in refund.decides()
    assert risk_for("cheaper_model", "medium", [classify]) == "high"
    assert risk_for("cheaper_model", "medium", [refund]) == "low"
    assert risk_for("frequent_retries", "low", [classify]) == "low"  # outputs do not change


@pytest.mark.parametrize(
    ("addition", "use"),
    [
        ("policies:\n  - {id: no_bugs, assert: \"steps.classify.output.label != 'bug'\"}\n",
         "is judged by policy `no_bugs`"),
        ("", "picks the branch of `route`"),
    ],
)  # fmt: skip
def test_policies_and_branches_read_the_output(addition: str, use: str) -> None:
    pipeline = Pipeline.from_yaml(ROUTED + addition)
    (role,) = roles(pipeline, ["classify"])
    assert use in role.decides() and role.level == "decides"


def test_another_model_reading_the_output_feeds_it() -> None:
    chained = Pipeline.from_yaml(
        ROUTED.split("  - name: route")[0] + "  - name: draft\n    uses: agents.writer\n"
    )
    (classify, draft) = roles(chained, ["classify", "draft"])
    assert classify.level == "feeds" and classify.decides() == "is read by model step `draft`"
    assert risk_for("cheaper_model", "medium", [classify]) == "medium"
    assert draft.level == "display" and draft.decides() == "is what the pipeline returns"
    shown = Pipeline.from_yaml(SEEDS / "cheaper_model.yaml")
    label = role_of(shown, shown.step("label"))  # the next step has its own input
    assert label.level == "display" and not label.returned


def test_a_model_swap_on_a_routing_step_is_high_risk_and_says_what_to_watch(
    tmp_path: Path,
) -> None:
    (swap,) = suggestions_for(tmp_path, ROUTED, Telemetry(profiles={"classify": CLASSIFY}))
    assert swap.kind == "cheaper_model" and swap.risk == "high"
    assert "with high risk to quality" in swap.headline
    assert swap.watch_for == (
        "the smaller model answers `classify` wrongly or in another shape: a wrong answer "
        "sends the run down the wrong branch of `route`"
    )
    assert swap.to_dict()["steps"][0]["level"] == "decides"


def test_a_display_only_swap_is_medium_only_because_it_was_not_measured(
    tmp_path: Path,
) -> None:
    telemetry, _ = PLANTED["cheaper_model"]
    text = (SEEDS / "cheaper_model.yaml").read_text(encoding="utf-8")
    (swap,) = suggestions_for(tmp_path, text, telemetry)
    assert swap.roles[0].level == "display"
    assert swap.risk == "medium" and swap.quality_evidence["measured"] is False


def test_any_change_to_a_critical_step_is_high_risk(tmp_path: Path) -> None:
    telemetry, _ = PLANTED["retries"]
    text = (SEEDS / "retries.yaml").read_text(encoding="utf-8")
    (plain,) = suggestions_for(tmp_path / "a", _mkdir(tmp_path / "a", text), telemetry)
    assert plain.kind == "frequent_retries" and plain.risk == "low"
    critical = text.replace("  - name: fetch\n", "  - name: fetch\n    critical: true\n")
    assert critical != text
    (marked,) = suggestions_for(tmp_path / "b", _mkdir(tmp_path / "b", critical), telemetry)
    assert marked.risk == "high" and marked.roles[0].critical
    assert "(critical)" in marked.step_summary
    assert marked.estimate.score < plain.estimate.score  # ranked lower for its risk


def _mkdir(folder: Path, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return text


def test_the_first_lines_of_the_pull_request_say_what_the_step_does_and_what_to_watch(
    tmp_path: Path,
) -> None:
    """A fresh reader of the first lines knows what the step does, what the change saves,
    what could go wrong and how well the new model agreed (here: not measured)."""
    (swap,) = suggestions_for(tmp_path, ROUTED, Telemetry(profiles={"classify": CLASSIFY}))
    before = (tmp_path / "spec.yaml").read_text(encoding="utf-8")
    body = proposal_for(swap, before, apply_patch(before, swap.patch)).body
    first = [line for line in body.splitlines() if line.strip()][:5]
    assert first[0].startswith("## Saves \\~\\$") and "/month) with high risk" in first[0]
    assert first[1] == (  # the spec's words are shown as literal text
        '**The step:** \\`classify\\` asks openai:gpt-4o "Label the ticket as billing, bug or '
        'other." and answers {label: billing\\|bug\\|other}; its output picks the branch of '
        "\\`route\\` (billing, bug)."
    )
    assert first[2].startswith("**Watch for:** the smaller model answers \\`classify\\` wrongly")
    assert "wrong branch of \\`route\\`" in first[2]
    assert first[3].startswith("**Quality evidence:** not measured")
    assert first[4].startswith("**Why:**")
    measured = replace(
        swap,
        quality_evidence={
            "needed": True,
            "measured": True,
            "summary": "`flujo eval`: the changed step (classify) agreed with today's outputs "
            "on 38 of 40 captured live examples (95%, 95% interval 83%–99%)",
        },
    )
    body = proposal_for(measured, before, apply_patch(before, swap.patch)).body
    assert "agreed with today's outputs on 38 of 40" in "\n".join(body.splitlines()[:8])
