"""`flujo telemetry import FILE`"""

from __future__ import annotations

from pathlib import Path

import click

from flujo.cli import UsageError
from flujo.cli.options import store_options


@click.group()
def telemetry() -> None:
    """Bring in telemetry recorded elsewhere (the bot also receives it over OTLP/HTTP)."""


@telemetry.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@store_options
def import_(file: Path, store: Path | str | None) -> None:
    """Merge FILE into the run store: an exported run store (its SQLite file) or an
    OTLP/JSON trace export. Runs already present are skipped. Exit codes: 0 imported,
    2 FILE unreadable or of the wrong kind."""
    from flujo.engine.store import RunStore
    from flujo.engine.telemetry_import import TelemetryImportError, import_file

    if not file.is_file():
        raise UsageError(f"flujo telemetry import: {file}: no such file")
    db = RunStore(store)
    try:
        result = import_file(db, file)
    except (TelemetryImportError, OSError) as exc:
        raise UsageError(f"flujo telemetry import: {exc}") from None
    finally:
        db.close()
    skipped = f" ({result.skipped_runs} already present)" if result.skipped_runs else ""
    click.echo(f"Imported {result.runs} runs and {result.spans} spans into {db.path}{skipped}")
