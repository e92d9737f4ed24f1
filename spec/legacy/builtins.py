"""flujo 0.x's built-in skills (`flujo.builtins.NAME`), under their 0.x names.

Each is a skill here, registered as `flujo.builtins:NAME` (the form `agent:
"flujo.builtins.NAME"` converts to). A 0.x skill step usually passes its arguments as a
mapping input (`input: {path: …, value: …}`); these skills read their arguments from
that mapping, then from `with:`. Skills that read or write the run context are marked
`needs_context`: the runner passes them the run's context mapping.

The built-ins that reach the network, the file system, run code or drive 0.x's own
architect are not provided: `REFUSED` names what to use instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from flujo.spec.skills import skill

PREFIX = "flujo.builtins:"
"""How a 0.x built-in is named here (`flujo.builtins.NAME` converts to this)."""

REFUSED: dict[str, str] = {
    "http_get": "a skill of your own, allow-listed in .github/flujo.yml (no network here)",
    "web_search": "a skill of your own, allow-listed in .github/flujo.yml (no network here)",
    "fs_write_file": "a skill of your own, allow-listed (built-ins never write files)",
    "code_interpreter": "a skill of your own, allow-listed (built-ins never run code)",
    "run_pipeline_in_memory": "`uses: imports.ALIAS` to run another spec",
    "render_jinja_template": "`template_render` (with `template:`) or a step `input` template",
    "ask_user": "a `kind: hitl` step",
    "discover_skills": "`flujo registry list`",
    "get_framework_schema": "`flujo schema`",
    "analyze_project": "the 0.x architect's helpers have no counterpart; write the steps",
    "write_pipeline_yaml": "the 0.x architect's helpers have no counterpart; write the steps",
    "visualize_plan": "`flujo visualize`",
    "estimate_plan_cost": "`flujo run` records each run's cost",
    "aggregate_plan": "the 0.x architect's helpers have no counterpart; write the steps",
    "extract_decomposed_steps": "the 0.x architect's helpers have no counterpart",
    "build_tool_match_input": "the 0.x architect's helpers have no counterpart",
    "repair_yaml_ruamel": "an agent step rewriting the YAML, then `flujo.builtins.validate_yaml`",
    "return_yaml_for_cli": "`flujo.builtins.extract_yaml_text`",
    "get_yaml_validity": "`flujo.builtins.validation_report_to_flag`",
    "select_by_yaml_shape": "a `conditional` step with a `condition_expression`",
    "shape_to_validity_flag": "`flujo.builtins.validation_report_to_flag`",
    "has_yaml_key": "a `condition_expression` such as `'key' in previous`",
    "extract_from_text": "`regex_extract`",
    "extract_validation_errors": "`flujo.builtins.validate_yaml` (its `errors`)",
    "select_validity_branch": "a `conditional` on `context.yaml_is_valid`",
    "aggregate": "an expression (`sum(…)`, `len(…)`, `max(…)`)",
    "to_csv": "`template_render`",
}
"""0.x built-ins not provided -> what to write instead."""


def _args(value: Any, params: dict[str, Any]) -> dict[str, Any]:
    args = dict(value) if isinstance(value, Mapping) else {}
    args.update(params)
    return args


def _walk(context: dict[str, Any], path: str, create: bool) -> tuple[dict[str, Any], str] | None:
    """The mapping holding the last part of a dotted `path`, and that part."""
    parts = [p for p in str(path).split(".") if p]
    if not parts:
        return None
    target = context
    for part in parts[:-1]:
        inner = target.get(part)
        if not isinstance(inner, dict):
            if not create:
                return None
            inner = {}
            target[part] = inner
        target = inner
    return target, parts[-1]


def context_write(context: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted `path` of the run context (intermediate mappings are created)."""
    found = _walk(context, path, create=True)
    if found is not None:
        found[0][found[1]] = value


def context_read(context: Mapping[str, Any], path: str, default: Any = None) -> Any:
    target: Any = context
    for part in [p for p in str(path).split(".") if p]:
        if not isinstance(target, Mapping) or part not in target:
            return default
        target = target[part]
    return target


def needs_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn.__flujo_context__ = True  # type: ignore[attr-defined]
    return fn


@skill("flujo.builtins:passthrough", "Return the input unchanged (flujo 0.x).")
def passthrough(value: Any, **_: Any) -> Any:
    return value


@skill("flujo.builtins:stringify", "The input as text: JSON for data, text as it is (0.x).")
def stringify(value: Any, **_: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


@needs_context
@skill(
    "flujo.builtins:context_set",
    "Set the run context at a dotted `path` to `value` (flujo 0.x).",
    side_effects=("context",),
)
def context_set(value: Any, *, context: dict[str, Any], **params: Any) -> dict[str, Any]:
    args = _args(value, params)
    path = str(args.get("path", ""))
    ok = bool(path)
    if ok:
        context_write(context, path, args.get("value"))
    return {"path": path, "value": args.get("value"), "success": ok}


@needs_context
@skill(
    "flujo.builtins:context_merge",
    "Merge a mapping `value` into the run context at a dotted `path` (flujo 0.x).",
    side_effects=("context",),
)
def context_merge(value: Any, *, context: dict[str, Any], **params: Any) -> dict[str, Any]:
    args = _args(value, params)
    path, new = str(args.get("path", "")), args.get("value")
    merged: list[str] = []
    if path and isinstance(new, Mapping):
        found = _walk(context, path, create=True)
        if found is not None:
            holder, key = found
            if not isinstance(holder.get(key), dict):
                holder[key] = {}
            holder[key].update(new)
            merged = [str(k) for k in new]
    return {"path": path, "merged_keys": merged, "success": bool(merged)}


@needs_context
@skill("flujo.builtins:context_get", "Read the run context at a dotted `path` (flujo 0.x).")
def context_get(value: Any, *, context: dict[str, Any], **params: Any) -> Any:
    args = _args(value, params)
    return context_read(context, str(args.get("path", "")), args.get("default"))


_FENCE = re.compile(r"```(?:yaml|yml)?[ \t]*\n(.*?)\n?```", re.S)


@skill(
    "flujo.builtins:extract_yaml_text",
    "YAML text out of an agent's output (a fenced block, `yaml_text` or `generated_yaml`).",
)
def extract_yaml_text(value: Any, **_: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        text = str(value.get("yaml_text") or value.get("generated_yaml") or "")
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = "" if value is None else str(value)
    fenced = _FENCE.search(text)
    if fenced is not None:
        text = fenced.group(1).strip()
    return {"yaml_text": text, "generated_yaml": text}


@skill(
    "flujo.builtins:validate_yaml",
    "Check YAML text as a Flujo spec: {is_valid, errors, warnings} (never imports code).",
)
def validate_yaml(value: Any, **params: Any) -> dict[str, Any]:
    from flujo.spec.load import check

    args = _args(value, params)
    text = args.get("yaml_text", value if isinstance(value, str) else "")
    text = str(text or "")
    try:
        _, diagnostics = check(text)
    except Exception as exc:  # a report, never a failing step: 0.x's behaviour
        return {"is_valid": False, "errors": [str(exc)], "warnings": []}
    errors = [d.message for d in diagnostics if d.severity == "error"]
    warnings = [d.message for d in diagnostics if d.severity != "error"]
    return {"is_valid": not errors, "errors": errors, "warnings": warnings}


@skill(
    "flujo.builtins:validation_report_to_flag",
    "{yaml_is_valid: bool} from a validation report (flujo 0.x).",
)
def validation_report_to_flag(value: Any, **_: Any) -> dict[str, bool]:
    valid = isinstance(value, Mapping) and bool(
        value.get("is_valid", False) or value.get("yaml_is_valid", False)
    )
    return {"yaml_is_valid": valid}


@skill(
    "flujo.builtins:capture_validation_report",
    "{validation_report, yaml_is_valid} from a validation report (flujo 0.x).",
)
def capture_validation_report(value: Any, **_: Any) -> dict[str, Any]:
    report = dict(value) if isinstance(value, Mapping) else {}
    return {"validation_report": report, "yaml_is_valid": bool(report.get("is_valid", False))}


@needs_context
@skill(
    "flujo.builtins:compute_validity_key",
    "'valid' or 'invalid' from the context's `yaml_is_valid` (flujo 0.x).",
)
def compute_validity_key(value: Any, *, context: dict[str, Any], **_: Any) -> str:
    return "valid" if context.get("yaml_is_valid") else "invalid"


@skill("flujo.builtins:always_valid_key", "Always 'valid' (flujo 0.x).")
def always_valid_key(value: Any, **_: Any) -> str:
    return "valid"


@skill(
    "flujo.builtins:check_user_confirmation",
    "'approved' for an empty answer, y or yes; else 'denied' (flujo 0.x).",
)
def check_user_confirmation(value: Any, **params: Any) -> str:
    answer = params.get("user_input", value)
    text = "" if answer is None else str(answer)
    return "approved" if text.strip().lower() in ("", "y", "yes") else "denied"


@skill("flujo.builtins:welcome_agent", "A greeting (flujo 0.x).")
def welcome_agent(value: Any, **params: Any) -> str:
    name = _args(value, params).get("name", "Developer")
    return f"Welcome to Flujo, {name}!"


@skill("flujo.builtins:flatten", "Flatten one level of nested lists (flujo 0.x).")
def flatten(value: Any, **_: Any) -> list[Any]:
    if not isinstance(value, list):
        return [] if value is None else [value]
    out: list[Any] = []
    for item in value:
        out.extend(item if isinstance(item, list) else [item])
    return out


@skill("flujo.builtins:select_fields", "Keep only the `fields` of a mapping or of each one.")
def select_fields(value: Any, **params: Any) -> Any:
    fields = params.get("fields") or (value.get("fields") if isinstance(value, dict) else None)
    keep = [str(f) for f in fields or []]

    def project(obj: Any) -> Any:
        return {k: obj[k] for k in keep if k in obj} if isinstance(obj, Mapping) else obj

    return [project(v) for v in value] if isinstance(value, list) else project(value)


def _is_valid(context: Any) -> bool:
    return isinstance(context, Mapping) and bool(context.get("yaml_is_valid"))


@skill(
    "flujo.builtins:exit_when_yaml_valid",
    "A loop's `exit_condition`: true once the context's `yaml_is_valid` is (flujo 0.x).",
)
def exit_when_yaml_valid(value: Any, context: Any = None, **_: Any) -> bool:
    return _is_valid(context)


@skill(
    "flujo.utils.context:predicate_is_valid_report",
    "A `condition`: 'valid' when the report's `is_valid` holds, else 'invalid' (flujo 0.x).",
)
def predicate_is_valid_report(value: Any, context: Any = None, **_: Any) -> str:
    valid = isinstance(value, Mapping) and bool(value.get("is_valid") or value.get("yaml_is_valid"))
    return "valid" if valid else "invalid"


LEGACY_BUILTINS: tuple[Callable[..., Any], ...] = (
    exit_when_yaml_valid,
    predicate_is_valid_report,
    passthrough,
    stringify,
    context_set,
    context_merge,
    context_get,
    extract_yaml_text,
    validate_yaml,
    validation_report_to_flag,
    capture_validation_report,
    compute_validity_key,
    always_valid_key,
    check_user_confirmation,
    welcome_agent,
    flatten,
    select_fields,
)
"""Every 0.x built-in provided here."""


def refusal(reference: str) -> str | None:
    """Why a 0.x built-in reference is not provided, naming its replacement."""
    if not reference.startswith(PREFIX):
        return None
    name = reference[len(PREFIX) :]
    if any(fn.__flujo_skill__.name == reference for fn in LEGACY_BUILTINS):  # type: ignore[attr-defined]
        return None
    instead = REFUSED.get(name)
    if instead is None:
        return f"flujo 0.x built-in '{name}' is not provided here"
    return f"flujo 0.x built-in '{name}' is not provided here; use {instead}"
