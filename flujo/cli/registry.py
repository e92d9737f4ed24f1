"""`flujo registry list`"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def registry() -> None:
    """Show the skills that specs may use (`uses:` and validators)."""


@registry.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Repository config whose allow-list to include (default: found from the "
    "current directory).",
)
def list_skills(as_json: bool, config: Path | None) -> None:
    """List built-in skills, plugin skills and allow-listed import paths."""
    from flujo.cli import InvalidInput
    from flujo.spec.config import find_config, load_config
    from flujo.spec.registry import RegistryError, StepRegistry

    try:  # a SpecError (a bad config) shows its diagnostics and exits 1
        repo_config = load_config(config or find_config(Path.cwd()))
        skills = StepRegistry(allow=repo_config.skills.allow).manifest()
    except (RegistryError, ImportError, AttributeError) as exc:
        raise InvalidInput(f"flujo registry: cannot load an allow-listed skill: {exc}") from None
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in skills], indent=2))
        return
    width = max(len(s.name) for s in skills)
    for s in skills:
        kind = "validator" if s.kind == "validator" else "skill"
        click.echo(f"{s.name:<{width}}  {kind:<9}  {s.summary}")
