"""Span ingest over OTLP/HTTP, in spans per second, into a run store on SQLite and on
PostgreSQL.

An aiohttp server in this process serves `POST /v1/traces` (`make_otlp_routes`, as the
bot does); this process posts protobuf exports of `--batch` spans each (OpenTelemetry's
batch processor sends up to 512), one at a time, as one exporter would. Each export is
the spans of runs of `--run-spans` steps. The store is a SQLite file (WAL), then a
PostgreSQL database (a server started in a temporary folder, fsync on, on loopback).

    .venv/bin/python benchmarks/span_ingest.py [--spans 20000] [--batch 512]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flujo.engine import telemetry as tm  # noqa: E402
from flujo.engine.otlp_ingest import make_otlp_routes  # noqa: E402
from flujo.engine.store import RunStore  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

TOKEN = "bench"


def export(first_run: int, spans: int, run_spans: int) -> bytes:
    """One export of `spans` spans: runs of `run_spans` steps."""
    out = []
    for n in range(spans):
        run = first_run + n // run_spans
        attributes = {
            tm.RUN_ID: f"run{run:010d}",
            tm.SPEC_SHA: "0" * 64,
            tm.STEP_NAME: f"step{n % run_spans}",
            tm.YAML_PATH: f"steps[{n % run_spans}]",
            "gen_ai.usage.input_tokens": 120,
        }
        out.append(
            Span(
                trace_id=run.to_bytes(16, "big"),
                span_id=(n + 1 + first_run * run_spans).to_bytes(8, "big"),
                name="flujo.step",
                start_time_unix_nano=1_700_000_000_000_000_000 + n * 1000,
                end_time_unix_nano=1_700_000_000_000_000_000 + n * 1000 + 500,
                attributes=[
                    KeyValue(
                        key=k,
                        value=AnyValue(int_value=v)
                        if isinstance(v, int)
                        else AnyValue(string_value=v),
                    )
                    for k, v in attributes.items()
                ],
            )
        )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=out)])]
    )
    return bytes(request.SerializeToString())


async def measure(store: RunStore, spans: int, batch: int, run_spans: int) -> float:
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def lookup(token: str) -> RunStore | None:
        return store if token == TOKEN else None

    app.add_routes(make_otlp_routes(lookup))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bodies = [export(i * batch // run_spans, batch, run_spans) for i in range(spans // batch)]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
    try:
        async with aiohttp.ClientSession() as http:
            start = time.perf_counter()
            for body in bodies:
                async with http.post(
                    f"http://127.0.0.1:{port}/v1/traces", data=body, headers=headers
                ) as reply:
                    assert reply.status == 200, await reply.text()
            elapsed = time.perf_counter() - start
    finally:
        await runner.cleanup()
    stored = store.query("SELECT count(*) AS n FROM spans", ())[0]["n"]
    assert stored == len(bodies) * batch, stored
    return len(bodies) * batch / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--run-spans", type=int, default=8)
    args = parser.parse_args()
    server = PostgresServer.start(fsync=True)
    rates = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, location in (
                ("SQLite (WAL)", Path(tmp) / "runs.db"),
                ("PostgreSQL 15", server.create_database()),
            ):
                store = RunStore(location, namespace=None)
                try:
                    rates[label] = await measure(store, args.spans, args.batch, args.run_spans)
                finally:
                    store.close()
    finally:
        server.stop()
    print(
        f"{args.spans // args.batch * args.batch} spans in OTLP/protobuf exports of "
        f"{args.batch}, runs of {args.run_spans} spans, one exporter, loopback, "
        f"{os.cpu_count()} CPUs shared with other work"
    )
    for label, rate in rates.items():
        print(f"{label:<16} {rate:>9.0f} spans/s")
    first = next(iter(rates.values()))
    print(f"ratio PostgreSQL/SQLite: {rates['PostgreSQL 15'] / first:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
