"""OTLP/HTTP ingest: the real OpenTelemetry exporters send a run's spans and metrics to
an aiohttp server whose routes come from `make_otlp_routes`; the spans land in the
installation's run store, where the learning loop reads them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from flujo.engine.agents import OpenAIModels
from flujo.engine.fake_openai import FakeOpenAI
from flujo.engine.otlp_ingest import IngestError, ingest_traces, make_otlp_routes
from flujo.engine.runner import Runner
from flujo.engine.store import RunStore
from flujo.engine.telemetry import OTelExport
from flujo.learn.telemetry_view import load_view
from flujo.spec.model import Pipeline
from tests.support.specs import spec

TOKEN = "install-42-secret"
PIPELINE = spec(
    """
    name: remote
    agents:
      tagger: {model: "openai:gpt-4o-mini", max_tokens: 20}
    steps:
      - name: tag
        uses: agents.tagger
      - name: shout
        uses: template_render
        with: {template: "{{ input | upper }}"}
    """
)


@pytest.fixture
async def endpoint(store_location: Path | str) -> AsyncIterator[tuple[str, RunStore]]:
    store = RunStore(store_location)
    app = web.Application()

    async def lookup(token: str) -> RunStore | None:
        return store if token == TOKEN else None

    app.add_routes(make_otlp_routes(lookup))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", store
    await runner.cleanup()
    store.close()


async def test_the_real_otlp_exporters_feed_the_run_store(
    endpoint: tuple[str, RunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store = endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")
    pipeline = Pipeline.from_yaml(PIPELINE)
    export = OTelExport.from_environment()
    assert export.enabled
    async with FakeOpenAI() as server:
        models = OpenAIModels(base_url=server.base_url)
        try:
            runner = Runner(pipeline, models=models, export=export)
            results = [await runner.run(f"ticket {i}") for i in range(3)]
        finally:
            await models.close()
            await asyncio.to_thread(export.shutdown)
    assert all(r.success for r in results)

    runs = {r["run_id"]: r for r in store.list_runs(10)}
    assert set(runs) == {r.run_id for r in results}
    for result in results:
        row = runs[result.run_id]
        assert row["status"] == "succeeded" and row["pipeline"] == "remote"
        assert (row["mode"], row["origin"]) == ("live", "sdk")  # sent on every span
        assert row["spec_sha256"] == pipeline.spec_sha256
        assert row["total_cost_usd"] == pytest.approx(result.total_cost_usd)
        assert row["total_tokens"] == result.total_tokens
        spans = {s["name"]: s for s in store.spans(result.run_id)}
        assert set(spans) == {"flujo.run remote", "tag", "shout"}
        assert spans["tag"]["yaml_path"] == "steps[0]" and spans["tag"]["model"]
        assert spans["tag"]["parent_id"] == spans["flujo.run remote"]["span_id"]

    view = load_view(store, pipeline)
    assert view.runs == 3 and view.steps["tag"].runs == 3
    assert view.steps["tag"].cost_usd == pytest.approx(sum(r.total_cost_usd or 0 for r in results))


async def test_a_missing_or_unknown_token_is_refused(endpoint: tuple[str, RunStore]) -> None:
    url, store = endpoint
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            async with http.post(f"{url}/v1/traces", data=b"", headers=headers) as response:
                assert response.status == 401
    assert store.list_runs() == []


async def test_bad_bodies_get_clear_errors(endpoint: tuple[str, RunStore]) -> None:
    url, _ = endpoint
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        xml = auth | {"Content-Type": "text/xml"}
        async with http.post(f"{url}/v1/traces", data=b"<x/>", headers=xml) as response:
            assert response.status == 415
            assert "unsupported content type" in (await response.json())["message"]
        proto = auth | {"Content-Type": "application/x-protobuf"}
        async with http.post(f"{url}/v1/metrics", data=b"\xff\xff", headers=proto) as response:
            assert response.status == 400
        deep = b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        json_type = auth | {"Content-Type": "application/json"}
        async with http.post(f"{url}/v1/traces", data=deep, headers=json_type) as response:
            assert response.status == 400
            assert "nested too deep" in (await response.json())["message"]


def otlp_json(spans: list[dict[str, object]]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def span(name: str, span_id: str, attrs: dict[str, object], parent: str = "") -> dict[str, object]:
    kv = [
        {"key": k, "value": {"intValue": v} if isinstance(v, int) else {"stringValue": v}}
        for k, v in attrs.items()
    ]
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001500000000",
        "status": {"code": 2, "message": "step 'fetch' failed: boom"}
        if not parent
        else {"code": 1},
        "attributes": kv,
    }


def test_otlp_json_with_hex_ids_keeps_flujo_spans_only(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s.db")
    base = {"flujo.run.id": "run-json-1", "flujo.yaml.spec_sha256": "abc"}
    body = otlp_json(
        [
            span("flujo.run fetcher", "eee19b7ec3c1b174", base | {"flujo.yaml.line": 1}),
            span(
                "fetch",
                "eee19b7ec3c1b175",
                base | {"flujo.yaml.path": "steps[0]", "flujo.step.name": "fetch"},
                parent="eee19b7ec3c1b174",
            ),
            span("GET /health", "eee19b7ec3c1b176", {"http.method": "GET"}),
        ]
    )
    result = ingest_traces(store, body, "application/json; charset=utf-8")
    assert (result.accepted, result.ignored, result.runs) == (2, 1, 1)
    (run,) = store.list_runs()
    assert run["run_id"] == "run-json-1" and run["status"] == "failed"
    assert run["pipeline"] == "fetcher" and run["latency_s"] == pytest.approx(1.5)
    assert run["error"] == "step 'fetch' failed: boom"
    fetch = next(s for s in store.spans("run-json-1") if s["name"] == "fetch")
    assert fetch["span_id"] == "6ee19b7ec3c1b175"  # 63 bits kept, as the store's own ids
    assert fetch["yaml_path"] == "steps[0]"
    # the same export again changes nothing
    ingest_traces(store, body, "application/json")
    assert len(store.list_runs()) == 1 and len(store.spans("run-json-1")) == 2
    with pytest.raises(IngestError, match="not a valid OTLP application/json"):
        ingest_traces(store, b"[1, 2", "application/json")
    store.close()


def test_otlp_spans_carry_provenance_and_causes(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s.db")
    old = {"flujo.run.id": "run-old", "flujo.yaml.spec_sha256": "abc"}
    new = {"flujo.run.id": "run-new", "flujo.yaml.spec_sha256": "abc"}
    new |= {"flujo.run.mode": "fake", "flujo.run.origin": "cli"}
    for base in (old, new):
        root = "eee19b7ec3c1b1" + ("74" if base is old else "84")
        body = otlp_json(
            [
                span(
                    "flujo.run f",
                    root,
                    base | {"flujo.yaml.line": 1, "flujo.failure.cause": "harness"},
                ),
                span(
                    "fetch",
                    root[:-1] + "5",
                    base | {"flujo.yaml.path": "steps[0]", "flujo.failure.cause": "harness"},
                    parent=root,
                ),
            ]
        )
        ingest_traces(store, body, "application/json")
    runs = {r["run_id"]: r for r in store.list_runs()}
    # spans of a Flujo that did not record provenance: unknown, never counted as live
    assert (runs["run-old"]["mode"], runs["run-old"]["origin"]) == ("unknown", "unknown")
    assert (runs["run-new"]["mode"], runs["run-new"]["origin"]) == ("fake", "cli")
    assert runs["run-new"]["cause"] == "harness"
    store.close()


async def test_captured_examples_travel_over_otlp_redacted_and_kept_per_store(
    endpoint: tuple[str, RunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flujo.engine.capture import REDACTED, CaptureSettings, captures_of_run

    url, store = endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")
    pipeline = Pipeline.from_yaml(PIPELINE)
    export = OTelExport.from_environment()
    async with FakeOpenAI() as server:
        models = OpenAIModels(base_url=server.base_url)
        try:
            capture = CaptureSettings(rate=1.0, keep=2)
            runner = Runner(pipeline, models=models, export=export, capture=capture)
            secret = "sk-" + "b" * 24
            results = [await runner.run(f"ticket {i} {secret}") for i in range(3)]
        finally:
            await models.close()
            await asyncio.to_thread(export.shutdown)
    kept = [r for r in results if captures_of_run(store, r.run_id)]
    assert [r.run_id for r in kept] == [r.run_id for r in results[1:]]  # keep: 2
    examples = {c["step"]: c for c in captures_of_run(store, results[2].run_id)}
    assert examples[None]["input"] == f"ticket 2 {REDACTED}"
    assert examples["tag"]["input"] == f"ticket 2 {REDACTED}"
    assert REDACTED in examples["shout"]["output"] and "BBBB" not in examples["shout"]["output"]
    # the examples are not repeated in the stored spans' events
    root = next(s for s in store.spans(results[2].run_id) if s["parent_id"] is None)
    assert all(e[0] != "flujo.capture" for e in root["events"])
