"""The isolated suggestion cycle's copy of a repository's run store on PostgreSQL: only
that repository's rows go in, and only what the cycle wrote to the store's own tables
comes back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flujo.bot.store_extract import CHANGES, extract, merge_back
from flujo.engine.store import SCHEMA_VERSION, RunStore

SPEC_ROW = "INSERT INTO specs VALUES (?, 'a.yml', 'a', 'name: a', 1.0)"
RUN_ROW = "INSERT INTO runs (run_id, spec_sha256, status, started_at) VALUES (?, ?, ?, 1.0)"


def add_run(store: RunStore, run_id: str, sha: str) -> None:
    store.execute(SPEC_ROW.replace("?", f"'{sha}'", 1) + " ON CONFLICT DO NOTHING")
    store.execute(RUN_ROW, [(run_id, sha, "ok")])


def test_the_cycle_reads_its_repository_and_its_writes_come_back(
    postgres_url: str, tmp_path: Path
) -> None:
    ours = RunStore(postgres_url, namespace="acme/flows")
    theirs = RunStore(postgres_url, namespace="other/secret")
    try:
        add_run(ours, "r1", "s1")
        add_run(theirs, "x1", "t1")
        made = extract(ours, tmp_path / "runs.db")
        assert made.rows == 2  # one spec, one run: nothing of the other repository

        # What the child does with the file: a new run, a changed one, an evaluation, and
        # writes the bot never asked for.
        with sqlite3.connect(tmp_path / "runs.db") as child:
            child.execute(SPEC_ROW.replace("?", "'s2'", 1))
            child.execute(RUN_ROW, ("r2", "s2", "ok"))
            child.execute("UPDATE runs SET status = 'failed' WHERE run_id = 'r1'")
            child.execute(
                "INSERT INTO evaluations VALUES ('a.yml', 's1', 's2', 2.0, '{\"agreement\": 1}')"
            )
            child.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
            child.execute("CREATE TABLE evil (x TEXT)")
            child.execute(f"INSERT INTO {CHANGES} VALUES ('evil', 1), ('meta', 1), ('runs', 'x')")
        child.close()

        assert merge_back(made, ours) == 4  # the spec, two runs, the evaluation
        runs = {r["run_id"]: r["status"] for r in ours.query("SELECT run_id, status FROM runs", ())}
        assert runs == {"r1": "failed", "r2": "ok"}
        assert len(ours.query("SELECT report FROM evaluations", ())) == 1
        (version,) = ours.query("SELECT value FROM meta WHERE key = 'schema_version'", ())
        assert version["value"] == str(SCHEMA_VERSION)
        assert [r["run_id"] for r in theirs.query("SELECT run_id FROM runs", ())] == ["x1"]
    finally:
        ours.close()
        theirs.close()


def test_a_file_store_is_handed_over_as_it_is(tmp_path: Path) -> None:
    import asyncio

    from flujo.bot.store_extract import cycle_store

    store = RunStore(tmp_path / "runs.db")

    async def location() -> str:
        async with cycle_store(store, tmp_path / "extracts") as found:
            return found

    try:
        assert asyncio.run(location()) == str(tmp_path / "runs.db")
        assert not (tmp_path / "extracts").exists()
    finally:
        store.close()
