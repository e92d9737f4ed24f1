"""`flujo validate PATH…`"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flujo.cli import exit_with
from flujo.spec.errors import EXIT_INVALID, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from flujo.spec.check_cache import CachedCheck

SPEC_SUFFIXES = (".yml", ".yaml")
CHECK_MODULES = (
    "flujo.spec.load",  # pydantic and the spec model
    "flujo.spec.lint",
    "flujo.spec.type_check",
    "flujo.spec.context_check",
    "flujo.spec.fields",
    "flujo.spec.legacy.blueprint",
    "flujo.spec.legacy.lenient",
    "ruamel.yaml",
)
"""What checking any spec imports (more for some specs: Jinja for a template with logic,
jsonschema for an unusual schema, regex for a pattern). A check of a file not answered
from the cache imports them first, with the garbage collector paused (`preload`)."""


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github", "sarif"]),
    default="text",
    show_default=True,
    help="text: file:line:col lines; json: one document; github: Actions annotations; "
    "sarif: a SARIF 2.1.0 log for code scanning.",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Repository config to use instead of the .github/flujo.yml found above each spec.",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--untrusted",
    is_flag=True,
    help="Ignore the repository's skill allow-list (.github/flujo.yml skills.allow): only "
    "built-ins, plugins and $FLUJO_SKILLS_ALLOW (for a pull request's changes).",
)
@click.option("--verbose", "-v", is_flag=True, help="Also name each valid file (text format).")
def validate(
    paths: tuple[Path, ...],
    output_format: str,
    config: Path | None,
    strict: bool,
    untrusted: bool,
    verbose: bool,
) -> None:
    """Check spec files (or every .yml/.yaml file under a directory) and report every
    problem found: YAML syntax, schema, references, names and expressions.

    \b
    Exit codes: 0 all valid, 1 a spec is invalid, 2 a path is missing or unreadable.
    """
    from dataclasses import replace

    from flujo.spec.check_cache import CheckCache
    from flujo.spec.display import display_name
    from flujo.spec.errors import Diagnostic, SpecError
    from flujo.spec.report import FORMATS, FileReport, count

    found, problems = expand_paths_with_roots(paths)
    files = []
    registry = None
    reports: list[FileReport] = []
    if config is not None:
        try:
            from flujo.spec.config import load_config
            from flujo.spec.registry import StepRegistry

            registry = StepRegistry(allow=load_config(config).skills.allow)
        except SpecError as exc:
            reports.append(FileReport(display_name(config), exc.diagnostics))
    for file, root in found:
        escape = symlink_problem(file, root)
        if escape is not None:
            reports.append(
                FileReport(display_name(file), [Diagnostic(escape, "unsafe-path", str(file))])
            )
            continue
        files.append(file)
    cache = CheckCache(config)  # a hit gives what checking the file again would
    for file in files:
        # --untrusted checks with another allow-list than the cached results: no cache.
        key = None if untrusted else cache.key(file, display_name(file))
        checked = cache.get(file, key)
        if checked is None:
            try:
                checked, cacheable = _check(file, registry, untrusted)
            except OSError as exc:
                problems.append(f"cannot read {file}: {exc.strerror or exc}")
                continue
            if key is not None and cacheable and cache.key(file, display_name(file)) == key:
                cache.put(file, key, checked)
        diagnostics = checked.diagnostics
        if strict:
            diagnostics = [replace(d, severity="error") for d in diagnostics]
        reports.append(FileReport(display_name(file), diagnostics, checked.spec_sha256))
        if verbose and output_format == "text" and checked.steps is not None and reports[-1].valid:
            sha_text = (checked.spec_sha256 or "")[:12]
            click.echo(f"{display_name(file)}: ok ({checked.steps} steps, spec_sha256 {sha_text}…)")

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
        colour = "red" if errors or problems else "yellow" if warnings else "green"
        click.secho(summary, err=True, fg=colour)
    exit_with(EXIT_USAGE if problems else EXIT_INVALID if errors else EXIT_OK)


def _check(file: Path, registry: Any, untrusted: bool) -> tuple[CachedCheck, bool]:
    """What checking `file` finds, and whether it depends on this file alone (not so
    for a spec with `imports:` or a flujo 0.x blueprint, which may read other files).
    Raises OSError when the file cannot be read."""
    from flujo.cli.preload import preload

    preload(*CHECK_MODULES)  # once per process: the first file not answered from the cache
    from flujo.spec.check_cache import CachedCheck
    from flujo.spec.errors import SpecError
    from flujo.spec.load import check, read_document, registry_for

    try:
        document = read_document(file)  # parsed once: the check and this decision read it
        data = document.data
        cacheable = not (isinstance(data, dict) and ("imports" in data or _maybe_legacy(data)))
        pipeline, diagnostics = check(
            file,
            registry=registry if registry is not None else registry_for(file, untrusted=untrusted),
            document=document,
        )
    except SpecError as exc:
        return CachedCheck(exc.diagnostics, None, None), True
    if pipeline is None:
        return CachedCheck(diagnostics, None, None), cacheable
    steps = len(list(pipeline.walk()))
    return CachedCheck(diagnostics, pipeline.spec_sha256, steps), cacheable


def _maybe_legacy(data: dict[str, Any]) -> bool:
    from flujo.spec.legacy.blueprint import is_legacy

    return is_legacy(data) or str(data.get("version", "")).startswith("0.")


def expand_paths(paths: tuple[Path, ...]) -> tuple[list[Path], list[str]]:
    """Spec files named or found under directories (hidden folders skipped)."""
    found, problems = expand_paths_with_roots(paths)
    return [file for file, _ in found], problems


def symlink_problem(file: Path, root: Path | None) -> str | None:
    """Why `file` may not be read: a symlink (in its name or its folders) that leads out
    of the repository it is in (`root`, else the nearest folder above holding `.git`)."""
    from flujo.spec.imports import escapes_repository

    outside = escapes_repository(file, root)
    if outside is None:
        return None
    return f"refusing a symlink that leads outside the repository ({outside})"


def expand_paths_with_roots(
    paths: tuple[Path, ...],
) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """`expand_paths`, each file with the repository root it must stay in: the directory
    argument's repository (or the directory itself) for files found under one, None
    (found from the file's own name) for files named."""
    from flujo.spec.imports import lexical_repository_root

    files: list[tuple[Path, Path | None]] = []
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
            root = lexical_repository_root(path / "_") or path.resolve()
            files.extend((file, root) for file in found)
        elif path.exists() or path.is_symlink():
            files.append((path, None))
        else:
            problems.append(f"no such file: {path}")
    return files, problems
