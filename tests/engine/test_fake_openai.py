"""The fake OpenAI server, driven through the real `openai.AsyncOpenAI` client."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI
from pydantic import BaseModel

from flujo.engine.fake_openai import (
    ChatRequest,
    Failure,
    FakeBehaviour,
    FakeOpenAI,
    SchemaFaker,
    count_tokens,
)

MODEL = "gpt-4o-mini"

# One server and one client for the module (creating openai's default client costs
# ~0.1 s); each test gets them back with a fresh behaviour and fresh counts.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[tuple[FakeOpenAI, AsyncOpenAI]]:
    async with (
        FakeOpenAI() as fake,
        AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as c,
    ):
        yield fake, c


@pytest.fixture
def server(shared: tuple[FakeOpenAI, AsyncOpenAI]) -> FakeOpenAI:
    fake = shared[0]
    fake.behaviour = FakeBehaviour()
    fake.reset()
    return fake


@pytest.fixture
def client(shared: tuple[FakeOpenAI, AsyncOpenAI], server: FakeOpenAI) -> AsyncOpenAI:
    return shared[1]


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def ask(client: AsyncOpenAI, text: str, model: str = MODEL, **kwargs: Any) -> Any:
    return await client.chat.completions.create(model=model, messages=user(text), **kwargs)


def json_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


# -- deterministic replies -------------------------------------------------------------


async def test_same_request_gets_the_same_reply(client: AsyncOpenAI) -> None:
    first = await ask(client, "How do I reset my password on the portal?")
    second = await ask(client, "How do I reset my password on the portal?")
    other = await ask(client, "How do I reset my password on the portal?", model="gpt-4o")

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id == second.id
    assert first.model_dump() == second.model_dump()
    assert other.model == "gpt-4o"
    assert other.id != first.id


async def test_replies_do_not_depend_on_server_state(client: AsyncOpenAI) -> None:
    reply = await ask(client, "Summarise the quarterly report for the board")
    async with FakeOpenAI() as fresh, AsyncOpenAI(base_url=fresh.base_url, api_key="x") as c2:
        again = await ask(c2, "Summarise the quarterly report for the board")
    assert again.choices[0].message.content == reply.choices[0].message.content


async def test_text_reply_echoes_the_prompt(client: AsyncOpenAI) -> None:
    reply = await ask(client, "Explain the refund policy for annual plans, please.")
    content = reply.choices[0].message.content
    assert "Explain the refund policy for annual plans" in content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.role == "assistant"


@pytest.mark.parametrize(
    "messages",
    [
        user("Write SQL to count the rows of table customers"),
        user("Fill in: ```sql\n```\nfor the orders"),
        [
            {"role": "system", "content": "Return only the SQL, in a ```sql fenced block."},
            {"role": "user", "content": "Schema: orders(id int, total numeric)\nQuestion: ?"},
        ],
    ],
)
async def test_sql_requests_get_a_fenced_select(client: AsyncOpenAI, messages: Any) -> None:
    reply = await client.chat.completions.create(model=MODEL, messages=messages)
    content = reply.choices[0].message.content or ""
    assert re.fullmatch(r"```sql\nSELECT [^\n]+\nFROM \w+\nLIMIT \d+;\n```", content)


async def test_sql_names_the_table_and_columns_of_a_schema(client: AsyncOpenAI) -> None:
    reply = await ask(client, "SQL please. Schema: orders(id int, total numeric, day date)")
    assert "SELECT id, total, day\nFROM orders" in reply.choices[0].message.content


# -- structured output ----------------------------------------------------------------

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "required": ["category"]},
    {
        "type": "object",
        "required": ["category", "confidence", "priority"],
        "additionalProperties": False,
        "properties": {
            "category": {"enum": ["billing", "technical", "other"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        },
    },
    {
        "type": "object",
        "required": ["answer", "citations"],
        "properties": {
            "answer": {"type": "string", "minLength": 1},
            "citations": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
    },
    {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
    {
        "type": "array",
        "minItems": 3,
        "uniqueItems": True,
        "items": {"type": "string", "enum": ["a", "b", "c"]},
    },
    {
        "type": "object",
        "required": ["id", "when", "email", "code", "short", "long", "score", "step"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "when": {"type": "string", "format": "date-time"},
            "email": {"type": "string", "format": "email"},
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "short": {"type": "string", "maxLength": 3},
            "long": {"type": "string", "minLength": 80},
            "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "step": {"type": "number", "multipleOf": 0.25, "minimum": 1.1},
        },
    },
    {
        "$defs": {
            "Item": {
                "type": "object",
                "required": ["name", "qty"],
                "properties": {
                    "name": {"type": "string"},
                    "qty": {"type": "integer", "minimum": 10, "multipleOf": 7},
                },
            }
        },
        "type": "object",
        "required": ["items", "note", "kind", "both"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "kind": {"const": "order"},
            "both": {
                "allOf": [
                    {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
                    {"required": ["b"], "properties": {"b": {"type": ["string", "null"]}}},
                ]
            },
        },
    },
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "items": False},
]


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_structured_output_validates_against_the_schema(
    client: AsyncOpenAI, schema: dict[str, Any]
) -> None:
    reply = await ask(client, "Classify: I was charged twice", response_format=json_format(schema))
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


# Async only because the module-wide asyncio mark applies to every test.
@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("seed", ["a", "b", "c", "d"])
async def test_schema_instances_validate_for_any_seed(schema: dict[str, Any], seed: str) -> None:
    jsonschema.validate(SchemaFaker(schema, seed).value(schema), schema)


async def test_enum_choice_is_deterministic(client: AsyncOpenAI) -> None:
    schema = SCHEMAS[1]
    picks = set()
    for ticket in ("I was charged twice", "The app crashes", "Hello", "Refund?", "Login fails"):
        fmt = json_format(schema)
        first = await ask(client, ticket, response_format=fmt)
        second = await ask(client, ticket, response_format=fmt)
        assert first.choices[0].message.content == second.choices[0].message.content
        picks.add(json.loads(first.choices[0].message.content)["category"])
    assert picks <= {"billing", "technical", "other"}
    assert len(picks) > 1  # the pick depends on the request


async def test_parse_with_a_pydantic_model(client: AsyncOpenAI) -> None:
    class Line(BaseModel):
        product: str
        quantity: int

    class Order(BaseModel):
        customer: str
        lines: list[Line]
        gift: bool
        note: str | None

    reply = await client.chat.completions.parse(
        model=MODEL, messages=user("Extract the order"), response_format=Order
    )
    order = reply.choices[0].message.parsed
    assert isinstance(order, Order)
    assert order.lines and isinstance(order.lines[0], Line)


async def test_json_mode_replies_with_an_object(client: AsyncOpenAI) -> None:
    reply = await ask(client, "Say hi as JSON", response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content)["answer"], str)


# -- usage -----------------------------------------------------------------------------


async def test_usage_counts_four_characters_per_token(client: AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "x" * 8},  # 2 tokens
            {"role": "user", "content": "y" * 10},  # 3 tokens (rounded up)
            {"role": "assistant", "content": ""},  # at least 1
        ],
    )
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens == 6
    assert usage.completion_tokens == -(-len(reply.choices[0].message.content or "") // 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    again = await ask(client, "y" * 10)
    assert again.usage is not None and again.usage.prompt_tokens == 3
    assert count_tokens("") == 1 and count_tokens("abcde") == 2


async def test_max_tokens_cuts_the_reply(client: AsyncOpenAI) -> None:
    reply = await ask(client, "Tell me a long story about dragons", max_tokens=3)
    assert reply.choices[0].finish_reason == "length"
    assert len(reply.choices[0].message.content) == 12
    assert reply.usage is not None and reply.usage.completion_tokens == 3


# -- scripted failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
async def test_first_calls_fail_with_the_scripted_status(
    server: FakeOpenAI, client: AsyncOpenAI, status: int, error: type[Exception], error_type: str
) -> None:
    server.behaviour = FakeBehaviour(failures=[Failure(status, times=2, retry_after_s=3)])
    for _ in range(2):
        with pytest.raises(error) as caught:
            await ask(client, "hello")
        assert isinstance(caught.value, openai.APIStatusError)
        assert caught.value.status_code == status
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == error_type and body["message"]
        retry_after = caught.value.response.headers.get("retry-after")
        assert retry_after == ("3" if status in (429, 503) else None)
    reply = await ask(client, "hello")
    assert reply.choices[0].message.content
    assert [r.status for r in server.requests] == [status, status, 200]


async def test_rate_limit_error_has_openai_error_shape(server: FakeOpenAI) -> None:
    server.behaviour.failures = [Failure(429)]
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.base_url}/chat/completions", json={"model": MODEL, "messages": user("hi")}
        )
    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "message": f"Rate limit reached for {MODEL} (fake server). Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert response.headers["retry-after"] == "1"
    assert response.headers["retry-after-ms"] == "1000"


async def test_a_model_can_always_fail(server: FakeOpenAI, client: AsyncOpenAI) -> None:
    server.behaviour.failures = [Failure(500, model="gpt-4o", message="gpt-4o is down")]
    for _ in range(3):
        with pytest.raises(openai.InternalServerError, match="gpt-4o is down"):
            await ask(client, "hello", model="gpt-4o")
    assert (await ask(client, "hello")).choices[0].message.content
    assert server.count(model="gpt-4o") == 3
    assert server.count(model=MODEL) == 1


async def test_failure_marker_fails_the_first_n_identical_requests(client: AsyncOpenAI) -> None:
    prompt = "hello [[fake:fail=503x2]]"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await ask(client, prompt)
    assert (await ask(client, prompt)).choices[0].message.content
    with pytest.raises(openai.RateLimitError):  # without xN: every time
        await ask(client, "other [[fake:fail=429]]")


async def test_client_retries_honour_retry_after(server: FakeOpenAI) -> None:
    server.behaviour.failures = [Failure(429, times=2, retry_after_s=0.01)]
    async with AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=2) as client:
        started = time.monotonic()
        reply = await ask(client, "hello")
        elapsed = time.monotonic() - started
    assert reply.choices[0].message.content
    assert server.count() == 3
    assert elapsed < 0.5  # 10 ms each, not the client's default backoff


async def test_a_failure_needs_an_error_status() -> None:  # async: see pytestmark
    with pytest.raises(ValueError, match="HTTP error status"):
        Failure(200)


# -- malformed output, overrides, structured-output support ---------------------------


async def test_malformed_invalid_json(server: FakeOpenAI, client: AsyncOpenAI) -> None:
    server.behaviour.malformed = "invalid_json"
    reply = await ask(client, "Classify", response_format=json_format(SCHEMAS[1]))
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.choices[0].message.content)
    text = await ask(client, "Just talk")  # text replies are left alone
    assert text.choices[0].message.content.startswith(("Here", "Briefly", "In short", "A", "To"))


@pytest.mark.parametrize("schema", SCHEMAS[:5])
async def test_malformed_schema_violation(
    server: FakeOpenAI, client: AsyncOpenAI, schema: dict[str, Any]
) -> None:
    server.behaviour.malformed_by_model = {MODEL: "schema_violation"}
    reply = await ask(client, "Classify", response_format=json_format(schema))
    value = json.loads(reply.choices[0].message.content)
    assert not jsonschema.Draft202012Validator(schema).is_valid(value)
    fine = await ask(client, "Classify", model="gpt-4o", response_format=json_format(schema))
    jsonschema.validate(json.loads(fine.choices[0].message.content), schema)


async def test_malformed_marker(client: AsyncOpenAI) -> None:
    fmt = json_format(SCHEMAS[2])
    reply = await ask(client, "Answer [[fake:malformed=schema_violation]]", response_format=fmt)
    value = json.loads(reply.choices[0].message.content)
    assert value == {"citations": ["Answer"]}  # the first required property is left out


async def test_content_overrides(server: FakeOpenAI, client: AsyncOpenAI) -> None:
    server.behaviour.content_by_model = {MODEL: '{"category": "billing"}'}
    fmt = json_format(SCHEMAS[1])
    reply = await ask(client, "I was charged twice", response_format=fmt)
    assert reply.choices[0].message.content == '{"category": "billing"}'
    marked = await ask(client, "Hi [[fake:content=Exactly this.]]")
    assert marked.choices[0].message.content == "Exactly this."


async def test_responder_scripts_replies(server: FakeOpenAI, client: AsyncOpenAI) -> None:
    def respond(chat: ChatRequest) -> str | None:
        return "technical" if "crash" in chat.prompt else None

    server.behaviour.responder = respond
    assert (await ask(client, "The app crashes")).choices[0].message.content == "technical"
    assert (await ask(client, "Hello there")).choices[0].message.content != "technical"


async def test_without_structured_output_json_schema_is_rejected(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    server.behaviour.structured_output_by_model = {"gpt-3.5-turbo": False}
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(client, "Classify", model="gpt-3.5-turbo", response_format=json_format({}))
    assert caught.value.param == "response_format"
    assert "not supported" in caught.value.message
    assert (await ask(client, "Classify", model="gpt-3.5-turbo")).choices[0].message.content
    await ask(client, "Classify", response_format=json_format({}))  # other models still can


async def test_a_schema_given_in_the_prompt_is_followed(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    # How callers ask a server without structured output: the schema in the instructions.
    schema = SCHEMAS[1]
    system = f"Classify.\n\nReply with JSON only, matching this JSON Schema:\n{json.dumps(schema)}"
    messages: Any = [
        {"role": "system", "content": system},
        {"role": "user", "content": "I was charged twice"},
    ]
    reply = await client.chat.completions.create(model=MODEL, messages=messages)
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)

    server.behaviour.malformed = "schema_violation"
    broken = await client.chat.completions.create(model=MODEL, messages=messages)
    value = json.loads(broken.choices[0].message.content or "")
    assert not jsonschema.Draft202012Validator(schema).is_valid(value)


# -- latency ---------------------------------------------------------------------------


async def test_latency_is_applied(server: FakeOpenAI, client: AsyncOpenAI) -> None:
    server.behaviour = FakeBehaviour(latency_s=0.15, latency_by_model={"gpt-4o": 0.0})
    started = time.monotonic()
    await ask(client, "slow")
    assert time.monotonic() - started >= 0.14
    started = time.monotonic()
    await ask(client, "fast", model="gpt-4o")
    await ask(client, "marked [[fake:latency=0.15]]", model="gpt-4o")
    assert time.monotonic() - started >= 0.14


async def test_latency_makes_client_timeouts_fire(server: FakeOpenAI) -> None:
    server.behaviour.latency_s = 1.0
    async with AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=0, timeout=0.1
    ) as client:
        with pytest.raises(openai.APITimeoutError):
            await ask(client, "too slow")


# -- protocol details ------------------------------------------------------------------


async def test_models_list_and_request_counts(server: FakeOpenAI, client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    await ask(client, "one")
    assert server.count() == 1
    assert server.count(path=None) == 2
    assert server.requests[-1].body["messages"] == user("one")
    assert server.requests[-1].headers["Authorization"] == "Bearer test"
    server.reset()
    assert server.count(path=None) == 0


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "could not parse"),
        (b'{"messages": []}', 400, "model"),
        (b'{"model": "gpt-4o", "messages": []}', 400, "messages"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "[[fake:nope=1]]"}]}', 400, ""),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": true}',
            400,
            "",
        ),
    ],
)
async def test_bad_requests_get_openai_errors(
    server: FakeOpenAI, body: bytes, status: int, fragment: str
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.base_url}/chat/completions", content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


async def test_unknown_urls_get_404(server: FakeOpenAI) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.base_url}/embeddings", json={})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/embeddings)"


async def test_base_url_needs_a_running_server() -> None:
    fake = FakeOpenAI()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.base_url
    async with fake:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", fake.base_url)
    with pytest.raises(RuntimeError):
        _ = fake.base_url


async def test_run_forever_serves_until_interrupted() -> None:
    code = "from flujo.engine.fake_openai import run_forever; run_forever()"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 10)).decode()
        base_url = line.split()[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{base_url}/models")).status_code == 200
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode != 0  # KeyboardInterrupt reaches the caller (the CLI)
