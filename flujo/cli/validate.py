"""`flujo validate PATH…`"""

from __future__ import annotations

from pathlib import Path

import click

from flujo.cli import exit_with
from flujo.spec.errors import EXIT_INVALID, EXIT_OK, EXIT_USAGE

SPEC_SUFFIXES = (".yml", ".yaml")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: file:line:col lines; json: one document; github: Actions annotations.",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Repository config to use instead of the .github/flujo.yml found above each spec.",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--verbose", "-v", is_flag=True, help="Also name each valid file (text format).")
def validate(
    paths: tuple[Path, ...], output_format: str, config: Path | None, strict: bool, verbose: bool
) -> None:
    """Check spec files (or every .yml/.yaml file under a directory) and report every
    problem found: YAML syntax, schema, references, names and expressions.

    \b
    Exit codes: 0 all valid, 1 a spec is invalid, 2 a path is missing or unreadable.
    """
    from dataclasses import replace

    from flujo.spec.errors import SpecError
    from flujo.spec.load import check, display_name, registry_for
    from flujo.spec.report import FORMATS, FileReport, count

    files, problems = expand_paths(paths)
    registry = None
    reports: list[FileReport] = []
    if config is not None:
        try:
            from flujo.spec.config import load_config
            from flujo.spec.registry import StepRegistry

            registry = StepRegistry(allow=load_config(config).skills.allow)
        except SpecError as exc:
            reports.append(FileReport(display_name(config), exc.diagnostics))
    for file in files:
        try:
            pipeline, diagnostics = check(
                file, registry=registry if registry is not None else registry_for(file)
            )
        except SpecError as exc:
            reports.append(FileReport(display_name(file), exc.diagnostics))
            continue
        except OSError as exc:
            problems.append(f"cannot read {file}: {exc.strerror or exc}")
            continue
        if strict:
            diagnostics = [replace(d, severity="error") for d in diagnostics]
        sha = pipeline.spec_sha256 if pipeline is not None else None
        reports.append(FileReport(display_name(file), diagnostics, sha))
        if verbose and output_format == "text" and pipeline is not None and reports[-1].valid:
            steps = len(list(pipeline.walk()))
            sha_text = pipeline.spec_sha256[:12]
            click.echo(f"{display_name(file)}: ok ({steps} steps, spec_sha256 {sha_text}…)")

    click.echo(FORMATS[output_format](reports), nl=False)
    for problem in problems:
        click.echo(f"flujo validate: {problem}", err=True)
    errors, warnings = count(reports, "error"), count(reports, "warning")
    if output_format == "text":
        invalid = sum(not r.valid for r in reports)
        summary = f"{len(reports)} file{'s' * (len(reports) != 1)} checked"
        if errors or warnings:
            summary += f": {errors} error{'s' * (errors != 1)}, "
            summary += f"{warnings} warning{'s' * (warnings != 1)} ({invalid} invalid)"
        elif reports and not problems:
            summary += ", all valid"
        if problems:  # never "all valid" when something could not be checked
            summary += f"; {len(problems)} path{'s' * (len(problems) != 1)} could not be read"
        click.echo(summary, err=True)
    exit_with(EXIT_USAGE if problems else EXIT_INVALID if errors else EXIT_OK)


def expand_paths(paths: tuple[Path, ...]) -> tuple[list[Path], list[str]]:
    """Spec files named or found under directories (hidden folders skipped)."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SPEC_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                problems.append(f"no .yml or .yaml files under {path}")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(f"no such file: {path}")
    return files, problems
