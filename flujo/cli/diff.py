"""`flujo diff OLD NEW`: what changed between two versions of a spec, step by step.

Also a git external diff driver: git calls it with seven arguments (path, old-file,
old-hex, old-mode, new-file, new-hex, new-mode), and nine for a rename.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from flujo.cli import CommandError, exit_with
from flujo.spec.errors import EXIT_INVALID, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from flujo.spec.model import Pipeline
    from flujo.spec.review.diff import SpecDiff

NULL_FILE = "/dev/null"
Format = Literal["text", "json", "markdown"]


class _Trouble(CommandError):
    """A file cannot be read or is not a spec; the message says where (exit code 2: diff(1)'s
    trouble)."""

    exit_code = EXIT_USAGE


@click.command()
@click.argument("files", nargs=-1, metavar="OLD NEW", required=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text: one line per change; json: the changes as data; markdown: bullets and "
    "before/after Mermaid charts.",
)
def diff(files: tuple[str, ...], output_format: Format) -> None:
    """Show the semantic changes from spec OLD to spec NEW.

    Each change is mapped to the pipeline graph (step added, removed, renamed, moved,
    model, prompt, retries, validators, ...) with its line in NEW (or OLD for what is
    gone). `/dev/null` stands for no spec (a file added or deleted).

    \b
    Exit codes, like diff(1): 0 no semantic change, 1 changes found, 2 trouble
    (unreadable file, invalid spec, bad usage). Called by git (seven or nine
    arguments), it exits 0 whenever it could show the difference, as git expects.
    """
    git_mode = len(files) in (7, 9)
    if git_mode:
        shown = files[7] if len(files) == 9 else files[0]
        old_file, new_file = files[1], files[4]
        old_name, new_name = f"a/{files[0]}", f"b/{shown}"
    elif len(files) == 2:
        old_file, new_file = files
        old_name, new_name = _display(old_file), _display(new_file)
    else:
        raise click.UsageError(
            f"expected OLD NEW (or git's 7 diff-driver arguments), got {len(files)} argument(s)"
        )
    old_text, new_text = _read(old_file), _read(new_file)
    try:
        old, new = _load(old_text, old_name), _load(new_text, new_name)
    except _Trouble as exc:
        if git_mode:  # not a spec (yet): still show git what changed, line by line
            click.echo(f"flujo diff: {exc}; showing a line diff", err=True)
            click.echo(_line_diff(old_text, new_text, old_name, new_name), nl=False)
            return
        raise

    from flujo.spec.review.diff import diff_specs

    result = diff_specs(old, new)
    click.echo(render(result, output_format, old_name, new_name), nl=False)
    if git_mode:
        return
    exit_with(EXIT_INVALID if result else EXIT_OK)


def render(result: SpecDiff, output_format: Format, old_name: str, new_name: str) -> str:
    """The diff in one of the output formats."""
    from flujo.spec.review.bullets import bullets, plain

    if output_format == "json":
        data = result.to_dict()
        data["old"]["file"], data["new"]["file"] = old_name, new_name
        for change, text in zip(data["changes"], bullets(result), strict=True):
            change["summary"] = text
        return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if output_format == "markdown":
        from flujo.spec.review.mermaid import flowchart

        lines = [f"### `{old_name}` → `{new_name}`", ""]
        lines += [f"- {b}" for b in bullets(result)] or ["No semantic changes."]
        for title, pipeline, side in (
            ("Before", result.old, "old"),
            ("After", result.new, "new"),
        ):
            chart = flowchart(pipeline, result.marks(side))  # type: ignore[arg-type]
            lines += ["", f"**{title}**", "", "```mermaid", chart.rstrip("\n"), "```"]
        return "\n".join(lines) + "\n"
    if not result:
        return f"{old_name} → {new_name}: no semantic changes\n"
    count = len(result.changes)
    lines = [f"{old_name} → {new_name}: {count} change{'s' * (count != 1)}"]
    for change, text in zip(result.changes, bullets(result), strict=True):
        where = new_name if change.side == "new" else old_name
        line = f":{change.line}" if change.line is not None else ""
        lines.append(f"  {where}{line}: {plain(text)}  [{change.yaml_path or '(root)'}]")
    return "\n".join(lines) + "\n"


def _display(file: str) -> str:
    if file in (NULL_FILE, "-"):
        return file
    from flujo.spec.display import display_name

    return display_name(Path(file))


def _read(file: str) -> bytes | None:
    """The file's bytes; None for /dev/null (no spec on that side)."""
    if file == NULL_FILE:
        return None
    from flujo.spec.errors import SpecError
    from flujo.spec.source import read_bytes

    try:
        return read_bytes(file)
    except OSError as exc:
        raise _Trouble(f"flujo diff: cannot read {file}: {exc.strerror or exc}") from None
    except SpecError as exc:  # too large
        raise _Trouble(f"flujo diff: {exc}") from None


def _load(data: bytes | None, name: str) -> Pipeline:
    """Schema-validate a spec (references need not resolve: any two specs compare)."""
    from flujo.spec.model import Pipeline

    if data is None:
        return Pipeline(steps=[])
    from flujo.spec.errors import SpecError
    from flujo.spec.load import validate_document
    from flujo.spec.source import parse

    try:
        pipeline, diagnostics = validate_document(parse(data, name))
    except SpecError as exc:
        diagnostics = exc.diagnostics
        pipeline = None
    if pipeline is None:
        problems = "\n".join(str(d) for d in diagnostics if d.severity == "error")
        raise _Trouble(f"{problems}\n{name}: not a valid spec".lstrip("\n"))
    return pipeline


def _line_diff(old: bytes | None, new: bytes | None, old_name: str, new_name: str) -> str:
    import difflib

    def lines(data: bytes | None) -> list[str]:
        return (data or b"").decode("utf-8", errors="replace").splitlines(keepends=True)

    return "".join(
        difflib.unified_diff(
            lines(old),
            lines(new),
            old_name,
            new_name,
        )
    )
