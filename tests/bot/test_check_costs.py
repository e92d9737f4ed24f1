"""The `flujo/test` summary: the cost of the test run, the price table that computed it,
and on a pull request the change in expected cost per run against the base branch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from flujo.bot.commit_report import CommitReport
from flujo.bot.cost_change import Baseline
from flujo.bot.evaluate import evaluate
from flujo.bot.verdicts import check_outputs
from flujo.cli import cli
from flujo.engine.pricing import table_version
from flujo.spec.registry import StepRegistry
from tests.support.specs import spec

SPEC = spec(
    """
    name: answering
    agents:
      helper: {{model: "openai:{model}"}}
    steps:
      - name: answer
        uses: agents.helper
        input: "{{{{ input.question }}}}"
    tests:
      - name: answers
        input: {{question: "How many customers are there?"}}
        assertions: ["result.success"]
      - name: answers again
        input: {{question: "How many orders are there?"}}
        assertions: ["result.success"]
    """
)


async def _version(root: Path, model: str) -> CommitReport:
    """A commit whose spec calls `model`, with cassettes recorded from the fake server."""
    root.mkdir(exist_ok=True)
    (root / ".git").mkdir()  # the repository's root: its config is looked up to here
    path = root / "answer.flujo.yml"
    path.write_text(SPEC.format(model=model), encoding="utf-8")
    args = ["test", str(path), "--fake", "--record"]
    recorded = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert recorded.exit_code == 0, recorded.output
    files = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    assert any(f.startswith("cassettes/") for f in files)
    return await evaluate(root, files, registry=StepRegistry())


async def test_a_pull_request_shows_the_change_in_cost_per_test_run_against_its_base(
    tmp_path: Path,
) -> None:
    base = await _version(tmp_path / "base", "gpt-4o")  # $2.50 / $10 per 1M tokens
    head = await _version(tmp_path / "head", "gpt-4o-mini")  # $0.15 / $0.60
    (spec_report,) = head.specs
    assert spec_report.prices_version == table_version()
    costs = [t.cost_usd for t in spec_report.tests]
    assert all(c is not None and c > 0 for c in costs), costs
    summary = check_outputs(head, Baseline("main", base))[1].summary
    assert f"at the prices of table `{table_version()}`" in summary
    assert "### Expected cost per run against `main`" in summary
    assert "these are test runs with recorded answers (replayed cassettes) or mocks, not " in (
        summary
    )
    assert "production evidence" in summary
    comparison = summary.split("### Expected cost per run")[1]
    row = next(r for r in comparison.splitlines() if r.startswith("| `answer.flujo.yml`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    old, new = (float(c.lstrip("$")) for c in cells[1:3])
    assert new < old  # the cheaper model, measured on both sides
    assert cells[3].startswith("−$") and "%" in cells[3]
    assert cells[4] == "2 / 2"


async def test_a_base_that_could_not_be_evaluated_is_not_measured_not_zero(
    tmp_path: Path,
) -> None:
    head = await _version(tmp_path / "head", "gpt-4o-mini")
    baseline = Baseline("main", None, "the base branch could not be evaluated (too large)")
    summary = check_outputs(head, baseline)[1].summary
    assert "not measured: the base branch could not be evaluated (too large)" in summary
    assert "−$" not in summary and "+$" not in summary
    without_base = check_outputs(head)[1].summary
    assert "Expected cost per run" not in without_base  # a push has no base to compare


async def test_old_prices_are_flagged_in_the_summary_with_how_to_refresh(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    (root / ".github").mkdir(parents=True)
    (root / ".github" / "flujo.yml").write_text("prices: {max_age_days: 1}\n")
    head = await _version(root, "gpt-4o-mini")
    summary = check_outputs(head)[1].summary
    assert "> [!WARNING]" in summary and "prices older than 1 day" in summary
    assert "openai:gpt-4o-mini" in summary and ".github/flujo.yml" in summary
