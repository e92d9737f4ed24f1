"""Risk tiers: rules over the graph-aware diff, property-style."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flujo.learn.tiers import Agreement, classify, decide, provider
from flujo.spec.autoapply import Bounds
from flujo.spec.edit import apply_patch
from flujo.spec.model import Pipeline
from flujo.spec.review.diff import diff_specs
from tests.support.specs import spec

BASE = spec(
    """
    version: "0.2"
    description: Answers support tickets.
    agents:
      writer:
        model: openai:gpt-4o
        system_prompt: Answer briefly.
        max_tokens: 500
    steps:
      - name: fetch
        uses: json_parse
        input: "{{ input }}"
      - name: tag
        uses: json_parse
        input: "{{ input }}"
      - name: draft
        uses: agents.writer
        input: "{{ steps.fetch.output }}"
        description: Writes the answer.
        config:
          max_retries: 1
          timeout_s: 30
    tests:
      - name: smoke
        input: "{}"
        assertions: ["result.success"]
        mocks: {draft: "hi"}
    policies:
      - id: cheap
        assert: "result.total_cost_usd <= 1"
    usage_limits:
      total_cost_usd: 0.5
    """
)
BOUNDS = Bounds()

LOW_OPS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "retries": st.integers(0, BOUNDS.max_retries).map(
        lambda n: {"op": "replace", "path": "/steps/2/config/max_retries", "value": n}
    ),
    "timeout": st.integers(int(BOUNDS.timeout_s_min), int(BOUNDS.timeout_s_max)).map(
        lambda n: {"op": "replace", "path": "/steps/2/config/timeout_s", "value": n}
    ),
    "max_tokens": st.integers(1, BOUNDS.max_tokens).map(
        lambda n: {"op": "replace", "path": "/agents/writer/max_tokens", "value": n}
    ),
    "limit": st.floats(0.26, 0.99).map(
        lambda x: {"op": "replace", "path": "/usage_limits/total_cost_usd", "value": round(x, 2)}
    ),
    "description": st.sampled_from(["Drafts replies.", "Writes the reply."]).map(
        lambda t: {"op": "replace", "path": "/steps/2/description", "value": t}
    ),
}
HIGH_OPS: dict[str, dict[str, Any]] = {
    "prompt": {"op": "replace", "path": "/agents/writer/system_prompt", "value": "Be long."},
    "remove step": {"op": "remove", "path": "/steps/1"},
    "add step": {
        "op": "add",
        "path": "/steps/-",
        "value": {"name": "extra", "uses": "json_parse", "input": "{{ input }}"},
    },
    "new skill": {"op": "replace", "path": "/steps/1/uses", "value": "passthrough"},
    "retries beyond bounds": {
        "op": "replace",
        "path": "/steps/2/config/max_retries",
        "value": BOUNDS.max_retries + 1,
    },
    "timeout beyond bounds": {
        "op": "replace",
        "path": "/steps/2/config/timeout_s",
        "value": BOUNDS.timeout_s_max * 2,
    },
    "limit beyond bounds": {"op": "replace", "path": "/usage_limits/total_cost_usd", "value": 5},
    "cross-provider model": {
        "op": "replace",
        "path": "/agents/writer/model",
        "value": "anthropic:claude-3-5-haiku",
    },
}
NEVER_OPS: dict[str, dict[str, Any]] = {
    "policies": {"op": "replace", "path": "/policies/0/assert", "value": "result.success"},
    "tests": {"op": "replace", "path": "/tests/0/input", "value": "{ }"},
}


def _diff(ops: list[dict[str, Any]]) -> Any:
    after = apply_patch(BASE, ops)
    return diff_specs(Pipeline.from_yaml(BASE), Pipeline.from_yaml(after))


def _tier(ops: list[dict[str, Any]], agreement: Agreement | None = None) -> str:
    return classify(_diff(ops), None, bounds=BOUNDS, floor=0.9, agreement=agreement).tier


low_patches = st.lists(
    st.sampled_from(sorted(LOW_OPS)), min_size=1, max_size=4, unique=True
).flatmap(lambda kinds: st.tuples(*(LOW_OPS[k] for k in kinds)))


@settings(max_examples=30, deadline=None)
@given(low_patches)
def test_settings_moved_within_the_bounds_are_low(ops: tuple[dict[str, Any], ...]) -> None:
    diff = _diff(list(ops))
    decision = classify(diff, None, bounds=BOUNDS, floor=0.9)
    assert decision.tier == "low" or not diff, decision
    assert decision.automatic or not diff


@settings(max_examples=30, deadline=None)
@given(low_patches, st.sampled_from(sorted(HIGH_OPS)))
def test_one_risky_change_makes_the_whole_change_high(
    ops: tuple[dict[str, Any], ...], risky: str
) -> None:
    patch = [op for op in ops if op["path"] != HIGH_OPS[risky]["path"]] + [HIGH_OPS[risky]]
    decision = classify(_diff(patch), None, bounds=BOUNDS, floor=0.9)
    assert decision.tier == "high", (risky, decision)
    assert not decision.automatic


@settings(max_examples=20, deadline=None)
@given(low_patches, st.sampled_from(sorted(NEVER_OPS)), st.booleans())
def test_policies_and_tests_are_never_automatic(
    ops: tuple[dict[str, Any], ...], never: str, green: bool
) -> None:
    diff = _diff([*ops, NEVER_OPS[never]])
    decision = decide(
        diff,
        None,
        files=["flows/support.flujo.yml"],
        spec_path="flows/support.flujo.yml",
        default_branch_green=green,
        bounds=BOUNDS,
        floor=0.9,
    )
    assert not decision.automatic
    assert any(f"`{never}:`" in reason for reason in decision.never)


def test_outside_files_config_and_red_default_branch_are_never_automatic() -> None:
    diff = _diff([LOW_OPS_EXAMPLE])
    path = "flows/support.flujo.yml"

    def never(files: list[str], green: bool | None) -> tuple[str, ...]:
        return decide(
            diff,
            None,
            files=files,
            spec_path=path,
            default_branch_green=green,
            bounds=BOUNDS,
            floor=0.9,
        ).never

    assert never([path], True) == ()
    assert "outside the spec" in " ".join(never([path, "README.md"], True))
    assert "flujo.yml" in " ".join(never([path, ".github/flujo.yml"], True))
    assert "not green" in " ".join(never([path], False))
    assert "unknown" in " ".join(never([path], None))


LOW_OPS_EXAMPLE = {"op": "replace", "path": "/steps/2/config/timeout_s", "value": 60}


def test_a_model_swap_is_medium_only_with_measured_agreement_at_the_floor() -> None:
    swap = [{"op": "replace", "path": "/agents/writer/model", "value": "openai:gpt-4o-mini"}]
    assert _tier(swap) == "high"  # not measured
    assert _tier(swap, Agreement(19, 20, "live")) == "medium"
    assert _tier(swap, Agreement(17, 20, "live")) == "high"  # 85% < 90%
    assert _tier(swap, Agreement(20, 20, "fake")) == "high"  # fake runs are not evidence
    reason = classify(
        _diff(swap), None, bounds=BOUNDS, floor=0.9, agreement=Agreement(19, 20, "live")
    ).reason
    assert "19 of 20 live examples" in reason


def test_a_registry_validator_is_medium_an_unknown_one_high() -> None:
    add = {"op": "add", "path": "/steps/2/validators", "value": [{"uses": "non_empty"}]}
    assert _tier([add]) == "medium"
    # a validator the registry given does not list (e.g. an allow-listed path) is high
    decision = classify(
        _diff([add]), None, bounds=BOUNDS, floor=0.9, validators=frozenset({"max_length"})
    )
    assert decision.tier == "high"


def test_reordering_independent_steps_is_medium_but_not_when_one_reads_the_other() -> None:
    # fetch and tag read only the input: swapping them changes nothing they read
    swap = [{"op": "move", "from": "/steps/1", "path": "/steps/0"}]
    assert _tier(swap) == "medium"
    # draft reads fetch: moving draft before fetch is high
    before = [{"op": "move", "from": "/steps/2", "path": "/steps/0"}]
    assert _tier(before) == "high"


def test_provider_families() -> None:
    assert provider("openai:gpt-4o") == provider("gpt-4o-mini") == "openai"
    assert provider("anthropic/claude-3") == "anthropic"
    assert provider("my-model") is None


def test_the_decision_reads_as_one_line() -> None:
    decision = decide(
        _diff([LOW_OPS_EXAMPLE]),
        None,
        files=["a.flujo.yml"],
        spec_path="a.flujo.yml",
        default_branch_green=True,
        bounds=BOUNDS,
        floor=0.9,
    )
    assert decision.line() == "Tier **low**: sets timeout_s of `draft` to 60."
