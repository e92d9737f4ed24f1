"""Loading a spec and running it from a command, with clean errors and exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.cli import Interrupted, UsageError

if TYPE_CHECKING:
    from flujo.engine.results import PipelineResult
    from flujo.spec.model import Pipeline


def load_spec_or_exit(path: Path) -> Pipeline:
    """The spec at `path` (read once). Otherwise the command fails: a `SpecError` prints
    every diagnostic (exit 1), an unreadable file is a `UsageError` (exit 2)."""
    from flujo.spec.model import Pipeline

    try:
        return Pipeline.from_yaml(path)
    except OSError as exc:
        raise UsageError(f"flujo: cannot read {path}: {exc.strerror or exc}") from None


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
        raise Interrupted("flujo: interrupted; the run was recorded as cancelled") from None
