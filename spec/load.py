"""YAML text or file -> `Pipeline`, with every problem reported at its place."""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from flujo.spec import paths
from flujo.spec.display import display_name
from flujo.spec.errors import Diagnostic, SpecError, sort_diagnostics
from flujo.spec.model import FORMAT_VERSION, STEP_KINDS, Pipeline, SpecNode
from flujo.spec.registry import StepRegistry
from flujo.spec.source import SourceDocument, parse, read_bytes

if TYPE_CHECKING:
    from flujo.spec.legacy.blueprint import Conversion


def load_pipeline(text_or_path: str | Path, *, registry: StepRegistry | None = None) -> Pipeline:
    """Load and check a spec; raise SpecError carrying every error (warnings are dropped)."""
    pipeline, diagnostics = check(text_or_path, registry=registry)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors or pipeline is None:
        raise SpecError(errors)
    return pipeline


def check(
    text_or_path: str | Path,
    *,
    registry: StepRegistry | None = None,
    _importers: tuple[Path, ...] = (),
    _loaded: dict[Path, tuple[Pipeline | None, list[Diagnostic]]] | None = None,
    document: SourceDocument | None = None,
) -> tuple[Pipeline | None, list[Diagnostic]]:
    """Load a spec and run every check; return the pipeline (if its schema is valid) and
    all diagnostics, sorted by position. `document` is the spec already parsed
    (`read_document(text_or_path)`), for a caller that needs it too: parsed once.

    flujo 0.x blueprints are recognised and read through `flujo.spec.legacy.blueprint`; files
    named in `imports:` are loaded too (their problems carry their own file name), each
    resolved path once per check however many files import it.
    Raises OSError when a path cannot be read, SpecError when the file is not YAML at all.
    """
    if document is None:
        document = read_document(text_or_path)
    is_file = isinstance(text_or_path, Path) or document.file != "<string>"
    spec_path = Path(text_or_path) if is_file else None
    conversion = legacy_conversion(document, spec_path)
    if conversion is not None:
        document = conversion.document
    pipeline, diagnostics = validate_document(document)
    # With schema errors, the other checks still run on a copy in which the broken
    # nodes are neutralised, so one run reports every problem (minus those nodes').
    checked, repaired = (pipeline, []) if pipeline is not None else _salvage(document)
    if checked is not None:
        from flujo.spec.lint import check_pipeline

        if registry is None:
            registry = registry_for(spec_path)
        # A subtree that failed to parse is gone from the salvaged copy: what it declares
        # (step names, agent uses) still counts, so one typo gives one error.
        raw = document.data if repaired else None
        diagnostics.extend(
            d
            for d in check_pipeline(checked, registry=registry, raw=raw)
            if not any(_within(d.yaml_path, path) for path in repaired)
        )
        diagnostics = _one_error_per_typo(diagnostics)
    if conversion is not None:
        diagnostics = [
            replace(d, yaml_path=conversion.source_path(d.yaml_path)) for d in diagnostics
        ]
        diagnostics.extend(conversion.diagnostics)
        if pipeline is not None:
            _legacy_paths(pipeline, conversion)
            if any(d.severity == "error" for d in conversion.diagnostics):
                pipeline = None
    if pipeline is not None and pipeline.imports:
        from flujo.spec.imports import load_imports

        chain = (*_importers, spec_path.resolve()) if spec_path is not None else _importers
        loaded = {} if _loaded is None else _loaded
        diagnostics.extend(
            load_imports(pipeline, spec_path, registry=registry, importers=chain, loaded=loaded)
        )
    return pipeline, limit_diagnostics(sort_diagnostics(diagnostics))


MAX_DIAGNOSTICS = 200
"""Most diagnostics reported for one spec (its imports included); past it, one more says
how many were left out. Each also stands for every repeat of itself at the same place
(a problem inside a node that aliases repeat is reported once, at the anchored text)."""


def limit_diagnostics(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per (code, message, file, line, col, severity), at most
    MAX_DIAGNOSTICS of them (errors kept before warnings), then one that counts the rest;
    the order of `diagnostics` is kept."""
    unique: dict[tuple[str, str, str, int, int, str], Diagnostic] = {}
    for d in diagnostics:
        unique.setdefault((d.code, d.message, d.file, d.line, d.col, d.severity), d)
    kept = list(unique.values())
    if len(kept) <= MAX_DIAGNOSTICS:
        return kept
    ranked = sorted(range(len(kept)), key=lambda i: (kept[i].severity != "error", i))
    shown = sorted(ranked[:MAX_DIAGNOSTICS])
    hidden = [kept[i] for i in ranked[MAX_DIAGNOSTICS:]]
    first = hidden[0]
    errors = sum(d.severity == "error" for d in hidden)
    more = Diagnostic(
        f"{len(hidden)} more diagnostics not shown ({errors} errors); at most "
        f"{MAX_DIAGNOSTICS} are reported per spec",
        "too-many-diagnostics",
        first.file,
        first.line,
        first.col,
        severity="error" if errors else "warning",
    )
    return [*(kept[i] for i in shown), more]


def _one_error_per_typo(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Drop "missing required key 'K'" on a node that has an unknown key whose did-you-mean
    is 'K', and "expected a mapping, not empty" on a key whose keys were written one level
    too shallow: the misplaced key's own error already says it."""
    import re

    meant = set()
    emptied = set()  # `config:` left empty because its keys are not indented under it
    for d in diagnostics:
        match = re.search(r"did you mean '([^']+)'\?$", d.message)
        if d.code == "unknown-key" and match and "." in d.yaml_path:
            meant.add((d.yaml_path.rsplit(".", 1)[0], match.group(1)))
        under = re.search(r"did you mean to indent it under `([^`]+):`", d.message)
        if d.code == "unknown-key" and under and "." in d.yaml_path:
            emptied.add(paths.child(d.yaml_path.rsplit(".", 1)[0], under.group(1)))
    return [
        d
        for d in diagnostics
        if not (
            d.code == "missing"
            and (m := re.search(r"missing required key '([^']+)'$", d.message))
            and (d.yaml_path, m.group(1)) in meant
        )
        and not (d.yaml_path in emptied and d.message.endswith("not empty (null)"))
    ]


def legacy_conversion(
    document: SourceDocument, spec_path: Path | None, *, keep_unsupported: bool = False
) -> Conversion | None:
    """The conversion of a flujo 0.x blueprint (None for a file in the current format).

    A file is read as 0.x when it uses a 0.x-only construct, or when it says
    `version: "0.x"` and is not valid in the current format. `keep_unsupported`: see
    `flujo.spec.legacy.blueprint.convert`."""
    from flujo.spec.legacy import blueprint as legacy

    data = document.data
    if not isinstance(data, dict):
        return None
    current = str(data.get("version", "")) == FORMAT_VERSION
    if current and legacy.KEPT_COMMENT in document.text:  # `flujo migrate` wrote it
        return None
    if not legacy.is_legacy(data):
        if not str(data.get("version", "")).startswith("0."):
            return None
        try:
            Pipeline.model_validate(data)
        except ValidationError:
            pass
        else:
            return None
    base_dir = spec_path.resolve().parent if spec_path is not None else None
    return legacy.convert(document, base_dir, keep_unsupported=keep_unsupported)


def _legacy_paths(pipeline: Pipeline, conversion: Conversion) -> None:
    """Give each node the path flujo 0.6 used: its 0.x yaml_path for steps (what their
    spans carry), the place in the 0.x file for every other node."""
    for node, path in iter_nodes(pipeline):
        node._yaml_path = conversion.step_paths.get(path) or conversion.source_path(path)


SKILLS_ALLOW_ENV = "FLUJO_SKILLS_ALLOW"
"""Import paths the person running Flujo allows, in the environment: a JSON list
(`["pkg.mod:fn", "pkg.other:*"]`) or a comma-separated list."""


def operator_allow() -> tuple[str, ...]:
    """The allow-list in $FLUJO_SKILLS_ALLOW (empty when unset)."""
    import json

    raw = os.environ.get(SKILLS_ALLOW_ENV, "").strip()
    if not raw:
        return ()
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except ValueError:
            items = []
        return tuple(str(item) for item in items if isinstance(item, str))
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def registry_for(spec_path: Path | None, *, untrusted: bool = False) -> StepRegistry:
    """The registry a spec file sees: built-ins, plugins, $FLUJO_SKILLS_ALLOW and, unless
    `untrusted`, its repository's allow-list (`.github/flujo.yml` `skills.allow`, which a
    pull request can change: code it names is the pull request's code)."""
    from flujo.spec.check_cache import find_config  # the search, without the config's models

    found = find_config(spec_path) if spec_path is not None else None
    config = None
    if found is not None:  # no config file: the defaults (no allow-list, no types)
        from flujo.spec.config import load_config

        config = load_config(found)
    types = config.types if config else None  # data, not code: kept even when untrusted
    if untrusted:
        return StepRegistry(allow=operator_allow(), types=types)
    allowed = (*operator_allow(), *(config.skills.allow if config else ()))
    return StepRegistry(allow=allowed, types=types)


def repository_allowed_references(pipeline: Pipeline, spec_path: Path) -> list[str]:
    """The import paths `pipeline` (and what it imports) uses that only its repository's
    allow-list permits: running it imports code the repository chose."""
    operator = registry_for(spec_path, untrusted=True)
    repository = registry_for(spec_path)
    references: set[str] = set()
    pending, seen = [pipeline], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        pending.extend(current.imported.values())
        for _, step in current.walk():
            uses = getattr(step, "uses", None)
            if isinstance(uses, str):
                references.add(uses)
            for validator in getattr(step, "validators", ()):
                references.add(validator.uses)
    return sorted(
        r
        for r in references
        if ":" in r and repository.problem(r) is None and operator.problem(r) is not None
    )


def read_document(text_or_path: str | Path) -> SourceDocument:
    """Parse YAML from a path or from text (see `Pipeline.from_yaml` for the rule)."""
    if isinstance(text_or_path, Path) or _looks_like_path(text_or_path):
        path = Path(text_or_path)
        return parse(read_bytes(path), display_name(path))
    return parse(text_or_path)


def _looks_like_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    return text.endswith((".yml", ".yaml")) or os.path.isfile(text)


def validate_document(document: SourceDocument) -> tuple[Pipeline | None, list[Diagnostic]]:
    """Schema-validate parsed data; the model gets its source and node locations. A file
    `flujo migrate` wrote with `LENIENT_COMMENT` reads missing values as 0.x did."""
    from flujo.spec.legacy.lenient import marked_lenient

    if not document.lenient and marked_lenient(document.text):
        document.lenient = True
    if not isinstance(document.data, dict):
        kind = _type_name(document.data)
        return None, [document.diagnostic("", f"a spec must be a mapping, not {kind}", "schema")]
    try:
        pipeline = Pipeline.model_validate(document.data)
    except ValidationError as exc:
        return None, pydantic_diagnostics(document, exc, Pipeline)
    pipeline._source = document
    attach_locations(pipeline, document)
    return pipeline, []


def _salvage(document: SourceDocument) -> tuple[Pipeline | None, list[str]]:
    """A schema-valid copy of an invalid spec, and the paths that were changed to get it:
    offending keys are dropped, and a step, agent, test or policy that still fails is
    replaced by a minimal placeholder. None when the damage is outside those nodes."""
    import copy

    data = copy.deepcopy(document.data)
    repaired: list[str] = []
    for _ in range(4):
        try:
            pipeline = Pipeline.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                segments, _ = _data_path(data, error["loc"])
                path = _repair(data, segments, error["type"])
                if path is None:
                    return None, []
                repaired.append(path)
            continue
        pipeline._source = document
        attach_locations(pipeline, document)
        return pipeline, repaired
    return None, []


def _repair(data: Any, segments: list[paths.Segment], kind: str) -> str | None:
    """Neutralise the node an error points at; return the path changed (None: cannot)."""
    parent = _get(data, segments[:-1]) if segments else None
    node_kinds = ("steps", "fallback", "agents", "tests", "policies")
    leaf_of_node = len(segments) >= 2 and any(s in node_kinds for s in segments[:-1])
    if (
        kind == "extra_forbidden" or (leaf_of_node and segments[-1] not in ("name", "kind"))
    ) and isinstance(parent, dict):
        parent.pop(segments[-1], None)
        return paths.join(segments)
    for end in range(len(segments), 0, -1):
        head, container = segments[:end], segments[end - 2] if end >= 2 else None
        holder = _get(data, head[:-1])
        placeholder: dict[str, Any] | None = None
        if container == "steps" or head[-1] == "fallback":
            old = _get(data, head)
            name = old.get("name") if isinstance(old, dict) else None
            valid = isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", name)
            placeholder = {"name": name if valid else f"_invalid_{id(old)}"}
        elif container == "agents" and len(head) == 2:
            placeholder = {"model": "invalid:placeholder"}
        elif container == "tests" and len(head) == 2:
            placeholder = {"name": f"_invalid_{head[-1]}", "assertions": ["True"]}
        elif container == "policies" and len(head) == 2:
            placeholder = {"id": f"_invalid_{head[-1]}", "assert": "True"}
        if placeholder is not None:
            holder[head[-1]] = placeholder
            return paths.join(head)
    return None


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def attach_locations(pipeline: Pipeline, document: SourceDocument | None = None) -> None:
    """Give every node of the model its yaml_path (and line/col when a document is known)."""
    positions = document.positions if document is not None else {}
    for node, path in iter_nodes(pipeline):
        node._yaml_path = path
        position = positions.get(path)
        if position is not None:
            node._line, node._col = position[0], position[1]


def iter_nodes(pipeline: Pipeline) -> Iterator[tuple[SpecNode, str]]:
    """Every node of the model with its path in the (current-format) document."""
    stack: list[tuple[SpecNode, str]] = [(pipeline, "")]
    while stack:
        node, path = stack.pop()
        yield node, path
        for name, field in type(node).model_fields.items():
            value = node.__dict__[name]
            key = field.alias or name
            if isinstance(value, SpecNode):
                stack.append((value, paths.child(path, key)))
            elif isinstance(value, list) and value and isinstance(value[0], SpecNode):
                base = paths.child(path, key)
                stack.extend((item, f"{base}[{i}]") for i, item in enumerate(value))
            elif isinstance(value, dict) and value:
                first = next(iter(value.values()))
                if isinstance(first, SpecNode):
                    base = paths.child(path, key)
                    stack.extend((item, paths.child(base, k)) for k, item in value.items())


# -- Pydantic errors -> diagnostics ------------------------------------------------------


def pydantic_diagnostics(
    document: SourceDocument, exc: ValidationError, root: type[BaseModel]
) -> list[Diagnostic]:
    """Every error of a failed validation, located in the document."""
    return [_diagnostic(document, error, root) for error in exc.errors(include_url=False)]


def _diagnostic(document: SourceDocument, error: Any, root: type[BaseModel]) -> Diagnostic:
    loc: tuple[Any, ...] = error["loc"]
    kind: str = error["type"]
    segments, node = _data_path(document.data, loc)
    path = paths.join(segments)
    field = next((s for s in reversed(segments) if isinstance(s, str)), "spec")

    if kind == "missing":
        missing = loc[-1]
        where = _describe(document.data, segments)
        return document.diagnostic(path, f"{where} is missing required key '{missing}'", "missing")
    if kind == "extra_forbidden":
        parent_model = _model_at(root, loc[:-1])
        allowed = _keys_of(parent_model, node_data=_get(document.data, segments[:-1]))
        message = f"unknown key '{segments[-1]}'"
        deeper = _belongs_under(document, segments, _sibling_fields(parent_model))
        message += deeper or _suggest(str(segments[-1]), allowed)
        return document.diagnostic(path, message, "unknown-key")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        kinds = list(STEP_KINDS)
        value = node.get("kind") if isinstance(node, dict) else None
        from flujo.spec.legacy.blueprint import UNSUPPORTED_KINDS, unsupported_kind

        if isinstance(value, str) and value in UNSUPPORTED_KINDS:  # kept by `flujo migrate`
            message = unsupported_kind(value)
            return document.diagnostic(paths.child(path, "kind"), message, "unsupported-kind")
        if isinstance(value, str):
            message = f"unknown step kind '{value}'" + _suggest(value, kinds)
            return document.diagnostic(paths.child(path, "kind"), message, "unknown-kind")
        if not isinstance(node, dict):
            message = f"a step must be a mapping, not {_type_name(node)}"
            return document.diagnostic(path, message, "schema")
        message = "step `kind` must be one of: " + ", ".join(kinds)
        return document.diagnostic(paths.child(path, "kind"), message, "unknown-kind")
    if (kind == "string_pattern_mismatch" and field in ("name", "id")) or _is_name_key(loc, kind):
        message = (
            f"'{error['input']}' is not a valid name: use letters, digits, '_' and '-', "
            "starting with a letter or '_' (at most 64 characters)"
        )
        return document.diagnostic(path, message, "invalid-name")
    message = _reword(error["msg"])
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"expected a mapping, not {_type_name(error['input'])}"
        entry = _model_at(root, loc)  # an entry of a mapping of models (agents: {NAME: …})
        if entry is not None and len(segments) > 1 and isinstance(segments[-1], str):
            siblings = _get(document.data, segments[:-1])
            same = dict.fromkeys(siblings, entry) if isinstance(siblings, dict) else {}
            message += _belongs_under(document, segments, same) or ""
    elif kind == "list_type":
        message = f"expected a list, not {_type_name(error['input'])}"
    elif kind == "string_type":
        message = f"expected a string, not {_type_name(error['input'])}"
    elif kind in ("too_short", "too_long"):
        bound = error.get("ctx", {}).get("min_length" if kind == "too_short" else "max_length")
        word = "at least" if kind == "too_short" else "at most"
        message = f"needs {word} {bound} item{'s' * (bound != 1)} (got {len(error['input'])})"
    elif kind.startswith("value_error"):
        message = str(error.get("ctx", {}).get("error", message))
    elif "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return document.diagnostic(path, f"{field}: {message}", "schema")


def _sibling_fields(model: type[BaseModel] | None) -> dict[str, type[BaseModel]]:
    """The fields of `model` (by their YAML key) whose values are models themselves."""
    found: dict[str, type[BaseModel]] = {}
    for name, field in (model.model_fields if model is not None else {}).items():
        inner = _unwrap(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found[field.alias or name] = inner
    return found


def _belongs_under(
    document: SourceDocument, segments: list[paths.Segment], siblings: dict[str, Any]
) -> str | None:
    """`; did you mean to indent it under `S:` (line N)?` when the misplaced key is a field
    of the model of a sibling `S` written above it (the nearest such), else None."""
    key = segments[-1]
    line = document.locate(paths.join(segments))[0]
    best: tuple[int, str] | None = None
    for sibling, model in siblings.items():
        if sibling == key or str(key) not in _keys_of(model, None):
            continue
        at = document.locate(paths.join([*segments[:-1], sibling]))[0]
        if at < line and (best is None or at > best[0]):
            best = (at, sibling)
    if best is None:
        return None
    return f"; did you mean to indent it under `{best[1]}:` (line {best[0]})?"


def _is_name_key(loc: tuple[Any, ...], kind: str) -> bool:
    # Errors on dict keys (agent or branch names) end with `[key]` in pydantic's loc.
    return kind == "string_pattern_mismatch" and len(loc) >= 2 and loc[-1] == "[key]"


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[list[paths.Segment], Any]:
    """Follow a pydantic `loc` through the raw data, skipping union tags and the like."""
    aliases = {"with_": "with", "assert_": "assert", "from_": "from"}
    segments: list[paths.Segment] = []
    node = data
    for element in loc:
        key = aliases.get(element, element) if isinstance(element, str) else element
        found = (isinstance(node, dict) and isinstance(key, str) and key in node) or (
            isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        )
        if found:
            segments.append(key)
            node = node[key]
    return segments, node


def _get(data: Any, segments: list[paths.Segment]) -> Any:
    for segment in segments:
        data = data[segment]
    return data


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class a pydantic `loc` points into, following fields and union tags."""
    annotation: Any = root
    for element in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = annotation.model_fields
            field = fields.get(element) or next(
                (f for f in fields.values() if f.alias == element), None
            )
            if field is None:
                return None
            annotation = field.annotation
            continue
        origin = get_origin(annotation)
        if origin is list:
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        elif origin in (Union, types.UnionType) and element in STEP_KINDS:
            annotation = STEP_KINDS[element]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _keys_of(model: type[BaseModel] | None, node_data: Any) -> list[str]:
    if model is None and isinstance(node_data, dict):
        kind = node_data.get("kind", "step")
        model = STEP_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    if choices:
        return "; expected one of: " + ", ".join(choices)
    return ""


def _describe(data: Any, segments: list[paths.Segment]) -> str:
    node = _get(data, segments) if segments else data
    if isinstance(node, dict) and isinstance(node.get("name"), str):
        return f"'{node['name']}'"
    return paths.join(segments) or "spec"


def _reword(message: str) -> str:
    for prefix, replacement in (("Input should be ", "must be "), ("Value error, ", "")):
        if message.startswith(prefix):
            return replacement + message[len(prefix) :]
    return message[:1].lower() + message[1:]


def _type_name(value: Any) -> str:
    if value is None:
        return "empty (null)"
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__
