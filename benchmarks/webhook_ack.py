"""Webhook acknowledgement: Flujo's durable `/webhooks` vs a bare aiohttp handler.

Both servers run in their own process on loopback; this process sends the same burst of
signed, real GitHub `push` payloads (vendored in tests/github/webhooks/push/) to each, with
a fixed number of requests in flight, and prints requests/s, p50/p99 latency, the ratio, and
the CPU time each server (and, with `--postgres`, the database server) spent per request.
The bare handler only verifies the signature; Flujo's also stores every delivery durably
(SQLite, grouped commits) before answering 202. Workers are not started, so the figure is
the acknowledgement path alone.

    .venv/bin/python benchmarks/webhook_ack.py [--requests 4000] [--concurrency 32]
    .venv/bin/python benchmarks/webhook_ack.py --postgres   # the queue on PostgreSQL
    .venv/bin/python benchmarks/webhook_ack.py --postgres --baseline ../main/.venv/bin/python
    .venv/bin/python benchmarks/webhook_ack.py --postgres --compare-ack-connections 2

With `--postgres` a PostgreSQL server (fsync on) is started in a temporary folder
(tests/support/postgres.py) and Flujo's queue is procrastinate's on it: the deliveries that
arrive together are stored in its inbox in one transaction (group commit), committed
before any of them is answered; the output says how many transactions stored them. Their
procrastinate jobs are made later by the workers' forwarder, which this benchmark does not
start: after the rounds it forwards the stored deliveries itself, in batches of three
sizes, and prints what that cost per delivery (this process's CPU, standing for a
worker's, and the database's), so that the work moved off the acknowledgement is counted
too. With two acknowledgement connections (`--ack-connections 2`, or beside one:
`--compare-ack-connections 2`) the next group is stored while the previous one commits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret"

BARE = """
import hashlib, hmac, sys
from aiohttp import web
key = sys.argv[2].encode()
async def handle(request):
    body = await request.read()
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return web.json_response({"error": "bad signature"}, status=401)
    return web.json_response({"ok": True}, status=202)
app = web.Application(client_max_size=25 * 1024 * 1024 + 1)
app.router.add_post("/webhooks", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

FLUJO = """
import sys
from pathlib import Path
from aiohttp import web
from flujo.bot.app import Bot, create_app
from flujo.bot.settings import BotSettings

class NoWorkers(Bot):
    async def start(self):  # measure the acknowledgement path alone
        pass

url = sys.argv[4] if len(sys.argv) > 4 else None
settings = BotSettings(webhook_secret=sys.argv[2], db=Path(sys.argv[3]), database_url=url)
app = create_app(settings, NoWorkers(settings))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def payloads() -> list[bytes]:
    folder = ROOT / "tests" / "github" / "webhooks" / "push"
    return [p.read_bytes() for p in sorted(folder.glob("*.json"))]


def sign(body: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


async def wait_ready(port: int) -> None:
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def burst(
    port: int, bodies: list[bytes], total: int, concurrency: int
) -> tuple[float, list[float]]:
    url = f"http://127.0.0.1:{port}/webhooks"
    signed = [(b, sign(b)) for b in bodies]
    latencies: list[float] = []
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for n in counter:
                body, signature = signed[n % len(signed)]
                headers = {
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": signature,
                    "Content-Type": "application/json",
                }
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"unexpected {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


class Server:
    def __init__(
        self,
        script: str,
        extra: list[str],
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        root = ROOT if python == sys.executable else Path(python).parents[2]
        env = dict(os.environ, PYTHONPATH=str(root), **(env or {}))
        self.process = subprocess.Popen(
            [python, "-c", script, str(self.port), SECRET, *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.rates: list[float] = []
        self.latencies: list[float] = []
        self.cpu_s = 0.0
        """CPU time (user + system) the server spent in the measured rounds."""
        self.database_cpu_s = 0.0
        self.client_cpu_s = 0.0
        """CPU time this process (the load generator) spent sending to this server."""
        self.requests = 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()

    def figures(self) -> dict[str, float]:
        latencies = sorted(self.latencies)
        return {
            "rps": statistics.median(self.rates),
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "cpu_ms_per_request": self.cpu_s / self.requests * 1000,
            "database_cpu_ms_per_request": self.database_cpu_s / self.requests * 1000,
            "client_cpu_ms_per_request": self.client_cpu_s / self.requests * 1000,
        }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def database_pids(folder: Path | None) -> list[int]:
    """The PostgreSQL server's processes (the postmaster and its backends)."""
    if folder is None:
        return []
    main = int((folder / "data" / "postmaster.pid").read_text().split()[0])
    found = [main]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == main:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


async def forwarding_cost(
    url: str, folder: Path, per_commit: int
) -> list[tuple[int, int, float, float]]:
    """The work the acknowledgement leaves to the workers, measured: the deliveries stored
    by flujo in the rounds, forwarded from the inbox to procrastinate (ordering key, job)
    by `PostgresQueue.forward` in this process, a third each in batches of one group commit
    (a forwarder woken by each), of 50 (what it gathers in its 50 ms at 1,000 deliveries
    a second) and of 500 (a backlog). Returns (batch, deliveries, this process's CPU s,
    the database's CPU s) for each."""
    import psycopg

    from flujo.bot.postgres_queue import PostgresQueue

    measured = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        cursor = await db.execute("SELECT count(*) FROM flujo_deliveries WHERE key IS NULL")
        waiting = int((await cursor.fetchone() or (0,))[0])
        for batch, share in ((per_commit, waiting // 3), (50, waiting // 3), (500, waiting)):
            queue = PostgresQueue(url, forward_batch=batch)
            await queue.open()
            pids = database_pids(folder)
            before = time.process_time(), cpu_seconds(pids)
            while queue.forwarded < share and await queue.forward(db):
                pass
            spent = time.process_time() - before[0], cpu_seconds(pids) - before[1]
            measured.append((batch, queue.forwarded, *spent))
            await queue.close()
    return measured


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="the queue on PostgreSQL")
    parser.add_argument(
        "--ack-connections",
        type=int,
        default=1,
        metavar="N",
        help="with --postgres: groups committed at once (FLUJO_BOT_ACK_CONNECTIONS)",
    )
    parser.add_argument(
        "--compare-ack-connections",
        type=int,
        metavar="N",
        help="with --postgres: also measure Flujo with N acknowledgement connections, in the "
        "same rounds (on a database of its own)",
    )
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="also measure the Flujo of another checkout (its .venv/bin/python), in the "
        "same rounds: before and after a change, under the same load",
    )
    args = parser.parse_args()
    bodies = payloads()
    postgres = None
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.support.postgres import PostgresServer

        postgres = PostgresServer.start(fsync=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bot.db"
        url = [postgres.url()] if postgres else []
        connections = {"FLUJO_BOT_ACK_CONNECTIONS": str(args.ack_connections)}
        servers = {
            "bare": Server(BARE, []),
            "flujo": Server(FLUJO, [str(db), *url], env=connections),
        }
        if args.compare_ack_connections and postgres:
            other = [str(Path(tmp) / "compare.db"), postgres.create_database()]
            compare = {"FLUJO_BOT_ACK_CONNECTIONS": str(args.compare_ack_connections)}
            servers["compare"] = Server(FLUJO, other, env=compare)
        if args.baseline:
            other = [postgres.create_database()] if postgres else []
            baseline = [str(Path(tmp) / "baseline.db"), *other]
            servers["baseline"] = Server(FLUJO, baseline, python=args.baseline)
        try:
            for server in servers.values():
                await wait_ready(server.port)
                await burst(server.port, bodies, min(500, args.requests), args.concurrency)
            # Alternate rounds so that noise from other processes hits both alike.
            folder = postgres.folder if postgres else None
            for _ in range(args.rounds):
                for server in servers.values():
                    pids = database_pids(folder)
                    before = cpu_seconds([server.process.pid]), cpu_seconds(pids)
                    sending = time.process_time()
                    rate, latencies = await burst(
                        server.port, bodies, args.requests, args.concurrency
                    )
                    server.client_cpu_s += time.process_time() - sending
                    server.cpu_s += cpu_seconds([server.process.pid]) - before[0]
                    server.database_cpu_s += cpu_seconds(pids) - before[1]
                    server.requests += args.requests
                    server.rates.append(rate)
                    server.latencies.extend(latencies)
        finally:
            for server in servers.values():
                server.stop()
        forwarding: list[tuple[int, int, float, float]] = []
        if postgres is not None:
            import psycopg

            with psycopg.connect(postgres.url()) as connection:
                found = connection.execute(
                    "SELECT count(*), count(DISTINCT xmin::text) FROM flujo_deliveries"
                ).fetchone()
            stored, commits = found if found else (0, 0)
            try:
                per_commit = max(1, round(stored / max(commits, 1)))
                forwarding = await forwarding_cost(postgres.url(), postgres.folder, per_commit)
            finally:
                postgres.stop()
        else:
            import sqlite3

            commits = 0
            with sqlite3.connect(db) as connection:
                stored = connection.execute("SELECT count(*) FROM jobs").fetchone()[0]
    bare, flujo = servers["bare"].figures(), servers["flujo"].figures()
    rows = [("bare aiohttp (HMAC only)", bare), ("flujo /webhooks (durable)", flujo)]
    if "compare" in servers:
        label = f"flujo, {args.compare_ack_connections} ack connections"
        rows.append((label, servers["compare"].figures()))
    if args.baseline:
        rows.append(("flujo of --baseline", servers["baseline"].figures()))
    sizes = [len(b) for b in bodies]
    print(
        f"{args.rounds} alternating rounds x {args.requests} signed push deliveries "
        f"({min(sizes)}-{max(sizes)} bytes), {args.concurrency} in flight, loopback, queue on "
        + ("PostgreSQL 15 (fsync on, same machine)" if postgres else "SQLite")
    )
    database = f" {'PG ms/req':>10}" if postgres else ""
    print(f"{'server':<30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}{database}")
    for label, row in rows:
        database = f" {row['database_cpu_ms_per_request']:>10.3f}" if postgres else ""
        print(
            f"{label:<30} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['cpu_ms_per_request']:>11.3f}{database}"
        )
    if postgres is not None:
        print(
            "PostgreSQL server CPU per flujo request: "
            f"{flujo['database_cpu_ms_per_request']:.3f} ms"
        )
    print(
        "load generator CPU per request (this process, same machine): "
        + ", ".join(f"{row['client_cpu_ms_per_request']:.3f} ms" for _, row in rows)
    )
    busy = [
        (row["cpu_ms_per_request"] + row["database_cpu_ms_per_request"]) * row["rps"] / 1000
        + row["client_cpu_ms_per_request"] * row["rps"] / 1000
        for _, row in rows
    ]
    print(
        "cores busy in its rounds (server + database + load generator CPU per request x "
        "req/s; this machine has 2): " + ", ".join(f"{cores:.2f}" for cores in busy)
    )
    print(f"deliveries stored durably by flujo: {stored}")
    if postgres is not None:  # each transaction has its own xmin
        print(
            f"transactions that stored them: {commits} ({stored / max(commits, 1):.1f} per commit)"
        )
    for batch, count, bot_s, database_s in forwarding:
        print(
            f"forwarding from the inbox (done by the workers, not above), batches of {batch}: "
            f"{bot_s / count * 1000:.3f} ms bot CPU + {database_s / count * 1000:.3f} ms "
            f"PostgreSQL CPU per delivery ({count} deliveries)"
        )
    print(f"ratio flujo/bare throughput: {flujo['rps'] / bare['rps']:.2f}x (aim >= 0.8x)")
    if args.baseline:
        before = servers["baseline"].figures()
        print(f"ratio baseline/bare throughput: {before['rps'] / bare['rps']:.2f}x")
    print(json.dumps({label: row for label, row in rows}))


if __name__ == "__main__":
    asyncio.run(main())
