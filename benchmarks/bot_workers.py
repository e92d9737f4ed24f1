"""Deliveries fully handled per second by 1, 2 and 4 `flujo bot worker` processes on one
PostgreSQL database, on the same burst.

A PostgreSQL server (fsync on) is started in a temporary folder and the fake GitHub
(tests/support/fakegithub: every request checked against GitHub's OpenAPI description)
runs in this process. For each number of workers: a new database, N `flujo bot worker`
processes (4 jobs at a time each) started, then the clock runs from queueing the burst
(`PostgresQueue.enqueue`: push deliveries to 20 repositories, commits without specs, so
each delivery is three check runs) until every delivery is done. This process's CPU
time over that span is the fake GitHub's: when it nears the wall time, the fake is the
bottleneck, not the bot.

    .venv/bin/python benchmarks/bot_workers.py [--deliveries 200] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flujo.bot.postgres_queue import PostgresQueue, read_jobs  # noqa: E402
from flujo.bot.queue import Delivery  # noqa: E402
from tests.support.bot_process import start_bot  # noqa: E402
from tests.support.fakegithub.server import FakeGitHub  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

REPOS = 20


async def one_round(
    fake: FakeGitHub, server: PostgresServer, folder: Path, deliveries: int, workers: int
) -> dict[str, float]:
    url = server.create_database()
    per_repo = deliveries // REPOS
    bodies = []
    for r in range(REPOS):
        repo = f"acme/w{workers}r{r:02d}"
        fake.create_repo(repo, {"README.md": "hi\n"}, installation_id=42)
        before = fake.branch_sha(repo, "main")
        for i in range(per_repo):
            sha = fake.commit(repo, {"README.md": f"v{i}\n"})
            payload = fake.webhook("push", "payload", repo=repo, sha=sha, before=before)
            bodies.append(json.dumps(payload).encode())
    total = len(bodies)
    settings = {"database_url": url, "db": str(folder / f"state{workers}.db"), "workers": "4"}
    processes = [  # started (imports, fork server) before the clock runs
        await start_bot(fake, folder / f"n{workers}w{i}", "worker", **settings)
        for i in range(workers)
    ]
    calls = len(fake.requests)
    cpu, wall = time.process_time(), time.perf_counter()
    queue = PostgresQueue(url)
    for body in bodies:
        await queue.enqueue(Delivery(os.urandom(16).hex(), "push", body, time.time()))
    await queue.close()
    try:
        while True:
            jobs = await asyncio.to_thread(read_jobs, url, ("done", "dead"), total)
            if len(jobs) >= total:
                break
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    finally:
        for process in processes:
            process.stop()
    dead = sum(1 for j in jobs if j.state == "dead")
    return {
        "workers": workers,
        "deliveries": total,
        "dead": dead,
        "seconds": wall,
        "per_s": total / wall,
        "github_requests": len(fake.requests) - calls,
        "fake_cpu_share": cpu / wall,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    server = PostgresServer.start(fsync=True)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with FakeGitHub(root=Path(tmp) / "fake") as fake:
                fake.add_installation(42, "acme")
                for n in args.workers:
                    rows.append(await one_round(fake, server, Path(tmp), args.deliveries, n))
    finally:
        server.stop()
    print(
        f"{args.deliveries} push deliveries to {REPOS} repositories, fake GitHub in this "
        f"process, PostgreSQL 15 (fsync on), {os.cpu_count()} CPUs shared with other work"
    )
    print(f"{'workers':>7} {'deliveries/s':>13} {'x 1 worker':>10} {'fake CPU':>9} {'dead':>5}")
    base = rows[0]["per_s"]
    for row in rows:
        print(
            f"{row['workers']:>7.0f} {row['per_s']:>13.1f} {row['per_s'] / base:>10.2f}"
            f" {row['fake_cpu_share']:>8.0%} {row['dead']:>5.0f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    asyncio.run(main())
