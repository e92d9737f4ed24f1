"""Spans and metrics reach a real OTLP/HTTP endpoint (protobuf, decoded with the
official OpenTelemetry proto definitions)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flujo.engine.runner import Runner
from flujo.engine.telemetry import OTelExport
from flujo.spec.model import Pipeline
from tests.support.specs import spec


def attributes(kv_list: Any) -> dict[str, Any]:
    out = {}
    for kv in kv_list:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


async def test_spans_and_metrics_are_exported_over_otlp_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}

    async def collect(request: web.Request) -> web.Response:
        assert request.headers["Content-Type"] == "application/x-protobuf"
        received[request.path].append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    app.router.add_post("/v1/metrics", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    pipeline = Pipeline.from_yaml(
        spec(
            """
            name: exported
            steps:
              - name: first
                uses: passthrough
              - name: nest
                kind: parallel
                branches:
                  a: {steps: [{name: leaf, uses: passthrough}]}
            """
        )
    )
    export = OTelExport.from_environment()
    try:
        result = await Runner(pipeline, export=export).run("v")
        assert result.success
    finally:
        import asyncio

        await asyncio.to_thread(export.shutdown)
        await runner.cleanup()

    spans = []
    for body in received["/v1/traces"]:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope in resource_spans.scope_spans:
                spans.extend(scope.spans)
    by_name = {span.name: span for span in spans}
    assert set(by_name) == {"flujo.run exported", "first", "nest", "leaf"}
    leaf = attributes(by_name["leaf"].attributes)
    assert leaf["flujo.yaml.path"] == "steps[1].branches.a.steps[0]"
    assert leaf["flujo.yaml.line"] == pipeline.step("leaf").line
    assert leaf["flujo.yaml.spec_sha256"] == pipeline.spec_sha256
    assert leaf["flujo.step.kind"] == "step" and leaf["flujo.run.id"] == result.run_id
    assert (leaf["flujo.run.mode"], leaf["flujo.run.origin"]) == (result.mode, result.origin)
    assert by_name["leaf"].parent_span_id == by_name["nest"].span_id
    assert by_name["nest"].parent_span_id == by_name["flujo.run exported"].span_id
    assert len({span.trace_id for span in spans}) == 1

    metric_names = set()
    for body in received["/v1/metrics"]:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in request.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    metric_names.add(metric.name)
                    if metric.name == "flujo.step.duration":
                        paths = {
                            attributes(point.attributes)["flujo.yaml.path"]
                            for point in metric.histogram.data_points
                        }
                        assert paths == {"steps[0]", "steps[1]", "steps[1].branches.a.steps[0]"}
    assert "flujo.step.duration" in metric_names
