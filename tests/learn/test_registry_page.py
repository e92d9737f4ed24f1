"""The registry page: the typed graph renders in a real browser, with honest badges."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from flujo.cli import cli
from tests.support.browser import open_page


def test_the_registry_page_draws_the_typed_graph_and_shows_where_figures_come_from(
    tmp_path: Path,
) -> None:
    page = tmp_path / "registry.html"
    result = CliRunner().invoke(cli, ["registry", "list", "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert 'data-name="text_to_sql"' in html and 'data-name="sql_validate"' in html
    assert "on the fake model: cost from their tokens; success and latency not measured" in html
    seen = open_page(page, screenshot=tmp_path / "registry.png")
    assert seen["rendered"] == "yes" and seen["outside"] == []
    (graph,) = seen["svgs"]  # type: ignore[misc]
    assert graph["svg"] and graph["nodes"] >= 6  # str, JSON, SQL, ValidatedSQL, Summary, Labels
    assert (tmp_path / "registry.png").stat().st_size > 10_000
