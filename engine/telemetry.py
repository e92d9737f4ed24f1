"""Spans and metrics of a run.

Spans are recorded in memory as plain records while the run executes (a few
microseconds each, where the OpenTelemetry SDK's span objects cost tens), then handed
at the end of the run to the run store and, when configured, converted into
OpenTelemetry `ReadableSpan`s for the SDK's exporters (OTLP over HTTP, console) together
with the metrics. Attribute names follow OpenTelemetry's GenAI conventions plus Flujo's
`flujo.*` namespace; prompt and output text are never recorded unless asked for.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# Attribute names (one place for each).
YAML_PATH = "flujo.yaml.path"
YAML_LINE = "flujo.yaml.line"
YAML_FILE = "flujo.yaml.file"
"""Set on spans of imported steps: the file their path and line are in."""
SPEC_SHA = "flujo.yaml.spec_sha256"
STEP_NAME = "flujo.step.name"
STEP_KIND = "flujo.step.kind"
ATTEMPT = "flujo.step.attempt"
RUN_ID = "flujo.run.id"
RUN_MODE = "flujo.run.mode"
"""live, replay, fake or mock: how the run reached its models (on every span of a run)."""
RUN_ORIGIN = "flujo.run.origin"
"""cli, sdk, test, check, verification, eval or shadow: what started the run."""
CAUSE = "flujo.failure.cause"
"""On a failed attempt: model, provider, harness, input, limit or cancelled."""
HTTP_STATUS = "http.response.status_code"
"""On an attempt the provider answered with an HTTP error: its status code."""
COST = "flujo.cost_usd"
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_MODEL = "gen_ai.request.model"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_CACHED_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
"""Of the input tokens, those the provider served from its prompt cache (priced apart)."""
PRICES_VERSION = "flujo.prices.version"
"""On a run's span: the version of the price table that computed its costs."""
RESUMED_FROM = "flujo.run.resumed_from"
"""On a resumed run's span: the id of the run it continues."""
RESUMED_AFTER = "flujo.run.resumed_after"
"""On a resumed run's span: the yaml_path of the last top-level step the earlier run
completed (`""`: it resumed from the start, with the earlier run's input)."""

RUN_KEYS = (RUN_ID, SPEC_SHA, RUN_MODE, RUN_ORIGIN)
"""The run's attributes, first on every span of a run."""

_ids = random.Random()  # span ids need uniqueness, not secrecy (as in the OTel SDK)


class StepAttributes(dict[str, Any]):
    """The attributes every span of one step starts with (path, line, name, kind), made
    once per runner, never changed, shared by the spans of all the step's attempts and
    runs. `derived` keeps what a reader of spans works out of them once (the run store:
    the columns of the step's span rows that do not change from span to span)."""

    __slots__ = ("derived",)

    def __init__(self, items: dict[str, Any]) -> None:
        super().__init__(items)
        self.derived: dict[Any, Any] = {}


@dataclass(slots=True)
class SpanRecord:
    """One span: a run or one attempt of a step."""

    span_id: int
    parent_id: int | None
    name: str
    start_ns: int
    attributes: dict[str, Any]
    end_ns: int = 0
    status: str = "UNSET"
    """OK, ERROR or UNSET (still open)."""
    status_message: str | None = None
    events: Sequence[tuple[str, int, dict[str, Any]]] = ()
    """(name, time_ns, attributes); a span without events holds no list of its own (one
    object fewer per span for the garbage collector to walk in a long run)."""
    step: StepAttributes | None = None
    """The step attributes it started with (`RunTelemetry.start`): its attributes are the
    run's (`RUN_KEYS`), then these, then the attempt, then those added since; those it
    started with are never replaced."""

    def event(self, name: str, **attributes: Any) -> None:
        self.events = [*self.events, (name, time.time_ns(), attributes)]

    def end(self, ok: bool, message: str | None = None) -> None:
        self.end_ns = time.time_ns()
        self.status = "OK" if ok else "ERROR"
        self.status_message = message


_new = object.__new__


class RunTelemetry:
    """Collects the spans of one run."""

    __slots__ = ("_next_id", "base", "spans", "trace_id")

    def __init__(
        self, run_id: str, spec_sha256: str, mode: str = "live", origin: str = "sdk"
    ) -> None:
        self.trace_id = _ids.getrandbits(128) or 1
        self.base = dict(zip(RUN_KEYS, (run_id, spec_sha256, mode, origin), strict=True))
        self.spans: list[SpanRecord] = []
        # span ids: a random start, then consecutive (unique in the trace, never 0, and
        # below 2**63 so they fit SQLite's signed INTEGER); the store appends them in order
        self._next_id = itertools.count(_ids.getrandbits(62) + 1).__next__

    def start(
        self,
        name: str,
        parent: SpanRecord | None,
        attributes: dict[str, Any],
        attempt: int | None = None,
    ) -> SpanRecord:
        """Open a span with the run's attributes, then `attributes`, then the attempt."""
        merged = self.base | attributes
        if attempt is not None:
            merged[ATTEMPT] = attempt
        # each field set on a new object: calling the class (its generated __init__ through
        # type.__call__) costs twice as much (400 against 200 ns)
        span = _new(SpanRecord)
        span.span_id = self._next_id()
        span.parent_id = parent.span_id if parent is not None else None
        span.name = name
        span.start_ns = time.time_ns()
        span.attributes = merged
        span.end_ns = 0
        span.status = "UNSET"
        span.status_message = None
        span.events = ()
        span.step = attributes if type(attributes) is StepAttributes else None
        self.spans.append(span)
        return span


class NullTelemetry(RunTelemetry):
    """Records nothing (tracing switched off); spans handed out are throwaways."""

    __slots__ = ()

    def start(
        self,
        name: str,
        parent: SpanRecord | None,
        attributes: dict[str, Any],
        attempt: int | None = None,
    ) -> SpanRecord:
        return SpanRecord(0, None, name, 0, {})  # what the step writes; read by nobody


# -- export through the OpenTelemetry SDK --------------------------------------------------


@dataclass
class OTelExport:
    """SDK exporters to send finished runs to (empty: store only)."""

    span_exporters: list[SpanExporter] = field(default_factory=list)
    meter_provider: MeterProvider | None = None
    _instruments: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, console: bool = False) -> OTelExport:
        """OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces variant) is set,
        the console when asked for; nothing otherwise."""
        export = cls()
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        readers = []
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            export.span_exporters.append(OTLPSpanExporter())
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        if console:
            from opentelemetry.sdk.metrics.export import (
                ConsoleMetricExporter,
                PeriodicExportingMetricReader,
            )
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            export.span_exporters.append(ConsoleSpanExporter())
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        if readers:
            from opentelemetry.sdk.metrics import MeterProvider

            export.meter_provider = MeterProvider(metric_readers=readers, resource=_resource())
        return export

    @property
    def enabled(self) -> bool:
        return bool(self.span_exporters or self.meter_provider)

    def export(self, telemetry: RunTelemetry) -> None:
        """Send a finished run's spans and per-step metrics (call off the event loop)."""
        if self.span_exporters:
            spans = to_readable_spans(telemetry)
            for exporter in self.span_exporters:
                exporter.export(spans)
        if self.meter_provider is not None:
            self._record_metrics(telemetry)

    def _record_metrics(self, telemetry: RunTelemetry) -> None:
        assert self.meter_provider is not None
        if not self._instruments:
            meter = self.meter_provider.get_meter("flujo")
            self._instruments = {
                "latency": meter.create_histogram(
                    "flujo.step.duration", unit="s", description="Duration of a step attempt."
                ),
                "cost": meter.create_counter(
                    "flujo.step.cost", unit="USD", description="Cost of step attempts."
                ),
                "tokens": meter.create_histogram(
                    "gen_ai.client.token.usage", unit="{token}", description="Tokens per call."
                ),
            }
        keys = (YAML_PATH, SPEC_SHA, STEP_NAME, STEP_KIND, RUN_MODE, RUN_ORIGIN)
        for span in telemetry.spans:
            if YAML_PATH not in span.attributes:
                continue
            attrs = {k: span.attributes[k] for k in keys if k in span.attributes}
            self._instruments["latency"].record((span.end_ns - span.start_ns) / 1e9, attrs)
            cost = span.attributes.get(COST)
            if cost is not None:
                self._instruments["cost"].add(cost, attrs)
            for key, kind in ((GEN_AI_INPUT_TOKENS, "input"), (GEN_AI_OUTPUT_TOKENS, "output")):
                if key in span.attributes:
                    tagged = attrs | {"gen_ai.token.type": kind}
                    self._instruments["tokens"].record(span.attributes[key], tagged)

    def shutdown(self) -> None:
        for exporter in self.span_exporters:
            exporter.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "flujo")})


def to_readable_spans(telemetry: RunTelemetry) -> Sequence[Any]:
    """The run's spans as OpenTelemetry SDK `ReadableSpan`s (for any SDK exporter)."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    resource = _resource()
    flags = TraceFlags(TraceFlags.SAMPLED)

    def context(span_id: int) -> SpanContext:
        return SpanContext(telemetry.trace_id, span_id, is_remote=False, trace_flags=flags)

    out = []
    for span in telemetry.spans:
        code = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR}.get(span.status, StatusCode.UNSET)
        out.append(
            ReadableSpan(
                name=span.name,
                context=context(span.span_id),
                parent=context(span.parent_id) if span.parent_id is not None else None,
                resource=resource,
                attributes=span.attributes,
                events=[Event(name, attrs, ts) for name, ts, attrs in span.events],
                kind=SpanKind.INTERNAL,
                status=Status(code, span.status_message if code == StatusCode.ERROR else None),
                start_time=span.start_ns,
                end_time=span.end_ns or span.start_ns,
            )
        )
    return out
