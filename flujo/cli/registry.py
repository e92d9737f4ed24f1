"""`flujo registry list` and `flujo registry characterize`"""

from __future__ import annotations

import json
from pathlib import Path

import click

from flujo.cli.market import figures_option


@click.group()
def registry() -> None:
    """Show the skills that specs may use (`uses:` and validators), and measure them."""


@registry.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Repository config whose allow-list to include (default: found from the "
    "current directory).",
)
@figures_option
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the registry page (the typed graph and every skill's figures) to this file.",
)
def list_skills(
    as_json: bool, config: Path | None, figures: Path | None, html_path: Path | None
) -> None:
    """List built-in skills, plugin skills, allow-listed import paths and model-backed
    skills, with their types, measured figures and where the figures come from."""
    from flujo.cli import InvalidInput
    from flujo.cli.market import LOCAL_FIGURES
    from flujo.spec.config import find_config, load_config
    from flujo.spec.registry import RegistryError, StepRegistry
    from flujo.spec.skill_figures import Manifest, listings

    try:  # a SpecError (a bad config) shows its diagnostics and exits 1
        repo_config = load_config(config or find_config(Path.cwd()))
        reg = StepRegistry(allow=repo_config.skills.allow, types=repo_config.types)
        skills = reg.manifest()
    except (RegistryError, ImportError, AttributeError) as exc:
        raise InvalidInput(f"flujo registry: cannot load an allow-listed skill: {exc}") from None
    path = figures or (LOCAL_FIGURES if LOCAL_FIGURES.is_file() else None)
    manifest = Manifest.load(path)
    found = {item.name: item for item in listings(reg, manifest)}
    if html_path is not None:
        from flujo.learn.registry_page import render_registry_page

        html_path.write_text(render_registry_page(list(found.values()), manifest), "utf-8")
        click.echo(f"wrote {html_path}", err=True)
        return
    if as_json:
        rows = []
        for info in skills:
            row = info.to_dict()
            listing = found.get(info.name)
            row["figures"] = listing.to_dict()["figures"] if listing else None
            row["badge"] = listing.badge if listing else None
            rows.append(row)
        rows += [
            item.to_dict() | {"kind": "model"} for item in found.values() if item.origin == "model"
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    names = [s.name for s in skills] + [n for n, i in found.items() if i.origin == "model"]
    width = max(len(n) for n in names)
    for s in skills:
        kind = "validator" if s.kind == "validator" else "skill"
        types = f"{s.input_type} → {s.output_type}"
        click.echo(f"{s.name:<{width}}  {kind:<9}  {types:<22}  {s.summary}")
    for item in found.values():
        if item.origin == "model":
            types = f"{item.input_type} → {item.output_type}"
            click.echo(f"{item.name:<{width}}  {'model':<9}  {types:<22}  {item.summary}")
    measured = [i for i in found.values() if i.figures is not None]
    if measured:
        click.echo("\nFigures per call (flujo market query plans with them):")
        from flujo.learn.characterize import describe

        for item in measured:
            assert item.figures is not None
            click.echo(f"  {item.name}: {describe(item.figures)} — {item.badge}")


@registry.command("characterize")
@click.option(
    "--provider",
    type=click.Choice(["fake", "live"]),
    default="fake",
    show_default=True,
    help="fake: the built-in fake model (cost only); live: FLUJO_BASE_URL / OpenAI.",
)
@click.option("--samples", type=click.IntRange(1), help="At most N samples per skill.")
@click.option("--max-cost", type=click.FloatRange(0), help="Stop before spending more (USD).")
@click.option("--skill", "only", multiple=True, help="Only this skill (repeatable).")
@click.option("--base-url", envvar="FLUJO_BASE_URL", help="OpenAI-compatible server (live).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".flujo") / "skill-figures.json",
    show_default=True,
)
def characterize_command(
    provider: str,
    samples: int | None,
    max_cost: float | None,
    only: tuple[str, ...],
    base_url: str | None,
    output: Path,
) -> None:
    """Run every plannable skill on its sample set and write the figures (the baseline
    `flujo market query` and `flujo registry list` use)."""
    import asyncio

    from flujo.learn.characterize import characterize, describe
    from flujo.spec.figures import money
    from flujo.spec.registry import StepRegistry

    result = asyncio.run(
        characterize(
            StepRegistry(),
            provider=provider,
            samples=samples,
            max_cost_usd=max_cost,
            only=only,
            base_url=base_url,
        )
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    result.manifest.dump(output)
    for name, figures in sorted(result.manifest.figures.items()):
        click.echo(f"{name}: {describe(figures)}")
    for name, why in result.skipped.items():
        click.echo(f"{name}: {why}", err=True)
    click.echo(f"Spent {money(result.spent_usd)} on {provider} calls; wrote {output}", err=True)
