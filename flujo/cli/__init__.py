"""The `flujo` command line. Commands are imported only when they run (fast start).

Exit codes, for every command:
  0  success (for `validate`: every spec is valid)
  1  the input is invalid (a spec, patch or config has errors; they are printed)
  2  usage error (bad option, missing or unreadable file)
  3  internal error (a bug in Flujo: please report it)
  5  `test`: no tests collected (none selected by `-k`, or no spec has `tests:`), as pytest
  130 interrupted (Ctrl-C)
except `diff`, which follows diff(1): 0 no change, 1 changes found, 2 trouble.

How a command ends:
  - an error is raised as a `FlujoError` (flujo.spec.errors): the product's own errors
    (SpecError, StoreError, ...) or, for a message the command words itself, one of
    `InvalidInput` (1), `UsageError` (2) or `Interrupted` (130) below. `LazyGroup.invoke`
    is the one place that maps them: it prints `exc.show()` and exits with
    `exc.exit_code`, never with a traceback. Option parsing errors are click's own
    (`click.UsageError`, `click.BadParameter`: exit 2).
  - a command that ran to completion and whose result is not plain success (`validate`
    found invalid specs, `test` a failed test, `diff` changes, ...) ends with
    `exit_with(code)` after printing everything; success is a plain return (exit 0).
  - anything else is a bug: `main()` prints one line and exits 3.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from flujo.spec.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    FlujoError,
)

# name -> (import path, one-line help); listed without importing the commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("flujo.cli.init:init", "Set up a repository: a sample spec, its test and cassette."),
    "validate": ("flujo.cli.validate:validate", "Check spec files and report every problem."),
    "schema": ("flujo.cli.schema:schema", "Print the JSON Schema of the spec format."),
    "registry": ("flujo.cli.registry:registry", "Show the skills specs may use."),
    "market": ("flujo.cli.market:market", "Plan chains of typed skills by cost, latency, success."),
    "patch": ("flujo.cli.patch:patch", "Apply a JSON Patch to a spec, changing only its lines."),
    "bot": ("flujo.cli.bot:bot", "The GitHub App: serve it, or check a local repository."),
    "diff": ("flujo.cli.diff:diff", "Show what changed between two specs, step by step."),
    "demo": ("flujo.cli.demo:demo", "Run the examples offline and record their telemetry."),
    "policy": ("flujo.cli.policy:policy", "Judge a spec's policies against recorded runs."),
    "run": ("flujo.cli.run:run", "Run a pipeline once and print its result."),
    "runs": ("flujo.cli.runs:runs", "Inspect recorded runs (list, show, prune) and resume one."),
    "test": ("flujo.cli.test:test", "Run the tests embedded in specs (assertions, policies)."),
    "suggest": (
        "flujo.cli.suggest:suggest",
        "Suggest verified, ranked improvements from telemetry.",
    ),
    "telemetry": ("flujo.cli.telemetry:telemetry", "Bring in telemetry recorded elsewhere."),
    "eval": (
        "flujo.cli.eval:eval_command",
        "Compare a change on captured examples (agreement, cost, latency).",
    ),
    "roi": ("flujo.cli.roi:roi", "Write the page of what merged suggestions saved."),
    "migrate": ("flujo.cli.migrate:migrate", "Rewrite flujo 0.x blueprints in the current format."),
}


class CommandError(FlujoError):
    """An error a command has worded in full: `show()` prints its text as it is (one or
    more lines, e.g. `flujo runs: no run store at PATH`)."""

    def format_message(self) -> str:
        return str(self)


class InvalidInput(CommandError):
    """The input is invalid (a spec, patch or config has errors)."""

    exit_code = EXIT_INVALID


class UsageError(CommandError):
    """Wrong usage: a missing or unreadable file, a store or server out of reach, ..."""

    exit_code = EXIT_USAGE


class Interrupted(CommandError):
    """Ctrl-C stopped the command (what was stopped is said in the message)."""

    exit_code = EXIT_INTERRUPTED


def exit_with(code: int) -> NoReturn:
    """End a command that ran to completion with its documented result code (e.g.
    `validate`: 1 when a spec is invalid, after every diagnostic is printed). Errors are
    raised as `FlujoError`s instead; success is a plain return."""
    raise SystemExit(code)


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a `FlujoError` is shown and exits with its code (the one place
        errors are mapped: both `main()` and click's test runner come through here)."""
        try:
            return super().invoke(ctx)
        except FlujoError as exc:
            exc.show()
            ctx.exit(exc.exit_code)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, with a did-you-mean for an unknown command."""
        name = args[0] if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            ctx.fail(f"No such command '{name}'.{hint}")
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        import importlib

        module, _, attr = entry[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import flujo

    click.echo(f"flujo {flujo.__version__}")
    ctx.exit(EXIT_OK)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """Flujo: AI pipelines defined as YAML, run with telemetry, improved by pull requests.

    \b
    Exit codes: 0 ok, 1 invalid input, 2 usage error, 3 internal error, 5 no tests collected.
    """
    from flujo.cli.terminal import colour_choice

    click.get_current_context().color = colour_choice()  # NO_COLOR, FORCE_COLOR, or a tty


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `flujo` console script."""
    try:
        return cli.main(args=argv, prog_name="flujo", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("flujo: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so in one line, never a traceback
        click.echo(
            f"flujo: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in Flujo; please report it with the command you ran "
            "(set FLUJO_DEBUG=1 to see the traceback).",
            err=True,
        )
        import os

        if os.environ.get("FLUJO_DEBUG"):
            raise
        sys.exit(EXIT_INTERNAL)
