"""The bot's own records on each database: a SQLite file, or PostgreSQL shared by several
bot processes (installations, approvals, tokens, proposals, evaluation spend, commits
checked, auto-apply records)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flujo.bot.applications import Application, Applications
from flujo.bot.records import VERSION, RecordsError
from flujo.bot.settings import BotSettings
from flujo.bot.state import BotState


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where the records go: the SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "bot.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_what_one_process_records_another_reads(records: str | Path) -> None:
    first, second = BotState(records), BotState(records)
    try:
        await first.save_installation(42, "acme", ["acme/a"])
        await first.change_repositories(42, ["acme/b"], ["acme/a"])
        await first.record_override("acme/a", 7, "max-cost", "ada", "2026-12-06", "abc")
        await first.record_override("acme/a", 7, "max-cost", "bob", "2026-12-07", "def")
        await first.record_eval_spend(42, "acme/a", 0.25, 3, month="2026-12")
        await first.record_eval_spend(42, "acme/a", 0.5, 2, month="2026-12")
        await first.record_proposal("acme/a", "flujo/suggest/x", "a.yml", "x", [{"op": "add"}], 3)
        await first.record_proposal("acme/a", "flujo/suggest/x", "a.yml", "x", [], 4)
        await first.close_proposal("acme/a", "flujo/suggest/x", "merged")
        await first.mark_checked("acme/a", "abc", "")
        await first.mark_checked("acme/a", "abc", "")
        token = first.issue_token(42, "acme/a")

        (found,) = await second.installations()
        assert (found.id, found.account, found.repositories) == (42, "acme", ("acme/b",))
        approved = await second.overrides("acme/a", {"max-cost": 7}, "def")
        assert approved["max-cost"].by == "bob"  # the later approval replaced the first
        assert await second.overrides("acme/a", {"max-cost": 7}, "abc") == {}
        assert await second.eval_spend(42, "2026-12") == {"acme/a": 0.75}
        proposal = await second.proposal("acme/a", "flujo/suggest/x")
        assert proposal is not None and (proposal.number, proposal.state) == (4, "merged")
        assert await second.was_checked("acme/a", "abc", "")
        assert await second.token_owner(token) == (42, "acme/a")
        await second.suspend(42, True)
        assert (await first.installations())[0].suspended
        await second.remove_installation(42)
        assert await first.installations() == []
    finally:
        first.close()
        second.close()


async def test_auto_apply_records_are_shared(records: str | Path) -> None:
    first, second = Applications(records), Applications(records)
    app = Application(
        "acme/a", 5, 42, "flujo/suggest/x", "a.yml", "x", [], "low", "auto", "why", "waiting", "s"
    )
    try:
        await first.save(app, 1.0)
        await first.save(app.with_line("merged"), 2.0, merged_day="2026-12-06")
        await first.save(app.with_line("watching"), 3.0)  # keeps the day it was merged
        assert await second.merged_on("acme/a", "2026-12-06") == 1
        found = await second.get("acme/a", 5)
        assert found is not None and found.log == ("watching",)
        assert [a.number for a in await second.all(("waiting",))] == [5]
    finally:
        first.close()
        second.close()


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from flujo.bot.state import BotState

    async def main(location, worker):
        state = BotState(location)
        for i in range(20):
            await state.record_eval_spend(42, "acme/a", 0.5, 1, month="2026-12")
            await state.change_repositories(42, [f"acme/w{worker}-{i}"], [])
        state.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_several_processes_lose_no_update(records: str | Path) -> None:
    """Four processes start on a new database at once (as docker-compose.yml's do) and add
    to the same spend and the same installation's repositories (read-modify-write):
    nothing is lost."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(records), str(n)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    results = [(p.communicate(timeout=300)[1], p.returncode) for p in processes]
    assert [code for _, code in results] == [0, 0, 0, 0], "\n".join(e for e, _ in results)
    state = BotState(records)
    try:
        assert asyncio.run(state.eval_spend(42, "2026-12")) == {"acme/a": 40.0}
        (installation,) = asyncio.run(state.installations())
        assert len(installation.repositories) == 80
    finally:
        state.close()


def test_the_settings_put_the_records_with_the_queue(tmp_path: Path) -> None:
    assert BotSettings(db=tmp_path / "bot.db").records() == tmp_path / "bot.db"
    url = "postgresql://flujo@127.0.0.1:5432/flujo"
    assert BotSettings(db=tmp_path / "bot.db", database_url=url).records() == url


async def test_a_sqlite_file_from_before_versions_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with sqlite3.connect(path) as db:  # approvals did not name their commit yet
        db.execute(
            "CREATE TABLE overrides (repo TEXT NOT NULL, pull INTEGER NOT NULL, policy TEXT NOT "
            "NULL, by TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (repo, pull, policy))"
        )
        db.execute("INSERT INTO overrides VALUES ('acme/a', 1, 'p', 'ada', 'then')")
    db.close()
    state = BotState(path)
    try:
        await state.record_override("acme/a", 2, "p", "ada", "now", "abc")
        assert await state.overrides("acme/a", {"p": 1}, "abc") == {}  # an old one names no commit
        assert list(await state.overrides("acme/a", {"p": 2}, "abc")) == ["p"]
    finally:
        state.close()


_VERSION_1 = (
    "CREATE TABLE bot_meta (key TEXT PRIMARY KEY, value TEXT)",
    "INSERT INTO bot_meta VALUES ('version', '1')",
    "CREATE TABLE suggestion_waiting (repo TEXT NOT NULL, suggestion TEXT NOT NULL, spec TEXT"
    " NOT NULL, title TEXT NOT NULL, branch TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT"
    " NOT NULL, until REAL, since REAL NOT NULL, PRIMARY KEY (repo, suggestion))",
    "CREATE TABLE dashboard_waiting (repo TEXT NOT NULL, suggestion TEXT NOT NULL, spec TEXT"
    " NOT NULL, title TEXT NOT NULL, reason TEXT NOT NULL, patch TEXT NOT NULL, at REAL NOT"
    " NULL, PRIMARY KEY (repo, suggestion))",
    # x: held back by the schedule (both lists); y: below the agreement floor (the
    # dashboard's only)
    "INSERT INTO suggestion_waiting VALUES ('acme/a', 'x', 'a.yml', 'Cap', 'flujo/suggest/x',"
    " 'schedule', 'outside the schedule', 2000, 1500)",
    "INSERT INTO dashboard_waiting VALUES ('acme/a', 'x', 'a.yml', 'Cap',"
    ' \'outside the schedule\', \'[{"op": "remove", "path": "/a"}]\', 1600)',
    "INSERT INTO dashboard_waiting VALUES ('acme/a', 'y', 'b.yml', 'Swap',"
    ' \'agreement 0.70 is below the floor\', \'[{"op": "remove", "path": "/b"}]\', 1600)',
)
"""The two lists of what waits as version 1 of the records kept them."""


async def test_what_waited_in_records_of_version_1_still_waits(records: str | Path) -> None:
    """The dashboard's list of waiting suggestions was a table of its own beside the
    pacing's; records of that version open with every suggestion still listed once, with
    its reason and patch."""
    from flujo.bot.records import NAMESPACE, write
    from flujo.engine.store_db import is_postgres, open_database

    old = (
        open_database(str(records), NAMESPACE)
        if is_postgres(records)
        else open_database(Path(records))
    )
    for statement in _VERSION_1:
        write(old, statement)
    old.close()
    state = BotState(records)
    try:
        x, y = await state.waiting("acme/a")
        assert (x.suggestion, x.reason, x.detail, x.until, x.since, x.branch) == (
            "x",
            "schedule",
            "outside the schedule",
            2000,
            1500,
            "flujo/suggest/x",
        )
        assert x.patch == [{"op": "remove", "path": "/a"}] and x.paced
        assert (y.suggestion, y.spec, y.title, y.reason, y.detail, y.since) == (
            "y",
            "b.yml",
            "Swap",
            "not_proposed",
            "agreement 0.70 is below the floor",
            1600,
        )
        assert y.patch == [{"op": "remove", "path": "/b"}] and not y.paced
        assert not state._db.query(
            "SELECT 1 FROM bot_meta WHERE key = 'version' AND value <> ?", (str(VERSION),)
        )
    finally:
        state.close()


def test_records_written_by_a_newer_flujo_are_refused(records: str | Path) -> None:
    BotState(records).close()
    from flujo.bot.records import open_records, write

    database = open_records(records)
    write(database, "UPDATE bot_meta SET value = '99' WHERE key = 'version'")
    database.close()
    with pytest.raises(RecordsError, match=f"version 99, this Flujo needs {VERSION}"):
        BotState(records)


async def test_flujo_bot_jobs_scheduled_reads_the_postgresql_queue_and_records(
    postgres_url: str,
) -> None:
    """`flujo bot jobs --scheduled` beside bots on PostgreSQL: the timer is in the
    PostgreSQL queue, the auto-apply record in the records there (no local file)."""
    import json
    import time

    from click.testing import CliRunner

    from flujo.bot.auto_apply import AUTO_APPLY_EVENT
    from flujo.bot.postgres_queue import PostgresQueue
    from flujo.bot.queue import Delivery
    from flujo.cli import cli

    due = time.time() + 3600
    queue = PostgresQueue(postgres_url)
    apps = Applications(postgres_url)
    try:
        body = b'{"repository": {"full_name": "acme/a"}}'
        timer = Delivery(f"auto-apply:acme/a#5:merge:{due:.0f}", AUTO_APPLY_EVENT, body, due, due)
        assert await queue.enqueue(timer)
        app = Application(
            "acme/a",
            5,
            42,
            "flujo/suggest/x",
            "a.yml",
            "x",
            [],
            "low",
            "auto",
            "why",
            "waiting",
            "",
        )
        await apps.save(app.with_line("Waiting: outside the window"), 1.0)
    finally:
        await queue.close()
        apps.close()
    env = {"FLUJO_BOT_DATABASE_URL": postgres_url, "FLUJO_BOT_DB": "/nonexistent/bot.db"}
    # the command runs its own event loop, as from a shell: not inside this test's
    listed = await asyncio.to_thread(
        CliRunner().invoke, cli, ["bot", "jobs", "--scheduled", "--json"], env=env
    )
    assert listed.exit_code == 0, listed.output
    (step,) = json.loads(listed.output)
    assert (step["kind"], step["repo"], step["number"], step["state"]) == (
        "merge",
        "acme/a",
        5,
        "waiting",
    )
    assert step["last"] == "Waiting: outside the window"


async def test_pacing_and_dashboard_records_are_shared(records: str | Path) -> None:
    from flujo.bot.dashboard_state import Dashboards
    from flujo.bot.forge import CheckOutput
    from flujo.bot.pacing import Waiting

    first, second = BotState(records), BotState(records)
    boards, other = Dashboards(records), Dashboards(records)
    try:
        await first.record_opening("acme/a", "flujo/suggest/x", 1000.0)
        patch = [{"op": "replace", "path": "/steps/0/uses", "value": "cheap"}]
        held = Waiting(
            "x", "a.yml", "Cap tokens", "flujo/suggest/x", "schedule", "after 9", 2e3, patch=patch
        )
        floor = Waiting.not_proposed("y", "a.yml", "Swap", "agreement below the floor", [])
        await first.set_waiting("acme/a", [held], 1500.0)
        await first.set_waiting("acme/a", [held, floor], 1600.0)  # x keeps its `since`
        assert await second.openings("acme/a", 900.0) == [1000.0]
        found, other_one = await second.waiting("acme/a")
        assert (found.reason, found.until, found.since, found.patch) == (
            "schedule",
            2e3,
            1500.0,
            patch,
        )
        assert (other_one.reason, other_one.detail) == ("not_proposed", "agreement below the floor")
        await second.remove_waiting("acme/a", ["x"])
        assert [w.suggestion for w in await first.waiting("acme/a")] == ["y"]

        await boards.save_issue("acme/a", 42, 7, True)
        failed = CheckOutput("flujo/test", "failure", "1 test failed", "")
        for n in range(25):
            await boards.record_checks("acme/a", f"sha{n}", [failed])
        await boards.record_checks(
            "acme/a", "sha24", [CheckOutput("flujo/test", "success", "", "")]
        )
        issue = await other.issue("acme/a")
        assert issue is not None and (issue.number, issue.enabled) == (7, True)
        shas = [f.sha for f in await other.check_failures("acme/a")]
        assert (
            len(shas) == 19 and "sha24" not in shas and "sha4" not in shas
        )  # newest 20, less the fixed
    finally:
        for each in (first, second, boards, other):
            each.close()
