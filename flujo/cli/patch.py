"""`flujo patch SPEC PATCH.json`"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flujo.cli import InvalidInput, UsageError


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument(
    "patch_file", metavar="PATCH.json", type=click.Path(dir_okay=False, allow_dash=True)
)
@click.option("--in-place", "-i", is_flag=True, help="Write the patched spec back to SPEC.")
@click.option(
    "--check",
    is_flag=True,
    help="Only check that the patch applies and the result is valid; print nothing on success.",
)
def patch(spec: Path, patch_file: str, in_place: bool, check: bool) -> None:
    """Apply an RFC 6902 JSON Patch to SPEC so that only the patched lines change.

    Prints a unified diff unless --in-place or --check is given. The patched spec is
    validated first; an invalid result is never written (exit 1). PATCH.json may be
    `-` to read standard input.
    """
    import difflib

    from flujo.spec.display import display_name
    from flujo.spec.edit import PatchError, apply_patch
    from flujo.spec.errors import SpecError
    from flujo.spec.load import check as check_spec
    from flujo.spec.load import registry_for

    name = display_name(spec)
    try:
        original = spec.read_bytes().decode("utf-8")
        patch_text = sys.stdin.read() if patch_file == "-" else Path(patch_file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"flujo patch: cannot read input: {exc}") from None
    try:
        patched = apply_patch(original, patch_text, file=name)
        _, diagnostics = check_spec(patched, registry=registry_for(spec))
    except PatchError as exc:
        raise InvalidInput(f"{patch_file}: error: {exc}") from None
    except SpecError as exc:
        diagnostics = exc.diagnostics
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        lines = [str(d).replace("<string>", name, 1) for d in errors]
        lines.append("flujo patch: the patched spec is invalid; nothing was written")
        raise InvalidInput("\n".join(lines))
    if check:
        return
    if in_place:
        spec.write_bytes(patched.encode("utf-8"))
        return
    diff = difflib.unified_diff(
        original.splitlines(keepends=True),
        patched.splitlines(keepends=True),
        f"a/{name}",
        f"b/{name}",
    )
    click.echo("".join(diff), nl=False)
