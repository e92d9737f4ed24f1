"""On the fake GitHub: a pull request's `flujo/test` check compares the expected cost per
test run with its base branch's, both measured by the bot from their replayed tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from flujo.cli import cli
from tests.bot.test_check_costs import SPEC as COSTED
from tests.support.bot_world import REPO, SPEC, World


async def _files(tmp: Path, model: str) -> dict[str, str]:
    """The spec at SPEC calling `model`, and its cassettes recorded from the fake server."""
    spec = tmp / SPEC
    spec.parent.mkdir(parents=True)
    (tmp / ".git").mkdir()
    spec.write_text(COSTED.format(model=model), encoding="utf-8")
    args = ["test", str(spec), "--fake", "--record"]
    recorded = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert recorded.exit_code == 0, recorded.output
    return {
        str(p.relative_to(tmp)): p.read_text(encoding="utf-8")
        for p in tmp.rglob("*")
        if p.is_file() and ".git" not in p.parts
    }


async def test_a_cheaper_model_shows_as_a_lower_expected_cost_per_run_than_main(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    fake.create_repo(REPO, await _files(tmp_path / "main", "gpt-4o"), installation_id=42)
    sha = fake.commit(REPO, await _files(tmp_path / "feature", "gpt-4o-mini"), branch="feature")
    number = fake.open_pull(REPO, "feature")
    await world.start()
    await world.deliver("pull_request", "opened", sha=sha, number=number, branch="feature")
    await world.settle()
    check = fake.check_run(REPO, sha, "flujo/test")
    summary = check.summary or ""
    assert check.conclusion == "success", summary
    assert "### Expected cost per run against `main`" in summary
    assert "not production evidence" in summary
    comparison = summary.split("### Expected cost per run")[1]
    row = next(r for r in comparison.splitlines() if r.startswith(f"| `{SPEC}`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3].startswith("−$") and cells[4] == "2 / 2", row
