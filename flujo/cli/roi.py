"""`flujo roi`: what merged suggestions did, as a page."""

from __future__ import annotations

from pathlib import Path

import click

from flujo.cli.options import StoreLocation


@click.command()
@click.option(
    "--html",
    "html_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page to this file.",
)
@click.option(
    "--store",
    type=StoreLocation(),
    help="The run store (default: FLUJO_STORE or .flujo/flujo.db).",
)
def roi(html_file: Path, store: Path | str | None) -> None:
    """Write the realised-ROI page: monthly spend of live runs, and for every merged
    suggestion its live runs before and after (cost, latency, failures, with 95%
    intervals), its realised savings per month and what it promised. Exit 2 when the
    store does not exist."""
    from flujo.cli import UsageError
    from flujo.engine.store import RunStore, default_path, exists
    from flujo.learn.roi_page import roi_page

    path = store or default_path()
    if not exists(path):
        raise UsageError(f"flujo roi: no run store at {path}")
    db = RunStore(path)
    try:
        html_file.write_text(roi_page(db), encoding="utf-8")
    finally:
        db.close()
    click.echo(f"wrote {html_file}")
