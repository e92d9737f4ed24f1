"""Several bot processes on one PostgreSQL database, under faults: a burst of 500 push
deliveries to 20 repositories while one of two workers is killed (SIGKILL), the database
restarts, and the fake GitHub answers with a storm of 5xx and 429. Every delivery is
handled exactly once in effect (three check runs per commit, never more, every delivery
done), and each repository's deliveries are handled in the order they were acknowledged.

The processes are the real `flujo bot serve` and `flujo bot worker`; the sender retries a
delivery that was not acknowledged, as GitHub redelivers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from flujo.bot.postgres_queue import read_jobs
from tests.support.bot_process import BotProcess, start_bot
from tests.support.fakegithub.server import FakeGitHub
from tests.support.postgres import PostgresServer

REPOS = [f"acme/r{i:02d}" for i in range(20)]
PER_REPO = 25  # 500 deliveries
NAMES = ("flujo/validate", "flujo/test", "flujo/policy")


async def _send(fake: FakeGitHub, bot: BotProcess, repo: str, shas: list[str]) -> None:
    """Push deliveries of one repository, in order, each until acknowledged."""
    before = fake.branch_sha(repo, "main")
    for sha in shas:
        payload = fake.webhook("push", "payload", repo=repo, sha=sha, before=before)
        delivery = os.urandom(16).hex()
        for _ in range(200):
            try:
                status, _ = await fake.deliver(
                    f"{bot.url}/webhooks", "push", payload, delivery_id=delivery
                )
            except OSError:
                status = 0
            if status in (200, 202):
                break
            await asyncio.sleep(0.1)  # not stored (the database is away): GitHub redelivers
        else:
            raise AssertionError(f"delivery to {repo} never acknowledged:\n{bot.output()[-2000:]}")


def _first_check_run(fake: FakeGitHub, repo: str, sha: str) -> int:
    return min(run.id for run in fake.check_runs_for(repo, sha))


async def test_a_burst_survives_a_killed_worker_a_database_restart_and_a_github_storm(
    fake_github: FakeGitHub, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    fake = fake_github
    fake.add_installation(42, "acme")
    commits: dict[str, list[str]] = {}
    for repo in REPOS:
        fake.create_repo(repo, {"README.md": "hi\n"}, installation_id=42)
        commits[repo] = fake.commits(repo, [{"README.md": f"v{i}\n"} for i in range(PER_REPO)])
    url = postgres_server.create_database()
    settings = {
        "database_url": url,
        "db": str(tmp_path / "state.db"),
        "lease_s": "2",
        "max_attempts": "20",
        "retry_base_s": "0.05",
        "max_rate_limit_wait_s": "5",
    }
    web = await start_bot(fake, tmp_path / "web", "serve", **settings)
    doomed = await start_bot(fake, tmp_path / "w1", "worker", **settings)
    survivor = await start_bot(fake, tmp_path / "w2", "worker", **settings)
    try:
        # the storm: 5xx and 429 on the checks' requests, mixed with good answers
        fake.fail("POST", "/repos/*/check-runs", 502, times=40)
        fake.fail("PATCH", "/repos/*/check-runs/*", 503, times=40)
        fake.fail("*", "/repos/*/git/*", 429, headers={"Retry-After": "1"}, times=40)
        sending = asyncio.gather(*(_send(fake, web, r, commits[r]) for r in REPOS))
        while len(fake.calls("POST", "/repos/{owner}/{repo}/check-runs")) < 150:
            await asyncio.sleep(0.05)
        os.kill(doomed.process.pid, signal.SIGKILL)  # mid-job: its jobs wait for the lease
        while len(fake.calls("POST", "/repos/{owner}/{repo}/check-runs")) < 600:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(postgres_server.restart, 1.0)
        await sending
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            jobs = await asyncio.to_thread(read_jobs, url, (), 1000)
            if len(jobs) == 500 and all(j.state in ("done", "dead") for j in jobs):
                break
            await asyncio.sleep(0.5)
        jobs = await asyncio.to_thread(read_jobs, url, (), 1000)
        assert len(jobs) == 500
        assert [(j.key, j.state, j.last_error) for j in jobs if j.state != "done"] == []
        for repo, shas in commits.items():
            for sha in shas:
                runs = fake.check_runs_for(repo, sha)
                assert sorted(r.name for r in runs) == sorted(NAMES), (repo, sha)
                assert all(r.status == "completed" for r in runs)
            firsts = [_first_check_run(fake, repo, sha) for sha in shas]
            assert firsts == sorted(firsts), f"{repo}: deliveries handled out of order"
        assert fake.take_violations() == []
        assert doomed.process.poll() == -signal.SIGKILL
    finally:
        for process in (web, doomed, survivor):
            process.stop()
