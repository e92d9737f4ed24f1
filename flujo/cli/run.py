"""`flujo run SPEC`"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flujo.cli import exit_with
from flujo.cli.options import model_options, store_options
from flujo.spec.errors import EXIT_INVALID, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from flujo.spec.figures import money


def parse_input(value: str | None) -> Any:
    """`--input` as JSON text, `@file` holding JSON, or (when not JSON) a plain string."""
    if value is None:
        return None
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {value[1:]}: {exc.strerror}") from None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        if value.lstrip()[:1] in ("{", "[", '"'):  # meant as JSON: never sent on as text
            raise click.BadParameter(
                f"the input looks like JSON but does not parse: {exc.msg} at line {exc.lineno}, "
                f'column {exc.colno} (quote plain text that starts with {{, [ or ")'
            ) from None
        return value


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "-i", "input_text", help="Input: JSON, @file.json, or plain text.")
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run once per line of this JSON Lines file, in one process, and summarize.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="With --inputs: runs at a time.",
)
@model_options
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run(
    spec: Path,
    input_text: str | None,
    inputs_file: Path | None,
    jobs: int,
    as_json: bool,
    **options: Any,
) -> None:
    """Run a pipeline once and print its result.

    The spec is read once, when the run starts: editing the file during a run changes
    only later runs. Models are reached through an OpenAI-compatible server
    (OPENAI_BASE_URL, OPENAI_API_KEY), recorded cassettes (--replay), or the built-in
    fake server (--fake). Exit codes: 0 the run succeeded, 1 it failed or the spec is
    invalid, 2 usage error, 4 it paused at a question nobody could answer here (resume
    it with `flujo runs resume RUN_ID --answer VALUE`), 130 interrupted (the run is
    recorded as cancelled). With a run store, a run keeps a checkpoint after each
    top-level step: one that stopped resumes with `flujo runs resume RUN_ID`.

    With --inputs FILE.jsonl, runs once per line (at most --jobs at a time), shows
    progress on a terminal, records every run and prints a summary; exit 1 when a run
    failed or a line is not JSON (its line number is reported; the others still run).
    """
    if inputs_file is not None:
        from flujo.cli.batch import run_inputs

        run_inputs(spec, inputs_file, input_text, jobs, as_json, options)
    from flujo.cli.preload import preload
    from flujo.cli.validate import CHECK_MODULES

    preload(*CHECK_MODULES, "flujo.engine.session", "flujo.cli.load_and_run")
    from flujo.cli.load_and_run import load_spec_or_exit, run_session

    pipeline = load_spec_or_exit(spec)
    value = parse_input(input_text)
    results = run_session(pipeline, [value], options | {"ask": True})
    result = results[0]
    if result.total_tokens:  # models were called: their costs are shown
        from flujo.cli.prices import warn_if_stale

        warn_if_stale(pipeline, spec)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str, ensure_ascii=False))
    else:
        # the status on stderr, the output alone on stdout: `flujo run … | jq` works
        click.secho(format_status(result), err=True, fg="green" if result.success else "red")
        if result.output is not None:
            click.echo(format_output(result.output))
    if result.status == "paused":
        exit_with(EXIT_PARTIAL)
    exit_with(EXIT_OK if result.success else EXIT_INVALID)


def format_status(result: Any) -> str:
    """The run's status line (and its error, with the failing step's yaml_path)."""
    from flujo.engine.results import how_run

    cost = money(result.total_cost_usd)
    if result.prices_version:
        cost += f" (prices {result.prices_version})"
    cost += how_run(result.mode)
    lines = [
        f"run {result.run_id}: {result.status} in {result.latency_s:.3f}s, "
        f"{result.total_tokens} tokens, {cost}",
    ]
    if result.error:
        where = f" ({result.error_path})" if result.error_path else ""
        lines.append(f"error: {result.error}{where}")
    return "\n".join(lines)


def format_output(output: Any) -> str:
    """A run's output: text as it is, anything else as JSON."""
    if isinstance(output, str):
        return output
    return json.dumps(output, indent=2, default=str, ensure_ascii=False)


__all__ = ["EXIT_USAGE", "run"]
