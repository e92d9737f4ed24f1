"""The fields expressions read on a run's result and on each step's result.

The engine's `PipelineResult` and `StepResult` expose exactly these to expressions (their
`__expr_fields__`), `flujo validate` checks `result.FIELD` and `steps.NAME.FIELD` against
them with a did-you-mean, and the spec reference (docs/spec-reference.md) lists them: one
source for all three.
"""

from __future__ import annotations

RESULT_FIELDS: dict[str, str] = {
    "input": "The pipeline's input.",
    "output": "The pipeline's output (the last step's).",
    "steps": "Each step's result by name: `result.steps.NAME.FIELD` (the fields below).",
    "success": "`True` when the run succeeded.",
    "status": "`running`, `succeeded`, `failed`, `cancelled` or `paused` (a `hitl` step"
    " waits for an answer: `flujo runs resume`).",
    "error": "Why the run failed (`None` when it succeeded).",
    "error_path": "The yaml_path of the step that failed the run (or crossed a usage limit).",
    "total_cost_usd": "USD spent by the run; `None` when a model's price is unknown.",
    "total_tokens": "Input and output tokens of every model call.",
    "latency_s": "Wall time of the run, in seconds.",
    "run_id": "The run's id.",
    "spec_sha256": "The SHA-256 of the spec's text the run used.",
}
"""`result.FIELD` (in test assertions and policies)."""

STEP_FIELDS: dict[str, str] = {
    "output": "The step's output (its properties are checked against an agent's `output_schema`).",
    "success": "`True` when the step succeeded (after retries and fallback).",
    "error": "Why the step failed (`None` when it succeeded).",
    "attempts": "Attempts made, retries included.",
    "cost_usd": "USD spent by the step; `None` when a model's price is unknown.",
    "tokens": "`input_tokens` + `output_tokens`.",
    "input_tokens": "Input tokens of the step's model calls.",
    "output_tokens": "Output tokens of the step's model calls.",
    "latency_s": "Time spent in the step, in seconds.",
    "model": "The model that answered (`None` for a skill).",
    "name": "The step's name.",
    "kind": "The step's kind (`step`, `map`, …).",
    "yaml_path": "Where the step is in the spec (`steps[2].branches.main.steps[0]`).",
}
"""`steps.NAME.FIELD` and `result.steps.NAME.FIELD`."""


def reference_markdown() -> list[str]:
    """The section of docs/spec-reference.md that lists these fields."""
    out = [
        "## Expression fields",
        "",
        "What an expression reads on a run's result (`result.FIELD`) and on a step's result"
        " (`steps.NAME.FIELD`, `result.steps.NAME.FIELD`). `flujo validate` rejects any"
        " other field, with a did-you-mean, and a property of `steps.NAME.output` that the"
        " agent's `output_schema` does not declare: any such property when the schema says"
        " `additionalProperties: false`, else one that is a near-miss of a declared one"
        " (`urgancy` for `urgency`).",
        "",
        "| `result.` | Meaning |",
        "| --- | --- |",
    ]
    out += [f"| `{name}` | {text} |" for name, text in RESULT_FIELDS.items()]
    out += ["", "| `steps.NAME.` | Meaning |", "| --- | --- |"]
    out += [f"| `{name}` | {text} |" for name, text in STEP_FIELDS.items()]
    return [*out, ""]
