"""`--store` takes a PostgreSQL URL as well as a SQLite file: the URL reaches the store as
written (as a path, `postgresql://host/db` would lose a slash)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.store import RunStore
from tests.support.specs import ROOT

SPEC = str(ROOT / "examples" / "support_triage.yaml")


def test_runs_go_to_and_come_from_a_postgresql_url_given_as_store(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(
        cli,
        [
            "run",
            SPEC,
            "--fake",
            "--input",
            '{"ticket": "I was charged twice."}',
            "--store",
            postgres_url,
            "--json",
        ],
    )
    assert run.exit_code == 0, run.output
    run_id = json.loads(run.stdout)["run_id"]
    listed = CliRunner().invoke(cli, ["runs", "list", "--store", postgres_url, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
    database = RunStore(postgres_url)
    try:
        assert [r["run_id"] for r in database.list_runs(5)] == [run_id]  # there, not in a file
    finally:
        database.close()
    assert list(tmp_path.iterdir()) == []
