"""OTLP/HTTP ingest: telemetry from where customers run their pipelines, into a run store.

`ingest_traces` takes the body of a `POST /v1/traces` (protobuf or JSON, as the
OpenTelemetry exporters send it) and stores the spans that carry `flujo.yaml.*`
attributes, grouped into runs by `flujo.run.id`; other spans are counted and ignored.
A run's row is completed from its root span (`flujo.run …`). `ingest_metrics` decodes
`POST /v1/metrics` and counts the Flujo data points: the store derives its metrics from
spans, so points are acknowledged, not kept. `make_otlp_routes` gives aiohttp routes
that authenticate with a per-installation bearer token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.engine import telemetry as tm
from flujo.engine.capture import CAPTURE_EVENT, rows_from_events, write_captures
from flujo.engine.store import MODES, ORIGINS, UNKNOWN
from flujo.engine.telemetry import SpanRecord
from flujo.spec.errors import EXIT_INVALID, FlujoError

if TYPE_CHECKING:
    from aiohttp import web

    from flujo.engine.store import RunStore

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
FLUJO_PREFIX = "flujo.yaml."
_ID_MASK = (1 << 63) - 1  # span ids are kept in SQLite's signed 64-bit INTEGER
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_HEX_IDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class IngestError(FlujoError, ValueError):
    """The request body is not an OTLP export of the declared content type (exit code 1:
    invalid input)."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    """Spans stored (or metric data points counted)."""
    ignored: int
    """Spans or points without flujo.yaml.* attributes."""
    runs: int = 0


def _media_type(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise IngestError(f"unsupported content type '{content_type}': use {PROTOBUF} or {JSON}")
    return media


def _decode(message: Any, body: bytes, content_type: str) -> Any:
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    media = _media_type(content_type)
    try:
        if media == PROTOBUF:
            message.ParseFromString(body)
        else:
            data = json.loads(body)
            json_format.ParseDict(_hex_ids_to_base64(data), message, ignore_unknown_fields=True)
    except RecursionError:  # a body nested deeper than any OTLP export is
        raise IngestError(f"the body is not a valid OTLP {media} export: nested too deep") from None
    except (DecodeError, ValueError, json_format.ParseError) as exc:
        raise IngestError(f"the body is not a valid OTLP {media} export: {exc}") from None
    return message


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _HEX_IDS and isinstance(value, str) and value:
            with contextlib.suppress(ValueError):  # not hex: already base64
                value = base64.b64encode(bytes.fromhex(value)).decode()
        out[key] = _hex_ids_to_base64(value)
    return out


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(any_value, kind)
    if kind == "array_value":
        return [_value(v) for v in value.values]
    if kind == "kvlist_value":
        return _attributes(value.values)
    if kind == "bytes_value":
        return value.hex()
    return value


def _attributes(kv_list: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kv_list}


def _span_id(raw: bytes) -> int | None:
    return (int.from_bytes(raw, "big") & _ID_MASK) or None if raw else None


def ingest_traces(store: RunStore, body: bytes, content_type: str) -> IngestResult:
    """Store the Flujo spans of an OTLP trace export; IngestError for a bad body."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = _decode(ExportTraceServiceRequest(), body, content_type)
    runs: dict[str, tuple[str, list[SpanRecord]]] = {}
    ignored = accepted = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = _attributes(span.attributes)
                if not any(key.startswith(FLUJO_PREFIX) for key in attributes):
                    ignored += 1
                    continue
                span_id = _span_id(span.span_id)
                if span_id is None:
                    ignored += 1
                    continue
                run_id = str(attributes.get(tm.RUN_ID) or span.trace_id.hex())
                sha = str(attributes.get(tm.SPEC_SHA) or "unknown")
                record = SpanRecord(
                    span_id,
                    _span_id(span.parent_span_id),
                    span.name,
                    span.start_time_unix_nano,
                    attributes,
                    span.end_time_unix_nano,
                    _STATUS.get(span.status.code, "UNSET"),
                    span.status.message or None,
                    [(e.name, e.time_unix_nano, _attributes(e.attributes)) for e in span.events],
                )
                runs.setdefault(run_id, (sha, []))[1].append(record)
                accepted += 1
    with store.batch():  # one commit for the whole export
        for run_id, (sha, spans) in runs.items():
            _store_run(store, run_id, sha, spans)
    return IngestResult(accepted, ignored, len(runs))


def _store_run(store: RunStore, run_id: str, sha: str, spans: list[SpanRecord]) -> None:
    root = next((s for s in spans if s.parent_id is None and s.name.startswith("flujo.run")), None)
    pipeline = None
    if root is not None:
        name = root.name.removeprefix("flujo.run").strip()
        pipeline = name if name and name != "pipeline" else None
    started = min(s.start_ns for s in spans) / 1e9
    # provenance as the sending Flujo recorded it on every span; spans of Flujo versions
    # that did not record it give `unknown` (not counted as live evidence)
    mode = _provenance(spans, tm.RUN_MODE, MODES)
    origin = _provenance(spans, tm.RUN_ORIGIN, ORIGINS)
    store.execute(
        "INSERT INTO specs (sha256, path, name, text, first_seen)"
        " VALUES (?, NULL, ?, '', ?) ON CONFLICT DO NOTHING",
        [(sha, pipeline, time.time())],
    )
    store.execute(
        "INSERT INTO runs (run_id, spec_sha256, pipeline, status, started_at, mode,"
        " origin) VALUES (?, ?, ?, 'running', ?, ?, ?) ON CONFLICT DO NOTHING",
        [(run_id, sha, pipeline, started, mode, origin)],
    )
    store.execute(
        "UPDATE runs SET mode = ?, origin = ? WHERE run_id = ? AND mode = ?",
        [(mode, origin, run_id, UNKNOWN)],
    )
    captured: list[tuple[str, int, dict[str, Any]]] = []
    if root is not None and any(e[0] == CAPTURE_EVENT for e in root.events):
        captured = [e for e in root.events if e[0] == CAPTURE_EVENT]
        root.events = [e for e in root.events if e[0] != CAPTURE_EVENT]
    store.write_spans(run_id, spans)
    if captured:  # captured examples: kept per repository (this store), within the limits
        rows, path, keep = rows_from_events(run_id, sha, captured)
        write_captures(store, rows, path, keep)
    if root is None:
        return
    status = {"OK": "succeeded", "ERROR": "failed"}.get(root.status, "running")
    error_path = next(
        (
            str(attrs.get("path") or "") or None
            for name, _, attrs in root.events
            if name == "flujo.run.failed"
        ),
        None,
    )
    tokens = sum(
        int(s.attributes.get(tm.GEN_AI_INPUT_TOKENS) or 0)
        + int(s.attributes.get(tm.GEN_AI_OUTPUT_TOKENS) or 0)
        for s in spans
    )
    store.execute(
        "UPDATE runs SET status = ?, started_at = ?, ended_at = ?, latency_s = ?,"
        " total_cost_usd = ?, total_tokens = ?, error = ?, error_path = ?,"
        " pipeline = coalesce(pipeline, ?), cause = ? WHERE run_id = ?",
        [
            (
                status,
                root.start_ns / 1e9,
                root.end_ns / 1e9 if root.end_ns else None,
                (root.end_ns - root.start_ns) / 1e9 if root.end_ns else None,
                root.attributes.get(tm.COST),
                tokens,
                root.status_message,
                error_path,
                pipeline,
                root.attributes.get(tm.CAUSE) if root.status == "ERROR" else None,
                run_id,
            )
        ],
    )


def _provenance(spans: list[SpanRecord], key: str, known: tuple[str, ...]) -> str:
    for span in spans:
        value = span.attributes.get(key)
        if isinstance(value, str) and value in known:
            return value
    return UNKNOWN


def ingest_metrics(store: RunStore, body: bytes, content_type: str) -> IngestResult:
    """Decode an OTLP metrics export and count its Flujo data points (not stored)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = _decode(ExportMetricsServiceRequest(), body, content_type)
    accepted = ignored = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                points = getattr(getattr(metric, kind), "data_points", []) if kind else []
                for point in points:
                    if any(kv.key.startswith(FLUJO_PREFIX) for kv in point.attributes):
                        accepted += 1
                    else:
                        ignored += 1
    return IngestResult(accepted, ignored)


def make_otlp_routes(
    store_for_token: Callable[[str], Awaitable[RunStore | None]],
    on_ingested: Callable[[str, IngestResult], Awaitable[None]] | None = None,
    on_refused: Callable[[web.Request, int, str], None] | None = None,
) -> list[web.RouteDef]:
    """`POST /v1/traces` and `POST /v1/metrics` for an aiohttp app.

    Clients authenticate with `Authorization: Bearer TOKEN`; `store_for_token` (a
    coroutine: it may ask a database) maps a token to the installation's run store (None:
    401). `on_ingested(token, result)` (a coroutine) is awaited after a body is stored
    (e.g. to schedule suggestions); `on_refused(request, status, reason)` is called after a
    request is refused (to log it, bounded). Mount with
    `app.add_routes(make_otlp_routes(lookup))`.
    """
    from aiohttp import web
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    def refuse(
        request: web.Request, status: int, reason: str, logged: str | None = None
    ) -> web.Response:
        """Answer with `reason`; report `logged` (what a log may hold: nothing the client
        sent) to `on_refused`."""
        if on_refused is not None:
            on_refused(request, status, logged or reason)
        return web.json_response({"message": reason}, status=status)

    def handler(
        ingest: Callable[[RunStore, bytes, str], IngestResult], response: Callable[[], Any]
    ) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            store = await store_for_token(token.strip()) if scheme.lower() == "bearer" else None
            if store is None:
                return refuse(request, 401, "unknown or missing token")
            content_type = request.headers.get("Content-Type", "")
            try:
                media = _media_type(content_type)
                body = await request.read()
                result = await asyncio.to_thread(ingest, store, body, content_type)
            except IngestError as exc:
                if "content type" in str(exc):
                    return refuse(request, 415, str(exc), "unsupported content type")
                return refuse(request, 400, str(exc))
            except web.HTTPRequestEntityTooLarge:
                return refuse(request, 413, "body larger than the limit")
            if on_ingested is not None:
                await on_ingested(token.strip(), result)
            if media == PROTOBUF:
                return web.Response(body=response().SerializeToString(), content_type=PROTOBUF)
            return web.json_response({})

        return handle

    return [
        web.post("/v1/traces", handler(ingest_traces, ExportTraceServiceResponse)),
        web.post("/v1/metrics", handler(ingest_metrics, ExportMetricsServiceResponse)),
    ]
