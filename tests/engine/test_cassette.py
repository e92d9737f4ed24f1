"""Record and replay of model calls, through the real `openai.AsyncOpenAI` client."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from flujo.engine.cassette import Cassette, CassetteMiss, request_key
from flujo.engine.fake_openai import Failure, FakeBehaviour, FakeOpenAI

API_KEY = "sk-test-0123456789abcdefSECRET"
UNREACHABLE = "http://127.0.0.1:9/v1"  # nothing listens here: replay must not need it
SCHEMA = {
    "type": "object",
    "required": ["category"],
    "properties": {"category": {"enum": ["billing", "technical", "other"]}},
}


def client_for(cassette: Cassette, base_url: str, **kwargs: Any) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=base_url,
        api_key=kwargs.pop("api_key", API_KEY),
        max_retries=0,
        # openai types `http_client` as httpx2's client; it accepts httpx's at run time.
        http_client=httpx.AsyncClient(transport=cassette),  # type: ignore[arg-type]
        **kwargs,
    )


async def calls(client: AsyncOpenAI) -> list[dict[str, Any]]:
    """A few different model calls; their responses as plain data."""
    text = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Why is the sky blue?"},
        ],
        temperature=0.2,
    )
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}}
    structured = await client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "I was charged twice"}],
        response_format=fmt,
    )
    models = await client.models.list()
    return [text.model_dump(), structured.model_dump(), models.model_dump()]


async def record(directory: Path, behaviour: FakeBehaviour | None = None) -> list[Any]:
    async with FakeOpenAI(behaviour) as server:
        cassette = Cassette(directory, mode="record")
        async with client_for(cassette, server.base_url) as client:
            return await calls(client)


def files_of(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json"))


async def test_replay_gives_the_recorded_responses_without_a_server(tmp_path: Path) -> None:
    recorded = await record(tmp_path)
    assert len(files_of(tmp_path)) == 3

    cassette = Cassette(tmp_path, mode="replay")
    async with client_for(cassette, UNREACHABLE, api_key="another-key") as client:
        replayed = await calls(client)

    assert replayed == recorded
    assert cassette.replayed == 3
    assert json.loads(recorded[1]["choices"][0]["message"]["content"])["category"]


async def test_a_replay_miss_names_the_model_and_how_to_record(tmp_path: Path) -> None:
    await record(tmp_path)
    cassette = Cassette(tmp_path, mode="replay")
    async with client_for(cassette, UNREACHABLE) as client:
        with pytest.raises(CassetteMiss) as caught:
            await client.chat.completions.create(
                model="gpt-4.1-nano", messages=[{"role": "user", "content": "A new prompt"}]
            )
    miss = caught.value
    message = str(miss)
    assert "model 'gpt-4.1-nano'" in message
    assert f"--record {tmp_path}" in message
    assert miss.model == "gpt-4.1-nano"
    assert miss.path == "/v1/chat/completions"
    assert not cassette.path_for(miss.key).exists()
    assert "step 'classify' calls model 'gpt-4.1-nano'" in str(miss.for_step("classify"))


async def test_replay_from_a_missing_directory_misses(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "nothing-here", mode="replay")
    async with client_for(cassette, UNREACHABLE) as client:
        with pytest.raises(CassetteMiss, match="gpt-4o-mini"):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )


async def test_no_credentials_are_stored(tmp_path: Path) -> None:
    # The fake echoes the key in a reply: it must be redacted from the file too.
    behaviour = FakeBehaviour(content_by_model={"gpt-4o-mini": f"Your key is {API_KEY}."})
    async with FakeOpenAI(behaviour) as server:
        cassette = Cassette(tmp_path, mode="record")
        headers = {"Cookie": "session=cookie-value-123456789", "api-key": API_KEY}
        async with client_for(cassette, server.base_url, default_headers=headers) as client:
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "What is my key?"}]
            )
    assert API_KEY in (reply.choices[0].message.content or "")  # only the file is redacted

    text = "\n".join(p.read_text(encoding="utf-8") for p in files_of(tmp_path))
    assert text
    for secret in (API_KEY, "SECRET", "Bearer", "cookie-value", "uthorization", "api-key"):
        assert secret.lower() not in text.lower()
    assert "Your key is [REDACTED]." in text


async def test_files_are_stable_and_named_by_the_request_hash(tmp_path: Path) -> None:
    await record(tmp_path / "one")
    await record(tmp_path / "two")
    one, two = files_of(tmp_path / "one"), files_of(tmp_path / "two")
    assert [p.name for p in one] == [p.name for p in two]
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]

    for path in one:
        text = path.read_text(encoding="utf-8")
        entry = json.loads(text)
        assert text == json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        canonical = json.dumps(entry["request"], sort_keys=True, separators=(",", ":"))
        assert path.stem == hashlib.sha256(canonical.encode()).hexdigest()
        assert set(entry) == {"version", "request", "response"}
        assert entry["request"]["path"] in ("/v1/chat/completions", "/v1/models")
        assert entry["response"]["status"] == 200


def test_the_key_ignores_headers_host_and_key_order() -> None:
    def key(url: str, body: bytes, **headers: str) -> str:
        return request_key(httpx.Request("POST", url, content=body, headers=headers))

    base = key("http://a/v1/chat/completions", b'{"model": "m", "n": 1}')
    assert base == key(
        "https://b:8443/v1/chat/completions", b'{"n":1,"model":"m"}', authorization="Bearer x"
    )
    assert base == key("http://a/v1/chat/completions?api-key=s3cret", b'{"n":1,"model":"m"}')
    assert base != key("http://a/v1/chat/completions", b'{"model": "m", "n": 2}')
    assert base != key("http://a/v1/completions", b'{"model": "m", "n": 1}')


async def test_transient_failures_are_not_recorded(tmp_path: Path) -> None:
    behaviour = FakeBehaviour(failures=[Failure(429, times=1, retry_after_s=0.01)])
    messages: Any = [{"role": "user", "content": "hello"}]
    async with FakeOpenAI(behaviour) as server:
        cassette = Cassette(tmp_path, mode="record")
        async with client_for(cassette, server.base_url) as client:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert files_of(tmp_path) == []
            live = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert cassette.recorded == 1

    async with client_for(Cassette(tmp_path), UNREACHABLE) as client:
        replayed = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert replayed.model_dump() == live.model_dump()


async def test_request_errors_are_recorded_and_replayed(tmp_path: Path) -> None:
    messages: Any = [{"role": "user", "content": "hello"}]
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}}
    async with (
        FakeOpenAI(FakeBehaviour(structured_output=False)) as server,
        client_for(Cassette(tmp_path, mode="record"), server.base_url) as client,
    ):
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="gpt-3.5-turbo", messages=messages, response_format=fmt
            )
    async with client_for(Cassette(tmp_path), UNREACHABLE) as client:
        with pytest.raises(openai.BadRequestError, match="not supported"):
            await client.chat.completions.create(
                model="gpt-3.5-turbo", messages=messages, response_format=fmt
            )


def test_mode_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'record' or 'replay'"):
        Cassette(tmp_path, mode="rewind")  # type: ignore[arg-type]
