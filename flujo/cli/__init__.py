"""The `flujo` command line. Commands are imported only when they run (fast start).

Exit codes, for every command:
  0  success (for `validate`: every spec is valid)
  1  the input is invalid (a spec, patch or config has errors; they are printed)
  2  usage error (bad option, missing or unreadable file)
  3  internal error (a bug in Flujo: please report it)
  130 interrupted (Ctrl-C)
except `diff`, which follows diff(1): 0 no change, 1 changes found, 2 trouble.
"""

from __future__ import annotations

import sys
from typing import Any

import click

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

# name -> (import path, one-line help); listed without importing the commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("flujo.cli.validate:validate", "Check spec files and report every problem."),
    "schema": ("flujo.cli.schema:schema", "Print the JSON Schema of the spec format."),
    "registry": ("flujo.cli.registry:registry", "Show the skills specs may use."),
    "patch": ("flujo.cli.patch:patch", "Apply a JSON Patch to a spec, changing only its lines."),
    "bot": ("flujo.cli.bot:bot", "The GitHub App: serve it, or check a local repository."),
    "diff": ("flujo.cli.diff:diff", "Show what changed between two specs, step by step."),
    "demo": ("flujo.cli.demo:demo", "Run the examples offline and record their telemetry."),
    "policy": ("flujo.cli.policy:policy", "Judge a spec's policies against recorded runs."),
    "run": ("flujo.cli.run:run", "Run a pipeline once and print its result."),
    "runs": ("flujo.cli.runs:runs", "Inspect recorded runs (list, show)."),
    "test": ("flujo.cli.test:test", "Run the tests embedded in specs (assertions, policies)."),
    "suggest": (
        "flujo.cli.suggest:suggest",
        "Suggest verified, ranked improvements from telemetry.",
    ),
    "telemetry": ("flujo.cli.telemetry:telemetry", "Bring in telemetry recorded elsewhere."),
    "migrate": ("flujo.cli.migrate:migrate", "Rewrite flujo 0.x blueprints in the current format."),
}


class LazyGroup(click.Group):
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
    Exit codes: 0 ok, 1 invalid input, 2 usage error, 3 internal error.
    """


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
        if type(exc).__name__ == "StoreError":  # a usable message, not a bug
            click.echo(f"flujo: {exc}", err=True)
            sys.exit(EXIT_USAGE)
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
