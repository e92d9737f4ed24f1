"""`flujo migrate FILE…`"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flujo.cli import exit_with
from flujo.spec.errors import EXIT_INVALID, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

_PRECEDENCE = (EXIT_OK, EXIT_PARTIAL, EXIT_INVALID, EXIT_USAGE)
"""The exit code of several files is the last of theirs in this order."""


def _worst(a: int, b: int) -> int:
    return max(a, b, key=_PRECEDENCE.index)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file would change."
)
@click.option(
    "--in-place", "-i", is_flag=True, help="Rewrite the files instead of printing a diff."
)
def migrate(files: tuple[Path, ...], check_only: bool, in_place: bool) -> None:
    """Rewrite flujo 0.x blueprints in the current format.

    Comments, key order and formatting of everything that does not change are kept;
    the migrated file loads to the same pipeline. By default a unified diff is printed.
    Files already in the current format are left alone. A step the current format cannot
    say (a `tree_search`, a custom kind, …) is kept as written, under a
    `# flujo migrate: kept in its 0.x form: WHY` comment; the rest is converted.

    \b
    Exit codes: 0 done (or, with --check, nothing to migrate), 4 done but steps were
    kept in their 0.x form (they do not run here), 1 a file would change (--check) or
    has errors, 2 a file is missing or unreadable (with several files, the first of
    2, 1, 4 that applies).
    """
    from flujo.spec.errors import SpecError
    from flujo.spec.legacy.migrate import migrate as migrate_file

    if check_only and in_place:
        raise click.UsageError("--check and --in-place cannot be used together")
    status = EXIT_OK
    for path in files:
        if not path.is_file():
            click.echo(f"flujo migrate: no such file: {path}", err=True)
            status = _worst(status, EXIT_USAGE)
            continue
        try:
            migration = migrate_file(path)
        except SpecError as exc:
            for diagnostic in exc.diagnostics:
                click.echo(str(diagnostic), err=True)
            click.echo(f"{path}: not migrated: fix the errors above first", err=True)
            status = _worst(status, EXIT_INVALID)
            continue
        except OSError as exc:
            click.echo(f"flujo migrate: cannot read {path}: {exc.strerror or exc}", err=True)
            status = _worst(status, EXIT_USAGE)
            continue
        for diagnostic in migration.diagnostics:
            click.echo(str(diagnostic), err=True)
        kept = _kept(migration.kept)
        if migration.kept:
            status = _worst(status, EXIT_PARTIAL)
        if not migration.changed:
            click.echo(f"{migration.file}: already in the current format{kept}", err=True)
        elif check_only:
            click.echo(f"{migration.file}: would be migrated{kept}", err=True)
            status = _worst(status, EXIT_INVALID)
        elif in_place:
            with path.open("w", encoding="utf-8", newline="") as handle:
                handle.write(migration.text)
            click.echo(f"{migration.file}: migrated{kept}", err=True)
        else:
            click.echo(migration.diff(), nl=False)
            if migration.kept:
                click.echo(f"{migration.file}: {kept[2:]}", err=True)
    exit_with(status)


def _kept(kept: list[Any]) -> str:
    """What the status line adds for steps kept in their 0.x form."""
    if not kept:
        return ""
    steps = "step" if len(kept) == 1 else "steps"
    return (
        f"; {len(kept)} {steps} kept in the 0.x form (the errors above), marked"
        " `# flujo migrate:`: they do not run here until rewritten"
    )
