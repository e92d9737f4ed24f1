"""A deterministic fake of the OpenAI chat completions API, served by aiohttp on loopback.

Tests and the offline demo point the real `openai` client at it::

    async with FakeOpenAI(FakeBehaviour(latency_s=0.1)) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test")

Replies depend only on the request (a SHA-256 of model and messages), so the same request
always gets the same answer:

- `response_format` of type `json_schema`: a minimal JSON instance that validates against
  the schema; `json_object`: `{"answer": "..."}`;
- no response format, but a message says "JSON Schema" followed by a JSON object (how
  callers ask servers without structured output): an instance of that schema, as an
  instruction-following model would give;
- the last user message or a system message asks for SQL (the word `SQL` or a ```sql
  hint): a fenced ```sql block with one `SELECT`;
- otherwise a short sentence echoing the first words of the last user message.

Usage counts about 4 characters per token (at least 1 per message), see `count_tokens`.
`max_tokens` / `max_completion_tokens` cut the reply, with `finish_reason: "length"`.

Scripting, from `FakeBehaviour` (mutable, also while the server runs) or per request with
markers written anywhere in the messages (later markers win):

- `[[fake:latency=0.5]]`: delay in seconds (applies to every reply, errors included);
- `[[fake:fail=429]]`: always fail with that status; `[[fake:fail=503x2]]`: fail the first
  2 times this exact request arrives; `[[fake:retry_after=0.01]]`: Retry-After of 429/503;
- `[[fake:malformed=invalid_json]]` / `[[fake:malformed=schema_violation]]`: broken JSON
  reply (only when JSON is asked for);
- `[[fake:content=...]]`: reply with exactly this text (it may not contain `]]`).

The reply is the first that applies of: the content marker, the malformed marker,
`FakeBehaviour.responder`, `content_by_model`, `malformed`, the generated reply.

A model without structured output (`FakeBehaviour.structured_output` False) rejects a
`json_schema` response format with HTTP 400, as OpenAI does for older models, so callers
notice instead of silently receiving free text. Streaming is not supported (HTTP 400).
Errors have OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import jsonschema

if TYPE_CHECKING:  # aiohttp is imported only when the server starts (fast in-process use)
    from aiohttp import web

from flujo.spec.errors import EXIT_USAGE, FlujoError

Malformed = Literal["invalid_json", "schema_violation"]

DEFAULT_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3-mini",
    "gpt-3.5-turbo",
)
CREATED = 1_700_000_000  # fixed, so that replies are byte-identical between runs
DEFAULT_RETRY_AFTER_S = 1.0

_MARKER = re.compile(r"\[\[fake:([a-z_]+)=(.*?)\]\]", re.DOTALL)
_MARKER_KEYS = frozenset({"latency", "fail", "retry_after", "malformed", "content"})
_FAIL_MARKER = re.compile(r"^([1-5]\d\d)(?:x(\d+))?$")
_SQL_HINT = re.compile(r"\bsql\b|```sql", re.IGNORECASE)
_SCHEMA_HINT = re.compile(r"\bJSON[ -]Schema\b", re.IGNORECASE)


# -- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A scripted HTTP error.

    It fires while fewer than `times` earlier chat requests (to `model`, when set) have
    arrived; `times=None` fires on every matching request. The first firing rule wins.
    """

    status: int = 500
    times: int | None = None
    model: str | None = None
    retry_after_s: float | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"a scripted failure needs an HTTP error status, not {self.status}")


@dataclass
class FakeBehaviour:
    """How the fake server behaves; `*_by_model` entries override the default for a model.

    `responder`, if set, may return the reply text for a request (None: the usual reply).
    """

    latency_s: float = 0.0
    latency_by_model: dict[str, float] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    malformed: Malformed | None = None
    malformed_by_model: dict[str, Malformed] = field(default_factory=dict)
    content_by_model: dict[str, str] = field(default_factory=dict)
    structured_output: bool = True
    structured_output_by_model: dict[str, bool] = field(default_factory=dict)
    responder: Callable[[ChatRequest], str | None] | None = None
    models: tuple[str, ...] = DEFAULT_MODELS

    def latency_for(self, model: str) -> float:
        return self.latency_by_model.get(model, self.latency_s)

    def malformed_for(self, model: str) -> Malformed | None:
        return self.malformed_by_model.get(model, self.malformed)

    def structured_output_for(self, model: str) -> bool:
        return self.structured_output_by_model.get(model, self.structured_output)


@dataclass(frozen=True)
class ChatRequest:
    """A parsed `POST /v1/chat/completions` body."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    digest: str
    markers: dict[str, str]
    prompt: str
    system: str
    schema: dict[str, Any] | bool | None
    json_requested: bool
    max_tokens: int | None
    prompt_schema: dict[str, Any] | None = None

    @property
    def reply_schema(self) -> dict[str, Any] | bool | None:
        """The schema the reply should follow: response_format's, else the prompt's."""
        return self.schema if self.schema is not None else self.prompt_schema


@dataclass
class ReceivedRequest:
    """One request the server received; `status` is set once it is answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    model: str | None = None
    status: int | None = None


class ApiError(FlujoError):
    """An error answered in OpenAI's JSON shape.

    Exit code 2, like any model server that refuses a request (a usage problem).
    """

    exit_code = EXIT_USAGE

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = error_type or ("invalid_request_error" if status < 500 else "server_error")
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s

    def response(self) -> web.Response:
        from aiohttp import web

        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        headers = {}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
            headers["retry-after-ms"] = str(round(self.retry_after_s * 1000))
        return web.json_response({"error": error}, status=self.status, headers=headers)


# -- request parsing -------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """Fake token count: one per 4 characters, rounded up, at least 1."""
    return max(1, math.ceil(len(text) / 4))


def request_digest(model: str, messages: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of model and messages."""
    canonical = json.dumps(
        {"model": model, "messages": messages},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def message_text(message: Mapping[str, Any]) -> str:
    """Text of a message whose content is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text).strip()


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat completions body; raises ApiError (400) when it is unusable."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty array.", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise ApiError(400, "Each message must be an object with a 'role'.", param="messages")
    texts = [(m["role"], message_text(m)) for m in messages]
    schema, json_requested = _response_format(body.get("response_format"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return ChatRequest(
        body=body,
        model=model,
        messages=messages,
        digest=request_digest(model, messages),
        markers=_markers(text for _, text in texts),
        prompt=next((strip_markers(t) for r, t in reversed(texts) if r == "user"), ""),
        system="\n".join(strip_markers(t) for r, t in texts if r in ("system", "developer")),
        schema=schema,
        json_requested=json_requested,
        max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        prompt_schema=_schema_in(t for _, t in texts) if schema is None else None,
    )


def _response_format(value: Any) -> tuple[dict[str, Any] | bool | None, bool]:
    if not isinstance(value, dict):
        return None, False
    kind = value.get("type")
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema", {}) if isinstance(spec, dict) else {}
        return (schema if isinstance(schema, dict | bool) else {}), True
    return None, kind == "json_object"


def _schema_in(texts: Any) -> dict[str, Any] | None:
    """The JSON object that follows the words "JSON Schema" in a message, if any."""
    decoder = json.JSONDecoder()
    for text in texts:
        for hint in _SCHEMA_HINT.finditer(text):
            start = text.find("{", hint.end())
            if start < 0:
                break
            try:
                value = decoder.raw_decode(text, start)[0]
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _markers(texts: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for text in texts:
        for key, value in _MARKER.findall(text):
            if key not in _MARKER_KEYS:
                known = ", ".join(sorted(_MARKER_KEYS))
                raise ApiError(400, f"Unknown fake marker '{key}' (known: {known}).")
            found[key] = value.strip() if key != "content" else value
    return found


def _marker_float(markers: Mapping[str, str], key: str) -> float | None:
    if key not in markers:
        return None
    try:
        value = float(markers[key])
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"Fake marker '{key}' needs a number of seconds >= 0.")
    return value


def _marker_malformed(markers: Mapping[str, str]) -> Malformed | None:
    value = markers.get("malformed")
    if value is None:
        return None
    if value not in get_args(Malformed):
        raise ApiError(400, "Fake marker 'malformed' is invalid_json or schema_violation.")
    return cast(Malformed, value)


# -- replies ---------------------------------------------------------------------------

_OPENERS = (
    "Here is a short answer about",
    "Briefly, on",
    "In short, regarding",
    "A quick take on",
    "To answer your question about",
)
_CLOSERS = (
    "the main points are covered and nothing else stands out.",
    "the usual approach works well here.",
    "it depends on the details, but this is the common answer.",
    "start with the simplest option and check the result.",
)


def pick(seed: str, salt: str, n: int) -> int:
    """A deterministic index in range(n) from a seed and a salt."""
    digest = hashlib.sha256(f"{seed}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(n, 1)


def prompt_words(text: str, n: int = 8) -> str:
    words = re.findall(r"[\w'-]+", text)
    return " ".join(words[:n])


def text_reply(chat: ChatRequest) -> str:
    """A short plausible sentence echoing the start of the prompt."""
    opener = _OPENERS[pick(chat.digest, "opener", len(_OPENERS))]
    closer = _CLOSERS[pick(chat.digest, "closer", len(_CLOSERS))]
    echo = prompt_words(chat.prompt) or "your request"
    return f'{opener} "{echo}": {closer}'


def wants_sql(chat: ChatRequest) -> bool:
    return bool(_SQL_HINT.search(chat.prompt) or _SQL_HINT.search(chat.system))


def sql_reply(chat: ChatRequest) -> str:
    """A fenced ```sql block with one SELECT over a table named in the prompt (or, when
    it names none, in the system message: where callers put a schema)."""
    table, columns = _sql_target(chat.prompt)
    if table == "items" and chat.system:
        table, columns = _sql_target(chat.system)
    limit = 10 * (1 + pick(chat.digest, "limit", 10))
    return f"```sql\nSELECT {', '.join(columns)}\nFROM {table}\nLIMIT {limit};\n```"


def _sql_target(text: str) -> tuple[str, list[str]]:
    ddl = re.search(r"\b([A-Za-z_]\w*)\s*\(\s*[A-Za-z_]\w*\s+[A-Za-z][^)]*\)", text)
    if ddl:
        columns = re.findall(r"(?:\(|,)\s*([A-Za-z_]\w*)", text[ddl.start() : ddl.end()])
        return ddl.group(1), columns[:3] or ["*"]
    named = re.search(r"\b(?:from|table|into)\s+([A-Za-z_]\w*)", text, re.IGNORECASE)
    if named and named.group(1).lower() not in {"the", "a", "an", "my", "our", "sql"}:
        return named.group(1), ["*"]
    return "items", ["*"]


def schema_reply(chat: ChatRequest, schema: dict[str, Any] | bool) -> str:
    """Minimal JSON instance of the schema, compact, deterministic for the request."""
    words = prompt_words(chat.prompt, 6) or "example"
    instance = SchemaFaker(schema, chat.digest, words).value(schema)
    return json.dumps(instance, ensure_ascii=False)


def malformed_reply(valid: str, schema: dict[str, Any] | bool | None, mode: Malformed) -> str:
    """Turn a valid JSON reply into text that is not JSON, or JSON that breaks `schema`."""
    if mode == "invalid_json" or schema is None:
        return f"Here is the JSON you asked for:\n{valid[: len(valid) // 2 + 1]}"
    return json.dumps(schema_violation(json.loads(valid), schema), ensure_ascii=False)


def schema_violation(instance: Any, schema: dict[str, Any] | bool) -> Any:
    """A JSON value close to `instance` that does not validate against `schema`."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    candidates: list[Any] = []
    if isinstance(instance, dict) and isinstance(schema, dict):
        for key in schema.get("required") or []:
            candidates.append({k: v for k, v in instance.items() if k != key})
    candidates += [None, "not what the schema asked for", 12345, [], {}, True]
    for candidate in candidates:
        if not validator.is_valid(candidate):
            return candidate
    return instance  # the schema accepts anything


# -- schema instances ------------------------------------------------------------------

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "regex": ".*",
}
_PATTERN_TRIES = ("example", "a", "A", "abc", "ABC", "a1", "A1", "0", "1", "123", "x_1")
_MAX_DEPTH = 12


class SchemaFaker:
    """Builds a minimal instance of a JSON Schema, deterministic for a seed.

    Objects get their required properties (and enough others for `minProperties`),
    arrays `max(minItems, 1)` items (fewer if `maxItems` says so), enums a pick by seed,
    integers and numbers a value within their bounds, booleans `true`. `anyOf`/`oneOf`
    take their first non-null branch, `allOf` is merged, local `$ref`s are followed.
    Best effort for `pattern` (a few candidates are tried).
    """

    def __init__(self, root: Any, seed: str, words: str = "example") -> None:
        self.root = root
        self.seed = seed
        self.words = words

    def value(self, schema: Any, path: str = "$", variant: int = 0, depth: int = 0) -> Any:
        schema = self._resolve(schema)
        if schema is False or not isinstance(schema, dict):
            return None if schema is False else self.words
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = schema["enum"]
            return options[(pick(self.seed, path, len(options)) + variant) % len(options)]
        branch = _first_branch(schema)
        if branch is not None:
            return self.value(branch, path, variant, depth + 1)
        kind = _type_of(schema)
        if depth > _MAX_DEPTH:
            return _SHALLOW.get(kind)
        maker = _MAKERS.get(kind)
        return maker(self, schema, path, variant, depth) if maker else None

    def _resolve(self, schema: Any) -> Any:
        for _ in range(32):
            if not isinstance(schema, dict):
                return schema
            if "allOf" in schema:
                schema = _merge_all_of(schema, self._resolve)
            if "$ref" not in schema:
                return schema
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = _merge(self._lookup(schema["$ref"]), rest)
        return {}

    def _lookup(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}
        node = self.root
        for token in filter(None, ref[1:].split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return {}
        return node

    def _object(self, schema: dict[str, Any], path: str, variant: int, depth: int) -> Any:
        props: dict[str, Any] = schema.get("properties") or {}
        if not isinstance(props, dict):
            props = {}
        required = [k for k in schema.get("required") or [] if isinstance(k, str)]
        missing = max(0, int(schema.get("minProperties", 0)) - len(required))
        keys = required + [k for k in props if k not in required][:missing]
        extra = schema.get("additionalProperties", {})
        out: dict[str, Any] = {}
        for key in keys:
            sub = props.get(key, extra if isinstance(extra, dict) else {})
            out[key] = self.value(sub, f"{path}.{key}", variant, depth + 1)
        return out

    def _array(self, schema: dict[str, Any], path: str, variant: int, depth: int) -> Any:
        items = schema.get("items", {})
        prefix = schema.get("prefixItems") or (items if isinstance(items, list) else [])
        rest = schema.get("additionalItems", {}) if isinstance(items, list) else items
        count = max(int(schema.get("minItems", 0)), len(prefix), 1)
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        if rest is False:
            count = min(count, len(prefix))
        out = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else rest
            if i == 0 and "contains" in schema:
                sub = schema["contains"]
            out.append(self.value(sub, f"{path}[]", variant + i, depth + 1))
        return out

    def _string(self, schema: dict[str, Any], path: str, variant: int, depth: int) -> str:
        base = self._string_base(schema, path, variant)
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        pattern = schema.get("pattern")
        if not isinstance(pattern, str):
            return _fit(base, low, high, self.words)
        for candidate in (base, *_PATTERN_TRIES):
            fitted = _fit(candidate, low, high, candidate)
            if _matches(pattern, fitted):
                return fitted
        return _fit(base, low, high, self.words)

    def _string_base(self, schema: dict[str, Any], path: str, variant: int) -> str:
        fmt = schema.get("format")
        if fmt == "uuid":
            digest = hashlib.sha256(f"{self.seed}|{path}|{variant}".encode()).digest()
            return str(uuid.UUID(bytes=digest[:16], version=4))
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        return self.words if variant == 0 else f"{self.words} {variant + 1}"

    def _integer(self, schema: dict[str, Any], path: str, variant: int, depth: int) -> int:
        low, high = _bounds(schema, integer=True)
        start = int(low) if low is not None else (int(high) - 9 if high is not None else 1)
        end = int(high) if high is not None else start + 9
        if end < start:
            return start
        value = start + (pick(self.seed, path, end - start + 1) + variant) % (end - start + 1)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = math.ceil(value / step) * step
            if value > end:
                value -= step
        return value

    def _number(self, schema: dict[str, Any], path: str, variant: int, depth: int) -> float:
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            return self._multiple(schema, float(step), path, variant)
        low, high = _bounds(schema, integer=False)
        tick = pick(self.seed, path, 9) + variant
        if low is not None and high is not None:
            return round(low + (high - low) * ((tick % 9) + 1) / 10, 6)
        if low is not None:
            return float(low + tick % 10 + 1)
        if high is not None:
            return float(high - tick % 10 - 1)
        return (tick % 100 + 1) / 10

    def _multiple(self, schema: dict[str, Any], step: float, path: str, variant: int) -> float:
        low, high = _bounds(schema, integer=False)
        first = math.ceil(low / step) if low is not None else 1
        for k in range(first + variant, first + variant + 50):
            value = k * step
            in_range = (low is None or value >= low) and (high is None or value <= high)
            if in_range and (value / step).is_integer() and _strict_ok(schema, value):
                return value
        return first * step

    def _boolean(self, schema: dict[str, Any], path: str, variant: int, depth: int) -> bool:
        return variant % 2 == 0

    def _null(self, schema: dict[str, Any], path: str, variant: int, depth: int) -> None:
        return None


_Maker = Callable[[SchemaFaker, dict[str, Any], str, int, int], Any]
_MAKERS: dict[str, _Maker] = {
    "object": SchemaFaker._object,
    "array": SchemaFaker._array,
    "string": SchemaFaker._string,
    "integer": SchemaFaker._integer,
    "number": SchemaFaker._number,
    "boolean": SchemaFaker._boolean,
    "null": SchemaFaker._null,
}
_SHALLOW: dict[str, Any] = {
    "object": {},
    "array": [],
    "string": "",
    "integer": 0,
    "number": 0,
    "boolean": True,
}


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return str(kinds[0]) if kinds else "null"
    if isinstance(kind, str):
        return kind
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
        return "number"
    return "string"


def _first_branch(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            chosen = next((b for b in branches if not _is_null(b)), branches[0])
            rest = {k: v for k, v in schema.items() if k != key}
            return _merge(rest, chosen if isinstance(chosen, dict) else {})
    return None


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _merge(base: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge of two schemas; properties and required lists are combined."""
    merged = dict(base) if isinstance(base, dict) else {}
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged


def _merge_all_of(schema: Mapping[str, Any], resolve: Callable[[Any], Any]) -> dict[str, Any]:
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf") or []:
        resolved = resolve(part)
        if isinstance(resolved, dict):
            merged = _merge(merged, resolved)
    return merged


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> tuple[float | None, float | None]:
    """Inclusive (low, high); exclusive bounds (draft 4 booleans too) are nudged inwards."""
    nudge = 1.0 if integer else 1e-6
    low, high = _num(schema.get("minimum")), _num(schema.get("maximum"))
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    strict_low = low if ex_low is True else _num(ex_low)
    strict_high = high if ex_high is True else _num(ex_high)
    if strict_low is not None:
        low = strict_low + nudge if low is None else max(low, strict_low + nudge)
    if strict_high is not None:
        high = strict_high - nudge if high is None else min(high, strict_high - nudge)
    if integer:
        low = float(math.ceil(low)) if low is not None else None
        high = float(math.floor(high)) if high is not None else None
    return low, high


def _num(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _strict_ok(schema: Mapping[str, Any], value: float) -> bool:
    ex_low, ex_high = _num(schema.get("exclusiveMinimum")), _num(schema.get("exclusiveMaximum"))
    return (ex_low is None or value > ex_low) and (ex_high is None or value < ex_high)


def _fit(text: str, low: Any, high: Any, filler: str) -> str:
    """Pad `text` with `filler` up to `low` characters, cut it to `high`."""
    low = low if isinstance(low, int) else 0
    while len(text) < low:
        text = f"{text} {filler or 'x'}"
    return text[:high] if isinstance(high, int) else text


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


# -- the server ------------------------------------------------------------------------


class FakeOpenAI:
    """The fake server. Use as `async with FakeOpenAI(behaviour) as server: server.base_url`.

    `requests` lists every request received (`count()` filters them); `behaviour` may be
    replaced or changed between calls.
    """

    def __init__(
        self, behaviour: FakeBehaviour | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.behaviour = behaviour or FakeBehaviour()
        self.host = host
        self.port = port
        self.requests: list[ReceivedRequest] = []
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._chat_seen = 0
        self._seen_by_model: Counter[str] = Counter()
        self._seen_by_digest: Counter[str] = Counter()

    # -- lifecycle

    def make_app(self) -> web.Application:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self) -> str:
        """Bind and serve; returns `base_url` (`http://HOST:PORT/v1`)."""
        if self._runner is not None:
            return self.base_url
        from aiohttp import web

        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        self._url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/v1"
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner, self._url = self._runner, None, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._url is None:
            raise RuntimeError("the fake OpenAI server is not running (use `async with`)")
        return self._url

    # -- assertions

    def count(self, *, path: str | None = "/v1/chat/completions", model: str | None = None) -> int:
        """Requests received (chat completions by default; `path=None` for all)."""
        return sum(
            1
            for r in self.requests
            if (path is None or r.path == path) and (model is None or r.model == model)
        )

    def reset(self) -> None:
        """Forget received requests and the counts that scripted failures depend on."""
        self.requests.clear()
        self._chat_seen = 0
        self._seen_by_model.clear()
        self._seen_by_digest.clear()

    # -- handlers

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request)
        try:
            record.body = body = await _json_body(request)
            chat = parse_chat_request(body)
            record.model = chat.model
            seen = self._count_arrival(chat)
            await asyncio.sleep(self._latency(chat))
            self._fail_if_scripted(chat, seen)
            self._check_supported(chat)
            payload = self._completion(chat)
        except ApiError as err:
            record.status = err.status
            return err.response()
        record.status = 200
        from aiohttp import web

        return web.json_response(payload)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        self._record(request).status = 200
        data = [
            {"id": m, "object": "model", "created": CREATED, "owned_by": "flujo-fake"}
            for m in self.behaviour.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request)
        record.status = 404
        message = f"Invalid URL ({request.method} {request.path})"
        return ApiError(404, message, code="unknown_url").response()

    # -- steps

    def _record(self, request: web.Request) -> ReceivedRequest:
        record = ReceivedRequest(request.method, request.path, dict(request.headers))
        self.requests.append(record)
        return record

    def _count_arrival(self, chat: ChatRequest) -> tuple[int, int, int]:
        """How many earlier chat requests arrived: in all, to this model, of this digest."""
        seen = (
            self._chat_seen,
            self._seen_by_model[chat.model],
            self._seen_by_digest[chat.digest],
        )
        self._chat_seen += 1
        self._seen_by_model[chat.model] += 1
        self._seen_by_digest[chat.digest] += 1
        return seen

    def _latency(self, chat: ChatRequest) -> float:
        marker = _marker_float(chat.markers, "latency")
        return marker if marker is not None else self.behaviour.latency_for(chat.model)

    def _fail_if_scripted(self, chat: ChatRequest, seen: tuple[int, int, int]) -> None:
        failure = _marker_failure(chat.markers, seen[2])
        if failure is None:
            failure = next(
                (
                    rule
                    for rule in self.behaviour.failures
                    if (rule.model is None or rule.model == chat.model)
                    and (rule.times is None or (seen[1] if rule.model else seen[0]) < rule.times)
                ),
                None,
            )
        if failure is not None:
            retry_after = _marker_float(chat.markers, "retry_after")
            raise _failure_error(failure, chat.model, retry_after)

    def _check_supported(self, chat: ChatRequest) -> None:
        if chat.body.get("stream"):
            raise ApiError(400, "The fake OpenAI server does not stream.", param="stream")
        if chat.schema is not None and not self.behaviour.structured_output_for(chat.model):
            raise ApiError(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not "
                "supported with this model.",
                param="response_format",
            )

    def _completion(self, chat: ChatRequest) -> dict[str, Any]:
        content = self._content(chat)
        finish_reason = "stop"
        if chat.max_tokens is not None and len(content) > chat.max_tokens * 4:
            content, finish_reason = content[: chat.max_tokens * 4], "length"
        prompt_tokens = sum(count_tokens(message_text(m)) for m in chat.messages)
        completion_tokens = count_tokens(content)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": [],
        }
        return {
            "id": f"chatcmpl-fake{chat.digest[:24]}",
            "object": "chat.completion",
            "created": CREATED,
            "model": chat.model,
            "system_fingerprint": "fp_flujo_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _content(self, chat: ChatRequest) -> str:
        """Reply text: markers first, then the behaviour, then a generated reply."""
        if "content" in chat.markers:
            return chat.markers["content"]
        malformed = _marker_malformed(chat.markers)
        if malformed is None:
            scripted = self.behaviour.responder(chat) if self.behaviour.responder else None
            if scripted is None:
                scripted = self.behaviour.content_by_model.get(chat.model)
            if scripted is not None:
                return scripted
            malformed = self.behaviour.malformed_for(chat.model)
        schema = chat.reply_schema
        if schema is not None:
            reply = schema_reply(chat, schema)
        elif chat.json_requested:
            reply = json.dumps({"answer": text_reply(chat)}, ensure_ascii=False)
        else:
            return sql_reply(chat) if wants_sql(chat) else text_reply(chat)
        return malformed_reply(reply, schema, malformed) if malformed else reply


def _marker_failure(markers: Mapping[str, str], seen: int) -> Failure | None:
    value = markers.get("fail")
    if value is None:
        return None
    match = _FAIL_MARKER.match(value)
    if match is None or int(match.group(1)) < 400:
        raise ApiError(400, "Fake marker 'fail' is STATUS or STATUSxTIMES, e.g. 429x2.")
    times = int(match.group(2)) if match.group(2) else None
    return Failure(int(match.group(1))) if times is None or seen < times else None


_FAILURE_TEXT = {
    429: ("Rate limit reached for {model} (fake server). Please try again later.", "requests"),
    500: ("The server had an error while processing your request. Sorry about that!", None),
    503: ("The engine is currently overloaded, please try again later.", None),
}


def _failure_error(failure: Failure, model: str, retry_after: float | None) -> ApiError:
    template, kind = _FAILURE_TEXT.get(failure.status, (f"Fake HTTP {failure.status}.", None))
    if failure.status in (429, 503):
        retry_after = retry_after if retry_after is not None else failure.retry_after_s
        retry_after = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_S
    else:
        retry_after = None
    return ApiError(
        failure.status,
        failure.message or template.format(model=model),
        error_type=kind,
        code="rate_limit_exceeded" if failure.status == 429 else None,
        retry_after_s=retry_after,
    )


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"We could not parse the JSON body of your request: {exc}") from None


def run_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    behaviour: FakeBehaviour | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted; `on_ready` gets the base URL (default: print to stderr)."""

    async def serve() -> None:
        async with FakeOpenAI(behaviour, host=host, port=port) as server:
            if on_ready is not None:
                on_ready(server.base_url)
            else:
                print(f"fake OpenAI server on {server.base_url}", file=sys.stderr, flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())
