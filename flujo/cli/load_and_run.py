"""Loading a spec and running it from a command, with clean errors and exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flujo.cli import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_USAGE

if TYPE_CHECKING:
    from flujo.engine.results import PipelineResult
    from flujo.spec.model import Pipeline


def load_spec_or_exit(path: Path) -> Pipeline:
    """The spec at `path` (read once); prints every error and exits 1 or 2 otherwise."""
    from flujo.spec.errors import SpecError
    from flujo.spec.model import Pipeline

    try:
        return Pipeline.from_yaml(path)
    except SpecError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(str(diagnostic), err=True)
        raise SystemExit(EXIT_INVALID) from None
    except OSError as exc:
        click.echo(f"flujo: cannot read {path}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None


def run_session(
    pipeline: Pipeline,
    inputs: list[Any],
    options: dict[str, Any],
    on_result: Callable[[PipelineResult], None] | None = None,
) -> list[PipelineResult]:
    """Run `pipeline` on each input; Ctrl-C stops cleanly (the run is kept as cancelled)."""
    from flujo.engine.session import SessionOptions, run_many

    settings = SessionOptions.from_cli(options)
    try:
        return asyncio.run(run_many(pipeline, inputs, settings, on_result))
    except KeyboardInterrupt:
        click.echo("flujo: interrupted; the run was recorded as cancelled", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
