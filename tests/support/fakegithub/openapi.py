"""GitHub's REST OpenAPI subset: match requests to operations and validate both directions.

The description (OpenAPI 3.0.3) is converted once to JSON Schema draft 4 (`nullable` becomes a
`null` type, `oneOf` becomes `anyOf` because GitHub's alternatives overlap) and a validator is
compiled once per operation and direction. Every check returns readable violation strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema

from tests.support.fakegithub.reference import reference_dir

Json = Any
_PLACEHOLDER = re.compile(r"\{([^}]+)\}")


def _convert(node: Json) -> Json:
    """An OpenAPI 3.0 schema (or any part of the document) as JSON Schema draft 4."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value) for key, value in node.items() if key != "nullable"}
    if "oneOf" in out and isinstance(out["oneOf"], list):
        out["anyOf"] = out.pop("oneOf")
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _error_text(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path) or "(root)"
    message = error.message if len(error.message) < 300 else error.message[:300] + "…"
    return f"{where}: {message}"


@dataclass
class Parameter:
    name: str
    location: str
    required: bool
    schema: Json


@dataclass
class Operation:
    """One (method, path template) of the description."""

    method: str
    template: str
    operation_id: str
    parameters: list[Parameter]
    request_schema: Json | None
    request_required: bool
    responses: dict[str, Json | None]
    strict: re.Pattern[str]
    greedy: re.Pattern[str] | None
    _validators: dict[str, jsonschema.protocols.Validator] = field(default_factory=dict)


class OpenAPI:
    """The loaded description; use `load_openapi()` for the shared cached instance."""

    def __init__(self, document: Json) -> None:
        self.document = _convert(document)
        self._components = {"components": self.document["components"]}
        self.operations: list[Operation] = []
        for template, item in self.document["paths"].items():
            shared = item.get("parameters", [])
            for method, raw in item.items():
                if method == "parameters":
                    continue
                self.operations.append(self._operation(method.upper(), template, shared, raw))

    def _resolve(self, node: Json) -> Json:
        while isinstance(node, dict) and "$ref" in node:
            target: Json = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def _operation(self, method: str, template: str, shared: list[Json], raw: Json) -> Operation:
        params = [self._resolve(p) for p in [*shared, *raw.get("parameters", [])]]
        parameters = [
            Parameter(p["name"], p["in"], bool(p.get("required")), p.get("schema", {}))
            for p in params
        ]
        multi = {p["name"] for p in params if p.get("x-multi-segment")}
        body = self._resolve(raw.get("requestBody")) if raw.get("requestBody") else None
        request_schema = None
        if body is not None:
            content = body.get("content", {})
            json_part: Json = content.get("application/json") or next(iter(content.values()), {})
            request_schema = json_part.get("schema")
        responses: dict[str, Json | None] = {}
        for status, response in raw.get("responses", {}).items():
            content = self._resolve(response).get("content", {})
            json_part = content.get("application/json")
            responses[status] = json_part.get("schema") if json_part else None
        return Operation(
            method=method,
            template=template,
            operation_id=raw.get("operationId", ""),
            parameters=parameters,
            request_schema=request_schema,
            request_required=bool(body and body.get("required")),
            responses=responses,
            strict=_template_regex(template, set()),
            greedy=_template_regex(template, multi) if multi else None,
        )

    # --- matching -------------------------------------------------------------------------

    def match(self, method: str, raw_path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for a concrete path (raw, still percent-encoded) and its path values."""
        candidates = [op for op in self.operations if op.method == method.upper()]
        for attempt in ("strict", "greedy"):
            for op in candidates:
                pattern = op.strict if attempt == "strict" else op.greedy
                found = pattern.fullmatch(raw_path) if pattern else None
                if found:
                    return op, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def template_exists(self, raw_path: str) -> bool:
        return any(
            op.strict.fullmatch(raw_path) or (op.greedy and op.greedy.fullmatch(raw_path))
            for op in self.operations
        )

    # --- validation -----------------------------------------------------------------------

    def _validator(self, op: Operation, key: str, schema: Json) -> jsonschema.protocols.Validator:
        found = op._validators.get(key)
        if found is None:
            root = {"allOf": [schema], **self._components}
            found = jsonschema.Draft4Validator(root)
            op._validators[key] = found
        return found

    def check_request(
        self,
        op: Operation,
        path_values: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        body: Json | None,
        *,
        has_body: bool,
    ) -> list[str]:
        """Violations of the operation's parameters and request body."""
        where = f"{op.method} {op.template}"
        problems: list[str] = []
        given: dict[str, str] = dict(query)
        known = {p.name: p for p in op.parameters}
        for param in op.parameters:
            value: str | None
            if param.location == "path":
                value = path_values.get(param.name)
            elif param.location == "query":
                value = given.get(param.name)
            else:
                continue
            if value is None:
                if param.required:
                    problems.append(f"{where}: missing required {param.location} {param.name!r}")
                continue
            problem = _check_scalar(value, param.schema)
            if problem:
                problems.append(f"{where}: {param.location} parameter {param.name!r} {problem}")
        for key in given:
            if key not in known or known[key].location != "query":
                problems.append(f"{where}: unknown query parameter {key!r}")
        if op.request_schema is None:
            if has_body and body not in (None, {}, b""):
                problems.append(f"{where}: this operation takes no request body")
        elif not has_body:
            if op.request_required:
                problems.append(f"{where}: a JSON request body is required")
        else:
            validator = self._validator(op, "request", op.request_schema)
            problems += [
                f"{where}: request body {_error_text(e)}" for e in validator.iter_errors(body)
            ]
        return problems

    def check_response(self, op: Operation, status: int, body: Json | None) -> list[str]:
        """Violations of the schema GitHub documents for this status (or `default`)."""
        where = f"{op.method} {op.template} → {status}"
        key = str(status)
        if key not in op.responses:
            key = "default"
            if key not in op.responses:
                return [f"{where}: status {status} is not documented for this operation"]
        schema = op.responses[key]
        if schema is None:
            if body is not None:
                return [f"{where}: documented without a body but one was sent"]
            return []
        validator = self._validator(op, f"response {key}", schema)
        return [f"{where}: response body {_error_text(e)}" for e in validator.iter_errors(body)]

    # --- building bodies ------------------------------------------------------------------

    def schema(self, name: str) -> Json:
        return self.document["components"]["schemas"][name]

    def fill(self, name: str, given: Mapping[str, Json]) -> dict[str, Json]:
        """`given` completed with placeholder values for every required property still missing.

        Lets the fake write the fields that matter and still answer with GitHub's full shape.
        """
        result = _fill(self, self.schema(name), dict(given))
        assert isinstance(result, dict)
        return result


def _fill(spec: OpenAPI, schema: Json, given: Json) -> Json:
    schema = spec._resolve(schema)
    if given is None:
        return None
    if "allOf" in schema:
        merged: dict[str, Json] = {"properties": {}, "required": []}
        for part in schema["allOf"]:
            part = spec._resolve(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        schema = {**merged, "type": "object"}
    if "anyOf" in schema and isinstance(given, dict):
        options = [spec._resolve(s) for s in schema["anyOf"]]
        objects = [s for s in options if s.get("type") == "object" or "properties" in s]
        if objects:
            schema = objects[0]
    if isinstance(given, dict) and "properties" in schema:
        props = schema["properties"]
        out = {}
        for key in schema.get("required", []):
            if key not in given:
                out[key] = _placeholder(spec, props.get(key, {}))
        for key, value in given.items():
            out[key] = _fill(spec, props[key], value) if key in props else value
        return out
    if isinstance(given, list) and "items" in schema:
        return [_fill(spec, schema["items"], item) for item in given]
    return given


def _placeholder(spec: OpenAPI, schema: Json) -> Json:
    schema = spec._resolve(schema)
    kind = schema.get("type")
    types = kind if isinstance(kind, list) else [kind]
    if "null" in types or ("anyOf" in schema and {"type": "null"} in schema["anyOf"]):
        return None
    if "enum" in schema:
        return schema["enum"][0]
    if "allOf" in schema or "properties" in schema or "object" in types:
        return _fill(spec, schema, {})
    if "anyOf" in schema:
        return _placeholder(spec, schema["anyOf"][0])
    if "string" in types:
        if schema.get("format") == "date-time":
            return "2026-01-01T00:00:00Z"
        if schema.get("format") == "uri":
            return "https://github.com"
        return ""
    if "integer" in types or "number" in types:
        return 0
    if "boolean" in types:
        return False
    if "array" in types:
        return []
    return None


def _check_scalar(value: str, schema: Json) -> str | None:
    kind = schema.get("type")
    if kind == "integer":
        try:
            number = int(value)
        except ValueError:
            return f"must be an integer, got {value!r}"
        if "minimum" in schema and number < schema["minimum"]:
            return f"must be ≥ {schema['minimum']}, got {number}"
        if "maximum" in schema and number > schema["maximum"]:
            return f"must be ≤ {schema['maximum']}, got {number}"
    if kind == "boolean" and value not in ("true", "false"):
        return f"must be true or false, got {value!r}"
    if "enum" in schema and value not in [str(v) for v in schema["enum"] if v is not None]:
        return f"must be one of {schema['enum']}, got {value!r}"
    return None


def _template_regex(template: str, multi: set[str]) -> re.Pattern[str]:
    pattern = ""
    last = 0
    for found in _PLACEHOLDER.finditer(template):
        pattern += re.escape(template[last : found.start()])
        name = found.group(1)
        group = re.sub(r"\W", "_", name)
        pattern += f"(?P<{group}>.*)" if name in multi else f"(?P<{group}>[^/]+)"
        last = found.end()
    pattern += re.escape(template[last:])
    return re.compile(pattern)


@cache
def load_openapi(path: Path | None = None) -> OpenAPI:
    """The subset description, loaded and converted once per process."""
    source = path or reference_dir() / "api.github.com.subset.json"
    return OpenAPI(json.loads(source.read_text(encoding="utf-8")))
