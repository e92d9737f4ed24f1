"""`flujo run SPEC --inputs FILE.jsonl [--jobs N] [--json]`: many runs, one process."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from flujo.cli import Interrupted, UsageError, exit_with
from flujo.cli.progress import progress
from flujo.spec.errors import EXIT_INVALID, EXIT_OK


def run_inputs(
    spec: Path,
    inputs_file: Path,
    input_text: str | None,
    jobs: int,
    as_json: bool,
    options: dict[str, Any],
) -> NoReturn:
    """Run `spec` once per line of `inputs_file`, print a summary (or JSON) and exit:
    0 when every run succeeded and every line parsed, 1 otherwise."""
    from flujo.cli.load_and_run import load_spec_or_exit
    from flujo.engine.batch import (
        BatchSummary,
        InputLine,
        InputLineError,
        read_input_lines,
        run_batch,
    )
    from flujo.engine.session import SessionOptions

    if input_text is not None:
        raise UsageError("flujo run: give --input or --inputs, not both")
    try:
        items = read_input_lines(inputs_file)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"flujo run: cannot read {inputs_file}: {reason}") from None
    pipeline = load_spec_or_exit(spec)
    inputs = [item for item in items if isinstance(item, InputLine)]
    errors = [item for item in items if isinstance(item, InputLineError)]
    for error in errors:
        click.echo(f"{inputs_file}:{error.line}: {error.error} (skipped)", err=True)

    settings = SessionOptions.from_cli(options)
    started = time.perf_counter()
    try:
        with progress(len(inputs), "runs", quiet=as_json) as step:
            results = asyncio.run(
                run_batch(
                    pipeline,
                    inputs,
                    settings,
                    jobs,
                    on_result=(lambda _item, _result: step()) if step is not None else None,
                )
            )
    except KeyboardInterrupt:
        raise Interrupted("flujo: interrupted; runs in flight were recorded as cancelled") from None
    summary = BatchSummary.of(
        results, errors, wall_s=time.perf_counter() - started, jobs=min(jobs, len(inputs)) or 1
    )
    if as_json:
        runs = [
            {"line": item.line, **result.to_dict()}
            for item, result in zip(inputs, results, strict=True)
        ]
        report = {
            "spec": str(spec),
            "inputs": str(inputs_file),
            "summary": summary.to_dict(),
            "runs": runs,
            "input_errors": [error.to_dict() for error in errors],
        }
        click.echo(json.dumps(report, indent=2, default=str, ensure_ascii=False))
    else:
        for item, result in zip(inputs, results, strict=True):
            if not result.success:
                where = f" ({result.error_path})" if result.error_path else ""
                click.echo(
                    f"line {item.line}: run {result.run_id} {result.status}"
                    f" [{result.cause or 'unknown'}]: {result.error}{where}"
                )
        for text in summary.lines():
            click.echo(text)
    exit_with(EXIT_OK if summary.ok else EXIT_INVALID)
