"""Read flujo 0.x blueprints: detect one, and convert it into the current format.

The conversion works on plain data and records, for every node it produces, the
node of the 0.x file it came from, so that diagnostics point into the file the user
wrote, and steps carry the yaml_path flujo 0.6 gave them (`steps[1].loop.body.steps[0]`,
with `.steps[j]` even where the file wrote a bare list), which is what their spans show.

Constructs this Flujo cannot honour are either warned about (the key has no effect) or
refused with an error naming the place; nothing is silently dropped.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flujo.spec import paths
from flujo.spec.errors import Diagnostic, Severity
from flujo.spec.model import FORMAT_VERSION
from flujo.spec.source import SourceDocument

UNSUPPORTED_KINDS = ("tree_search",)
"""0.x step kinds this Flujo does not run."""
UNSUPPORTED_HINTS = {
    "tree_search": "write a `loop` over proposer and evaluator agents, or an "
    "`agentic_loop` whose planner calls them as tools",
}
KEPT_COMMENT = "# flujo migrate: kept in its 0.x form: "
"""The comment `flujo migrate` writes above a step it could not convert; a file that says
the current `version:` and has one is in the current format (its kept steps are errors
where they are)."""
KEPT_CODES = ("unsupported-kind", "unsupported")
"""Codes of the errors that say the current format cannot express a 0.x step (as opposed
to a mistake in the file): `flujo migrate` keeps such a step in its 0.x form."""


def unsupported_kind(kind: str) -> str:
    """Why a step of a 0.x-only kind does not run here, and what to write instead."""
    return f"step kind '{kind}' is not supported by this Flujo: {UNSUPPORTED_HINTS[kind]}"


KINDS = {
    "cache": "cache",
    "dynamic_router": "dynamic_router",
    "agentic_loop": "agentic_loop",
    "step": "step",
    "parallel": "parallel",
    "conditional": "conditional",
    "loop": "loop",
    "map": "map",
    "hitl": "hitl",
    "StateMachine": "state_machine",
}
"""0.x kind -> kind in the current format."""

# Keys flujo 0.6's step model knows; those not converted below are warned about.
_STEP_KEYS = (
    "kind",
    "name",
    "step",
    "agent",
    "uses",
    "input",
    "config",
    "updates_context",
    "validate_fields",
    "branches",
    "reduce",
    "condition",
    "condition_expression",
    "default_branch",
    "loop",
    "map",
    "router",
    "fallback",
    "usage_limits",
    "plugins",
    "validators",
    "merge_strategy",
    "on_branch_failure",
    "context_include_keys",
    "field_mapping",
    "ignore_branch_names",
    "message",
    "input_schema",
    "output_schema",
    "sink_to",
    "wrapped_step",
    "planner",
    "registry",
    "output_template",
    "proposer",
    "evaluator",
    "discovery_agent",
    "static_invariants",
    "cost_function",
    "candidate_validator",
    "branching_factor",
    "beam_width",
    "max_depth",
    "max_iterations",
    "path_max_tokens",
    "goal_score_threshold",
    "require_goal",
    "processing",
    "meta",
    "start_state",
    "end_states",
    "states",
    "transitions",
    "description",
)
_CONVERTED_STEP_KEYS = {
    "step": {"input", "config", "validators", "fallback", "uses", "agent"},
    "parallel": {"branches", "merge_strategy", "on_branch_failure"},
    "conditional": {"branches", "condition_expression", "condition", "default_branch"},
    "loop": {"loop"},
    "map": {"map"},
    "hitl": {"message", "input_schema"},
    "StateMachine": {"start_state", "end_states", "states", "transitions"},
    "cache": {"wrapped_step"},
    "dynamic_router": {"router"},
    "agentic_loop": {"planner", "registry", "output_template"},
}
_NO_CONTEXT = ("updates_context", "sink_to")
_TOP_KEYS = ("version", "name", "agents", "imports", "steps", "static_invariants")
_NEW_TOP_KEYS = ("description", "tests", "policies", "usage_limits")
_AGENT_KEYS = (
    "model",
    "system_prompt",
    "output_schema",
    "model_settings",
    "timeout",
    "max_retries",
)
_CONFIG_KEYS = ("max_retries", "timeout_s", "timeout", "temperature", "top_k", "top_p")
_LOOP_KEYS = ("body", "max_loops", "exit_expression")
_MAP_KEYS = ("iterable_input", "body")
_TRANSITION_KEYS = ("from", "on", "to", "when")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_legacy(data: Any) -> bool:
    """Whether `data` (a parsed spec) is written in the flujo 0.x blueprint format.

    A file is 0.x when it uses a construct only 0.x has: `step:` or `agent:` on a step,
    settings nested under `loop:` or `map:`, `default_branch`, `merge_strategy`,
    `condition`, a bare list or a single step as a nested pipeline, a `StateMachine`
    or other 0.x-only kind, `system_prompt: {from_file: …}`, agent `model_settings`,
    `timeout` or `max_retries`, or `config.timeout` / `config.top_k`. Files that use
    only what both formats share read the same either way.
    """
    if not isinstance(data, dict):
        return False
    agents = data.get("agents")
    if isinstance(agents, dict):
        for agent in agents.values():
            if isinstance(agent, dict) and (
                isinstance(agent.get("system_prompt"), dict)
                or any(k in agent for k in ("model_settings", "timeout", "max_retries"))
            ):
                return True
    return _steps_legacy(data.get("steps"))


def _steps_legacy(steps: Any) -> bool:
    if not isinstance(steps, list):
        return False
    return any(_step_legacy(step) for step in steps)


def _step_legacy(step: Any) -> bool:
    if not isinstance(step, dict):
        return False
    kind = step.get("kind", "step")
    if kind in ("StateMachine", *UNSUPPORTED_KINDS):
        return True
    # the current format has these kinds too, written differently
    if kind == "dynamic_router" and "router" in step:
        return True
    if kind == "agentic_loop" and "registry" in step:
        return True
    if kind == "cache" and _step_legacy(step.get("wrapped_step")):
        return True
    # `updates_context`, `sink_to` and `condition` mean the same in both formats
    markers = ("step", "agent", "default_branch", "merge_strategy")
    if any(k in step for k in markers):
        return True
    if isinstance(step.get("loop"), dict) or isinstance(step.get("map"), dict):
        return True
    config = step.get("config")
    if isinstance(config, dict) and ("timeout" in config or "top_k" in config):
        return True
    nested: list[Any] = []
    for key in ("branches", "states"):
        value = step.get(key)
        if isinstance(value, dict):
            nested.extend(value.values())
    for key in ("default", "body"):
        if key in step:
            nested.append(step[key])
    for pipeline in nested:
        if isinstance(pipeline, list) or (isinstance(pipeline, dict) and "steps" not in pipeline):
            return True
        if isinstance(pipeline, dict) and _steps_legacy(pipeline.get("steps")):
            return True
    fallback = step.get("fallback")
    return isinstance(fallback, dict) and _step_legacy(fallback)


@dataclass
class Conversion:
    """A 0.x document in the current format, and how its nodes map back."""

    document: SourceDocument
    """The converted data, with the 0.x file's text, hash and (remapped) positions."""
    origin: dict[str, str] = field(default_factory=dict)
    """Path in the converted data -> path of the node in the 0.x file it came from."""
    step_paths: dict[str, str] = field(default_factory=dict)
    """Path of each converted step -> the yaml_path flujo 0.6 gives that step."""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    """Path of a step's name in the 0.x file -> the name it has now."""
    kept: dict[str, str] = field(default_factory=dict)
    """Path of a step in the 0.x file kept in its 0.x form (`keep_unsupported`) -> why the
    current format cannot say it."""

    def source_path(self, path: str) -> str:
        """The 0.x file's path for a path in the converted data (longest known prefix)."""
        segments = paths.split(path)
        for end in range(len(segments), -1, -1):
            head = paths.join(segments[:end])
            if head in self.origin:
                tail = paths.join(segments[end:])
                base = self.origin[head]
                if not tail:
                    return base
                if not base:
                    return tail
                return base + (tail if tail.startswith("[") else "." + tail)
        return path


def convert(
    document: SourceDocument, base_dir: Path | None = None, *, keep_unsupported: bool = False
) -> Conversion:
    """Convert a parsed 0.x blueprint; problems are collected, never raised.

    With `keep_unsupported`, a step the current format cannot say (an error coded one of
    `KEPT_CODES`) stays in the data as the 0.x file wrote it (see `Conversion.kept`)
    instead of being left out."""
    return _Converter(document, base_dir or Path.cwd(), keep_unsupported).run()


class _Converter:
    def __init__(self, document: SourceDocument, base_dir: Path, keep: bool = False) -> None:
        self.source = document
        self.keep = keep
        self.kept: dict[str, str] = {}
        self.base_dir = base_dir
        self.origin: dict[str, str] = {}
        self.step_paths: dict[str, str] = {}
        self.found: list[Diagnostic] = []
        self.names: set[str] = set()
        self.renamed: dict[str, str] = {}
        self.agent_controls: dict[str, dict[str, Any]] = {}
        self._catalog: dict[str, str] | None = None

    # -- reporting ---------------------------------------------------------------------

    def report(self, path: str, message: str, code: str, severity: Severity = "error") -> None:
        self.found.append(self.source.diagnostic(path, message, code, severity=severity))

    def warn(self, path: str, message: str, code: str = "legacy") -> None:
        self.report(path, message, code, "warning")

    def unknown(self, path: str, key: str, known: tuple[str, ...] | list[str]) -> None:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        self.warn(paths.child(path, key), f"unknown key '{key}' is ignored{hint}", "unknown-key")

    def ignored(self, path: str, key: str, why: str) -> None:
        self.warn(paths.child(path, key), f"`{key}` has no effect in this Flujo: {why}")

    # -- copying -----------------------------------------------------------------------

    def copy(self, value: Any, source: str, target: str) -> Any:
        """`value` unchanged, remembering where each node under it came from."""
        self.origin[target] = source
        if isinstance(value, dict):
            for key, item in value.items():
                self.copy(item, paths.child(source, key), paths.child(target, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.copy(item, f"{source}[{i}]", f"{target}[{i}]")
        return value

    # -- the document ------------------------------------------------------------------

    def run(self) -> Conversion:
        data = self.source.data
        out: dict[str, Any] = {"version": FORMAT_VERSION}
        self.origin[""] = ""
        version = data.get("version", "0.1")
        if "version" in data:
            self.origin["version"] = "version"
            if not (isinstance(version, str | int | float) and str(version).startswith("0.")):
                self.warn("version", f"version '{version}' is read as a flujo 0.x blueprint")
        for key, value in data.items():
            if key in ("name", "imports", *_NEW_TOP_KEYS):
                out[key] = self.copy(value, key, key)
            elif key == "agents":
                out[key] = self.agents(value)
            elif key == "static_invariants":
                self.ignored("", key, "invariants are not checked; write `policies:` instead")
            elif key not in _TOP_KEYS:
                self.unknown("", key, [*_TOP_KEYS, *_NEW_TOP_KEYS])
        steps = data.get("steps")
        if "steps" not in data:
            self.report("", "spec is missing required key 'steps'", "missing")
            steps = []
        out["steps"] = self.step_list(steps, "steps", "steps", "steps")
        document = SourceDocument(
            file=self.source.file,
            text=self.source.text,
            sha256=self.source.sha256,
            data=out,
            legacy=True,
            lenient=True,
        )
        positions = self.source.positions
        for target, source in self.origin.items():
            position = positions.get(source)
            if position is not None:
                document.positions[target] = position
        document.positions.setdefault("", (1, 1, 1, 1))
        return Conversion(
            document, self.origin, self.step_paths, self.found, self.renamed, self.kept
        )

    # -- the skill catalog ---------------------------------------------------------------

    def catalog(self) -> dict[str, str]:
        """0.x's `skills.yaml` beside the blueprint: skill name -> import path. The paths
        are checked against the allow-list like any other (nothing is imported here)."""
        if self._catalog is not None:
            return self._catalog
        self._catalog = {}
        path = self.base_dir / "skills.yaml"
        if not path.is_file() or self.source.file == str(path):
            return self._catalog
        from flujo.spec.source import parse

        try:
            data = parse(path.read_bytes(), str(path)).data
        except Exception as exc:  # reported on the step that names a skill
            self.warn("", f"cannot read skills.yaml beside the blueprint: {exc}", "legacy")
            return self._catalog
        if not isinstance(data, dict):
            return self._catalog
        for name, entry in data.items():
            target = entry.get("path") if isinstance(entry, dict) else entry
            if isinstance(name, str) and isinstance(target, str) and target:
                self._catalog[name] = _import_path(target)
        return self._catalog

    # -- agents ------------------------------------------------------------------------

    def agents(self, agents: Any) -> Any:
        if not isinstance(agents, dict):
            return self.copy(agents, "agents", "agents")
        self.origin["agents"] = "agents"
        out: dict[str, Any] = {}
        for name, agent in agents.items():
            path = paths.child("agents", name)
            if not isinstance(agent, dict):
                out[name] = self.copy(agent, path, path)
                continue
            self.origin[path] = path
            converted: dict[str, Any] = {}
            for key, value in agent.items():
                where = paths.child(path, key)
                if key in ("model", "output_schema"):
                    converted[key] = self.copy(value, where, where)
                elif key == "system_prompt":
                    converted[key] = self.prompt(value, where)
                    self.origin[where] = where
                elif key == "model_settings":
                    converted.update(self.model_settings(value, where, path))
                elif key in ("timeout", "max_retries"):
                    self.agent_controls.setdefault(name, {})[key] = (value, where)
                else:
                    self.unknown(path, key, _AGENT_KEYS)
            if "output_schema" not in agent:
                self.warn(path, f"agent '{name}' has no output_schema (flujo 0.x requires one)")
            out[name] = converted
        return out

    def prompt(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            return value
        if "from_file" not in value or set(value) - {"from_file", "variables"}:
            self.report(
                path,
                "system_prompt must be a string or {from_file: PATH, variables: {…}}",
                "schema",
            )
            return ""
        relative = value["from_file"]
        where = paths.child(path, "from_file")
        try:
            target = (self.base_dir / str(relative)).resolve()
        except (ValueError, OSError) as exc:  # a NUL byte, a name too long
            self.report(where, f"{str(relative)[:200]!r} is not a usable path ({exc})", "schema")
            return ""
        if not target.is_relative_to(self.base_dir.resolve()):
            self.report(where, f"'{relative}' is outside the blueprint's folder", "unsafe-path")
            return ""
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            self.report(where, f"cannot read prompt file '{relative}': {reason}", "missing-file")
            return ""
        variables = value.get("variables") or {}
        if not isinstance(variables, dict):
            self.report(paths.child(path, "variables"), "variables must be a mapping", "schema")
            return text
        for name, replacement in variables.items():
            if isinstance(replacement, str) and "{{" in replacement:
                self.warn(
                    paths.child(paths.child(path, "variables"), name),
                    "a variable filled at run time (a template) is left in the prompt as is",
                )
                continue
            pattern = re.compile(r"\{\{\s*" + re.escape(str(name)) + r"\s*\}\}")
            text = pattern.sub(str(replacement).replace("\\", "\\\\"), text)
        return text

    def model_settings(self, value: Any, where: str, agent_path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not isinstance(value, dict):
            self.report(where, "model_settings must be a mapping", "schema")
            return out
        for key, item in value.items():
            if key in ("temperature", "max_tokens"):
                out[key] = self.copy(item, paths.child(where, key), paths.child(agent_path, key))
            else:
                self.ignored(where, key, "only temperature and max_tokens are passed to models")
        return out

    # -- step lists ----------------------------------------------------------------------

    def step_list(self, steps: Any, source: str, legacy: str, target: str) -> list[Any]:
        """Steps of a `steps: [...]` list at `source` (0.x data) -> `target` (converted)."""
        self.origin[target] = source
        if not isinstance(steps, list):
            self.report(source, "expected a list of steps", "schema")
            return []
        out = []
        for i, step in enumerate(steps):
            converted = self.step(step, f"{source}[{i}]", f"{legacy}[{i}]", f"{target}[{i}]")
            if converted is not None:
                out.append(converted)
        return out

    def pipeline(self, value: Any, source: str, legacy: str, target: str) -> dict[str, Any]:
        """A nested pipeline: a bare list, `{steps: […]}` or one step mapping."""
        self.origin[target] = source
        steps_target = paths.child(target, "steps")
        steps_legacy = paths.child(legacy, "steps")
        if isinstance(value, list):
            return {"steps": self.step_list(value, source, steps_legacy, steps_target)}
        if isinstance(value, dict) and "steps" in value:
            steps_source = paths.child(source, "steps")
            return {
                "steps": self.step_list(value["steps"], steps_source, steps_legacy, steps_target)
            }
        if isinstance(value, dict):
            self.origin[steps_target] = source
            step = self.step(value, source, f"{steps_legacy}[0]", f"{steps_target}[0]")
            return {"steps": [step] if step is not None else []}
        self.report(source, "expected a list of steps, `steps: [...]` or one step", "schema")
        return {"steps": []}

    # -- steps ---------------------------------------------------------------------------

    def step(self, raw: Any, source: str, legacy: str, target: str) -> dict[str, Any] | None:
        if not self.keep:
            return self._convert_step(raw, source, legacy, target)
        mark = len(self.found)
        out = self._convert_step(raw, source, legacy, target)
        reasons = [  # errors of this step itself (a nested step kept itself already)
            d.message
            for d in self.found[mark:]
            if d.severity == "error"
            and d.code in KEPT_CODES
            and not any(_within(d.yaml_path, kept) for kept in self.kept)
        ]
        if not reasons:
            return out
        self.kept[source] = "; ".join(reasons)
        self.origin[target] = source
        self.step_paths[target] = legacy
        return dict(self.copy(raw, source, target))

    def _convert_step(
        self, raw: Any, source: str, legacy: str, target: str
    ) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.report(source, "a step must be a mapping", "schema")
            return None
        kind = raw.get("kind", "step")
        if not isinstance(kind, str):
            self.report(paths.child(source, "kind"), "step `kind` must be a string", "schema")
            return None
        if kind == "cache" and not any(k in raw for k in ("name", "step")):
            inner = raw.get("wrapped_step")
            inner_name = inner.get("name", inner.get("step")) if isinstance(inner, dict) else None
            raw = {**raw, "name": f"{inner_name or 'step'}_cache"}
        if kind in UNSUPPORTED_KINDS:
            self.report(paths.child(source, "kind"), unsupported_kind(kind), "unsupported-kind")
            return None
        if kind not in KINDS:
            close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.report(
                paths.child(source, "kind"),
                f"custom step kind '{kind}' is not supported by this Flujo{hint}",
                "unsupported-kind",
            )
            return None
        self.origin[target] = source
        self.step_paths[target] = legacy
        out: dict[str, Any] = {"name": self.name(raw, source, target)}
        if kind != "step":
            out["kind"] = KINDS[kind]
            if "kind" in raw:
                self.origin[paths.child(target, "kind")] = paths.child(source, "kind")
        converted = _CONVERTED_STEP_KEYS[kind]
        for key, value in raw.items():
            if key in ("kind", "name", "step") or key in converted:
                continue
            if key == "description" or key in _NO_CONTEXT:
                out[key] = self.copy(value, paths.child(source, key), paths.child(target, key))
            elif key in _STEP_KEYS:
                self.ignored(source, key, f"not used by `{kind}` steps here")
            else:
                self.unknown(source, key, _STEP_KEYS)
        builder = getattr(self, f"_{KINDS[kind]}")
        builder(raw, out, source, legacy, target)
        return out

    def name(self, raw: dict[str, Any], source: str, target: str) -> str:
        key = "name" if "name" in raw else "step"
        where = paths.child(source, key)
        self.origin[paths.child(target, "name")] = where
        name = raw.get(key)
        if name is None:
            self.report(source, "step is missing required key 'name'", "missing")
            name = "step"
        text = str(name)
        wanted = text if _NAME.match(text) else _sanitized(text)
        chosen, n = wanted, 1
        while chosen in self.names:
            n += 1
            chosen = f"{wanted[:60]}_{n}"
        self.names.add(chosen)
        if chosen != text:
            self.renamed[where] = chosen
            why = "already used" if wanted == text else "not a valid name"
            self.warn(
                where,
                f"step name '{text}' is {why}; it is '{chosen}' here "
                "(names are letters, digits, '_' and '-', unique in the pipeline)",
                "legacy-name",
            )
        return chosen

    # -- kinds ---------------------------------------------------------------------------

    def _step(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        def at(key: str) -> tuple[str, str]:
            return paths.child(source, key), paths.child(target, key)

        uses, agent = raw.get("uses"), raw.get("agent")
        if isinstance(uses, str) and uses in self.catalog():
            uses = self.catalog()[uses]
        if isinstance(agent, str) and agent in self.catalog():
            agent = self.catalog()[agent]
        if isinstance(agent, dict) and agent.get("id") in self.catalog():
            agent = {**agent, "id": self.catalog()[str(agent["id"])]}
        if uses is not None:
            out["uses"] = self.copy(uses, *at("uses"))
            if agent is not None:
                self.warn(paths.child(source, "agent"), "`agent` is ignored: the step has `uses`")
        elif isinstance(agent, str):
            out["uses"] = self.copy(_import_path(agent), *at("agent"))
        elif isinstance(agent, dict):
            where = paths.child(source, "agent")
            self.origin[paths.child(target, "uses")] = paths.child(where, "id")
            if not isinstance(agent.get("id"), str):
                self.report(where, "`agent` needs an `id` naming a skill", "missing")
            else:
                out["uses"] = _import_path(agent["id"])
            params = agent.get("params")
            if params:
                out["with"] = self.copy(
                    params, paths.child(where, "params"), paths.child(target, "with")
                )
            for key in agent:
                if key not in ("id", "params"):
                    self.unknown(where, key, ["id", "params"])
            _keep_0x_template_input(out, "input" in raw)
        elif agent is not None:
            self.report(
                paths.child(source, "agent"), "`agent` must be a string or a mapping", "schema"
            )
        if "input" in raw:
            out["input"] = self.copy(raw["input"], *at("input"))
        config = self.config(raw.get("config"), source, target)
        used = out.get("uses")
        if isinstance(used, str) and used.startswith("agents."):
            for key, (value, where) in self.agent_controls.get(used[7:], {}).items():
                new_key = "timeout_s" if key == "timeout" else key
                if new_key not in config:
                    config[new_key] = value
                    self.origin[paths.child(paths.child(target, "config"), new_key)] = where
        if config:
            out["config"] = config
        if "validators" in raw:
            out["validators"] = self.copy(raw["validators"], *at("validators"))
        if "fallback" in raw:
            fallback = raw["fallback"]
            fb_source, fb_target = at("fallback")
            step = self.step(fallback, fb_source, paths.child(legacy, "fallback"), fb_target)
            if step is not None:
                if step.get("kind", "step") != "step":
                    self.report(fb_source, "a fallback must be a plain step", "unsupported")
                else:
                    out["fallback"] = step

    def config(self, config: Any, source: str, target: str) -> dict[str, Any]:
        if config is None:
            return {}
        where, to = paths.child(source, "config"), paths.child(target, "config")
        self.origin[to] = where
        if not isinstance(config, dict):
            self.report(where, "config must be a mapping", "schema")
            return {}
        out: dict[str, Any] = {}
        for key, value in config.items():
            if key in ("max_retries", "timeout_s", "timeout", "temperature", "top_p"):
                new_key = "timeout_s" if key == "timeout" else key
                out[new_key] = self.copy(value, paths.child(where, key), paths.child(to, new_key))
            elif key == "top_k":
                self.ignored(where, key, "models are called without top_k")
            elif key in ("input_to", "outputs"):
                self.ignored(
                    where,
                    key,
                    "an imported pipeline gets the step's input and gives back its output",
                )
            else:
                self.unknown(where, key, _CONFIG_KEYS)
        return out

    def _parallel(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        out["branches"] = self.branches(raw, source, legacy, target)
        if "merge_strategy" in raw:
            self.ignored(source, "merge_strategy", "the output maps each branch to its output")
        policy = raw.get("on_branch_failure")
        if policy is not None:
            where = paths.child(source, "on_branch_failure")
            mapped = {"propagate": "fail", "fail": "fail", "ignore": "ignore"}.get(str(policy))
            if mapped is None:
                self.report(
                    where,
                    f"on_branch_failure must be 'propagate' or 'ignore' (got {policy!r})",
                    "schema",
                )
            else:
                out["on_branch_failure"] = mapped
                self.origin[paths.child(target, "on_branch_failure")] = where

    def branches(self, raw: dict[str, Any], source: str, legacy: str, target: str) -> Any:
        branches = raw.get("branches")
        where, to, legacy_base = (
            paths.child(source, "branches"),
            paths.child(target, "branches"),
            paths.child(legacy, "branches"),
        )
        if not isinstance(branches, dict):
            return self.copy(branches, where, to)
        self.origin[to] = where
        return {
            str(key): self.pipeline(
                value,
                paths.child(where, str(key)),
                f"{legacy_base}.{key}",
                paths.child(to, str(key)),
            )
            for key, value in branches.items()
        }

    def _conditional(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        if "condition_expression" in raw:
            out["condition_expression"] = self.copy(
                raw["condition_expression"],
                paths.child(source, "condition_expression"),
                paths.child(target, "condition_expression"),
            )
        elif "condition" in raw:
            where = paths.child(source, "condition")
            condition = raw["condition"]
            if isinstance(condition, str):
                out["condition"] = self.copy(
                    _import_path(condition), where, paths.child(target, "condition")
                )
            else:
                self.report(where, "`condition` must name a callable `pkg.mod:attr`", "schema")
                out["condition_expression"] = "''"
        out["branches"] = self.branches(raw, source, legacy, target)
        if "default_branch" in raw:
            out["default"] = self.pipeline(
                raw["default_branch"],
                paths.child(source, "default_branch"),
                paths.child(legacy, "default_branch"),
                paths.child(target, "default"),
            )

    def _nested(
        self, raw: dict[str, Any], key: str, known: tuple[str, ...], source: str
    ) -> dict[str, Any]:
        settings = raw.get(key)
        where = paths.child(source, key)
        if not isinstance(settings, dict):
            self.report(
                where if key in raw else source,
                f"a {key} step needs `{key}:` with {', '.join(known)}",
                "missing",
            )
            return {}
        for extra in settings:
            if extra not in known:
                if extra == "exit_condition" and key == "loop":
                    continue
                else:
                    self.warn(
                        paths.child(where, extra),
                        f"`{key}.{extra}` has no effect in this Flujo",
                        "legacy",
                    )
        return settings

    def _loop(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        settings = self._nested(raw, "loop", _LOOP_KEYS, source)
        where = paths.child(source, "loop")
        body = settings.get("body")
        out["body"] = self.pipeline(
            body if body is not None else [],
            paths.child(where, "body"),
            paths.child(paths.child(legacy, "loop"), "body"),
            paths.child(target, "body"),
        )
        if isinstance(settings.get("exit_condition"), str):
            settings = {**settings, "exit_condition": _import_path(settings["exit_condition"])}
        for key in ("max_loops", "exit_expression", "exit_condition"):
            if key in settings:
                out[key] = self.copy(
                    settings[key], paths.child(where, key), paths.child(target, key)
                )

    def _map(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        settings = self._nested(raw, "map", _MAP_KEYS, source)
        where = paths.child(source, "map")
        iterable = settings.get("iterable_input")
        over_from = paths.child(where, "iterable_input")
        if not isinstance(iterable, str) or not iterable:
            self.report(
                over_from if "iterable_input" in settings else where,
                "map needs `iterable_input`: the name of the list to map over",
                "missing",
            )
            iterable = "items"
        # 0.x reads the list from the run context (a dotted field name)
        dotted = all(_IDENTIFIER.match(part) for part in iterable.split("."))
        out["over"] = f"context.{iterable}" if dotted else iterable
        self.origin[paths.child(target, "over")] = over_from
        body = settings.get("body")
        out["body"] = self.pipeline(
            body if body is not None else [],
            paths.child(where, "body"),
            paths.child(paths.child(legacy, "map"), "body"),
            paths.child(target, "body"),
        )

    def _cache(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        where, to = paths.child(source, "wrapped_step"), paths.child(target, "wrapped_step")
        if "wrapped_step" not in raw:
            self.report(
                source, "a cache step needs `wrapped_step:` (the step it caches)", "missing"
            )
            out["wrapped_step"] = {"name": f"{out['name']}_inner"}
            return
        step = self.step(raw["wrapped_step"], where, f"{legacy}.wrapped_step", to)
        if step is not None and step.get("kind", "step") != "step":
            self.report(where, "a cache step wraps a plain step", "unsupported")
            step = None  # reported once, here (not again by the current format's schema)
        out["wrapped_step"] = step if step is not None else {"name": f"{out['name']}_inner"}

    def _agent_reference(self, value: Any, source: str, target: str, legacy: str) -> Any:
        """An agent named as 0.x names them (`agents.X`, `pkg.mod.attr`, `pkg.mod:attr`, a
        skills.yaml name): the `uses:` shorthand of a plain step here."""
        self.origin[target] = source
        if not isinstance(value, str) or not value:
            self.report(source, "expected an agent: `agents.NAME` or `pkg.mod:attr`", "schema")
            return "passthrough"
        self.step_paths[target] = legacy
        return _import_path(self.catalog().get(value, value))

    def _dynamic_router(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        router = raw.get("router")
        where, legacy_router = paths.child(source, "router"), f"{legacy}.router"
        if not isinstance(router, dict) or "router_agent" not in router or "branches" not in router:
            self.report(
                where if "router" in raw else source,
                "a dynamic_router step needs `router:` with `router_agent` and `branches`",
                "missing",
            )
            out["router_agent"], out["branches"] = "passthrough", {"none": {"steps": []}}
            return
        for extra in router:
            if extra not in ("router_agent", "branches"):
                self.unknown(where, extra, ["router_agent", "branches"])
        out["router_agent"] = self._agent_reference(
            router["router_agent"],
            paths.child(where, "router_agent"),
            paths.child(target, "router_agent"),
            f"{legacy_router}.router_agent",
        )
        out["branches"] = self.branches(router, where, legacy_router, target)

    def _agentic_loop(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        if "planner" not in raw:
            self.report(source, "an agentic_loop step needs `planner:` (an agent)", "missing")
            out["planner"] = "passthrough"
        else:
            out["planner"] = self._agent_reference(
                raw["planner"],
                paths.child(source, "planner"),
                paths.child(target, "planner"),
                f"{legacy}.planner",
            )
        registry = raw.get("registry", {})
        where, to = paths.child(source, "registry"), paths.child(target, "tools")
        if not isinstance(registry, dict):
            self.report(
                where,
                "`registry` must map tool names to agents here (an import path to a "
                "dict is not read: checking never imports code)",
                "unsupported",
            )
            registry = {}
        self.origin[to] = where
        out["tools"] = {
            str(name): self._agent_reference(
                agent,
                paths.child(where, str(name)),
                paths.child(to, str(name)),
                f"{legacy}.registry.{name}",
            )
            for name, agent in registry.items()
        }
        if "output_template" in raw:
            out["output_template"] = self.copy(
                raw["output_template"],
                paths.child(source, "output_template"),
                paths.child(target, "output_template"),
            )

    def _hitl(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        for key in ("message", "input_schema"):
            if key in raw:
                out[key] = self.copy(raw[key], paths.child(source, key), paths.child(target, key))

    def _state_machine(
        self, raw: dict[str, Any], out: dict[str, Any], source: str, legacy: str, target: str
    ) -> None:
        for key in ("start_state", "end_states"):
            if key in raw:
                value = raw[key]
                if key == "end_states" and not isinstance(value, list):
                    value = [value]
                out[key] = self.copy(value, paths.child(source, key), paths.child(target, key))
        states = raw.get("states")
        where, to = paths.child(source, "states"), paths.child(target, "states")
        if isinstance(states, dict):
            self.origin[to] = where
            out["states"] = {
                str(name): self.pipeline(
                    steps,
                    paths.child(where, str(name)),
                    f"{legacy}.states.{name}",
                    paths.child(to, str(name)),
                )
                for name, steps in states.items()
            }
        else:
            out["states"] = self.copy(states, where, to)
        transitions = raw.get("transitions")
        if transitions is None:
            return
        where, to = paths.child(source, "transitions"), paths.child(target, "transitions")
        if not isinstance(transitions, list):
            out["transitions"] = self.copy(transitions, where, to)
            return
        self.origin[to] = where
        rules: list[Any] = []
        for i, rule in enumerate(transitions):
            rule_from, rule_to = f"{where}[{i}]", f"{to}[{len(rules)}]"
            if not isinstance(rule, dict):
                rules.append(self.copy(rule, rule_from, rule_to))
                continue
            # `on:` read by a YAML 1.1 parser is the boolean true; such files say `true:`.
            written = {("on" if k == "true" and "on" not in rule else k): k for k in rule}
            if rule.get(written.get("on", "on")) == "pause":
                message = "an `on: pause` rule never fires: hitl steps ask when they run"
                self.warn(rule_from, message, "legacy")
                continue
            self.origin[rule_to] = rule_from
            converted = {}
            for key, original in written.items():
                if key not in _TRANSITION_KEYS:
                    self.unknown(rule_from, key, _TRANSITION_KEYS)
                    continue
                converted[key] = self.copy(
                    rule[original], paths.child(rule_from, original), paths.child(rule_to, key)
                )
            rules.append(converted)
        out["transitions"] = rules


def _sanitized(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "step"
    if not re.match(r"[A-Za-z_]", text):
        text = "_" + text
    return text[:64]


def _import_path(reference: str) -> str:
    """`pkg.mod.attr` (0.x `agent:` form) -> `pkg.mod:attr`; other forms unchanged."""
    if ":" in reference or "." not in reference or reference.startswith(("agents.", "imports.")):
        return reference
    module, _, attr = reference.rpartition(".")
    return f"{module}:{attr}"


def _keep_0x_template_input(out: dict[str, Any], has_input: bool) -> None:
    """In 0.x a `template_render` template's `input` was the step's own input (the previous
    output); here every template's `input` is the pipeline's input, so a converted template
    that reads `input` rebinds it to `previous`, and runs as it did."""
    params = out.get("with")
    if not isinstance(params, dict) or out.get("uses") != "template_render" or has_input:
        return
    template = params.get("template")
    if not isinstance(template, str):
        return
    if re.search(r"\binput\b", template):
        params["template"] = "{% with input = previous %}" + template + "{% endwith %}"


def _within(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or a node under it."""
    return path == prefix or path.startswith((prefix + ".", prefix + "["))
