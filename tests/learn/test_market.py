"""The skill marketplace: characterisation, badges, telemetry blending, `flujo market`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.fake_openai import ChatRequest, FakeBehaviour, FakeOpenAI
from flujo.engine.session import SessionOptions, run_many
from flujo.learn.characterize import characterize
from flujo.learn.market import observed
from flujo.spec.load import load_pipeline
from flujo.spec.marketplace import MarketplaceQuery
from flujo.spec.registry import StepRegistry
from flujo.spec.skill_figures import MIN_RUNS, Manifest, listings, offers


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_fresh_install_plans_text_to_validated_sql_and_says_what_was_measured() -> None:
    code, out, _ = invoke("market", "query", "--from", "str", "--to", "ValidatedSQL")
    assert code == 0
    first = out.split("\n2.")[0]
    assert first.startswith("1. text_to_sql_mini → sql_validate   (str → SQL → ValidatedSQL)")
    assert "success not measured" in first  # the shipped baseline ran on the fake model
    assert "text_to_sql_mini: baseline only (8 samples on the fake model" in first
    assert "sql_validate: baseline only (4 samples)" in first


def test_a_success_floor_cannot_be_met_by_figures_nobody_measured() -> None:
    code, out, err = invoke(
        "market", "query", "--from", "str", "--to", "ValidatedSQL", "--min-success", "0.9"
    )
    assert code == 1 and out == ""
    assert "left out, their success rate was not measured: " in err
    assert "text_to_sql" in err


SQL_FOR = {"How many customers are there?": "SELECT count(*) FROM customers"}


def answers(chat: ChatRequest) -> str:
    """A provider whose big model writes SQL that compiles, and whose small one gets the
    column names wrong on every other question."""
    question = chat.prompt.strip()
    good = "SELECT count(*) FROM orders"
    if chat.model == "gpt-4o-mini" and len(question) % 2 == 0:
        return "SELECT nonexistent FROM orders"
    return SQL_FOR.get(question, good)


async def test_characterisation_measures_success_with_its_interval_on_a_provider(
    tmp_path: Path,
) -> None:
    server = FakeOpenAI(FakeBehaviour(responder=answers))
    url = await server.start()
    try:
        found = await characterize(
            StepRegistry(), provider="live", base_url=url, only=["text_to_sql", "text_to_sql_mini"]
        )
    finally:
        await server.stop()
    big, mini = found.manifest.figures["text_to_sql"], found.manifest.figures["text_to_sql_mini"]
    assert (big.samples, big.successes, big.mode) == (8, 8, "live")
    assert mini.successes is not None and 0 < mini.successes < 8
    assert mini.interval is not None and mini.interval[0] < mini.success < mini.interval[1]  # type: ignore[operator]
    assert big.latency_p95_s is not None and found.spent_usd > 0

    path = tmp_path / "figures.json"
    found.manifest.dump(path)
    shipped = Manifest.load()
    shipped.figures.update(Manifest.load(path).figures)
    market = offers(listings(StepRegistry(), shipped))
    sure = MarketplaceQuery("str", "ValidatedSQL", min_success=0.9).run(market)
    assert sure.plans[0].names == ["text_to_sql", "sql_validate"]  # reliability costs more
    cheap = MarketplaceQuery("str", "ValidatedSQL").run(market)
    assert cheap.plans[0].names == ["text_to_sql_mini", "sql_validate"]


CHECKER = """\
version: "1"
name: checker
steps:
  - name: check_sql
    uses: sql_validate
    with:
      schema: "CREATE TABLE orders(id INTEGER PRIMARY KEY, total REAL);"
"""


async def test_a_repositorys_own_runs_replace_the_baseline_once_there_are_enough(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "checker.yaml"
    spec.write_text(CHECKER, encoding="utf-8")
    store = tmp_path / "flujo.db"
    queries = ["SELECT total FROM orders"] * (MIN_RUNS - 1) + ["SELECT nme FROM orders"] * 3
    await run_many(load_pipeline(spec), queries, SessionOptions(store=store, export=False))
    from flujo.engine.store import RunStore

    runs = RunStore(store)
    seen = observed(runs)
    runs.close()
    figures = seen["sql_validate"]
    assert (figures.samples, figures.successes) == (MIN_RUNS + 2, MIN_RUNS - 1)
    (listing,) = [
        i for i in listings(StepRegistry(), Manifest.load(), seen) if i.name == "sql_validate"
    ]
    assert listing.badge == f"measured on {MIN_RUNS + 2} runs + 4 baseline samples"
    assert listing.figures is not None and listing.figures.samples == MIN_RUNS + 6

    code, out, _ = invoke(
        "market", "query", "--from", "SQL", "--to", "ValidatedSQL", "--store", str(store)
    )
    assert code == 0 and f"sql_validate: measured on {MIN_RUNS + 2} runs" in out


def test_registry_list_shows_types_model_skills_and_figures() -> None:
    code, out, _ = invoke("registry", "list")
    assert code == 0
    assert any(
        line.startswith("sql_validate") and "SQL → ValidatedSQL" in line
        for line in out.splitlines()
    )
    assert any(line.startswith("text_to_sql ") and "model" in line for line in out.splitlines())
    code, out, _ = invoke("registry", "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["text_to_sql"]["figures"]["success"] is None
    assert rows["json_parse"]["output_type"] == "JSON"
    assert rows["sql_validate"]["figures"]["success_interval_95"][1] == pytest.approx(1.0)
