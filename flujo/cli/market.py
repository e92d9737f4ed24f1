"""`flujo market query`: which chain of typed skills turns one type into another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flujo.cli import exit_with
from flujo.cli.options import StoreLocation
from flujo.spec.errors import EXIT_INVALID, EXIT_OK

if TYPE_CHECKING:
    from flujo.spec.skill_figures import Listing

LOCAL_FIGURES = Path(".flujo") / "skill-figures.json"
figures_option = click.option(
    "--figures",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Characterisation manifest (default: .flujo/skill-figures.json, else the "
    "one shipped with Flujo).",
)


@click.group()
def market() -> None:
    """Plan over the skill marketplace: typed skills with measured figures."""


@market.command("query")
@click.option("--from", "source", required=True, help="Input type (e.g. str).")
@click.option("--to", "target", required=True, help="Output type (e.g. ValidatedSQL).")
@click.option(
    "--minimize", type=click.Choice(["cost", "latency"]), default="cost", show_default=True
)
@click.option("--min-success", type=click.FloatRange(0, 1), default=0.0, help="Success floor.")
@click.option("--max-latency", type=click.FloatRange(0), help="Ceiling on the p95, seconds.")
@click.option("--max-cost", type=click.FloatRange(0), help="Ceiling on the cost per run, USD.")
@click.option("--allow", multiple=True, help="Only these skills (repeatable).")
@click.option("--limit", type=click.IntRange(1, 20), default=3, show_default=True)
@figures_option
@click.option(
    "--store",
    type=StoreLocation(must_exist=True),
    help="Run store whose live runs refine the figures (badge: measured on N runs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def query(
    source: str,
    target: str,
    minimize: str,
    min_success: float,
    max_latency: float | None,
    max_cost: float | None,
    allow: tuple[str, ...],
    limit: int,
    figures: Path | None,
    store: Path | str | None,
    as_json: bool,
) -> None:
    """Print the best plans from --from to --to, with their estimates and where each
    figure comes from; exit 1 with the reason when no plan meets the constraints.

    \b
    Exit codes: 0 a plan was found, 1 none meets the constraints, 2 bad usage.
    """
    from flujo.spec.marketplace import MarketplaceQuery
    from flujo.spec.skill_figures import offers

    found = load_listings(figures, store)
    answer = MarketplaceQuery(
        source,
        target,
        minimize,  # type: ignore[arg-type]
        min_success,
        max_latency,
        allow=list(allow) or None,
        max_cost_usd=max_cost,
        limit=limit,
    ).run(offers(found))
    if as_json:
        data = {
            "from": source,
            "to": target,
            "minimize": minimize,
            "plans": [p.to_dict() for p in answer.plans],
            "explanation": answer.explanation,
        }
        click.echo(json.dumps(data, indent=2))
    elif not answer.feasible:
        click.echo(f"flujo market: no plan: {answer.explanation}", err=True)
    else:
        for rank, plan in enumerate(answer.plans, 1):
            click.echo(_plan_text(rank, plan))
    exit_with(EXIT_OK if answer.feasible else EXIT_INVALID)


def load_listings(figures: Path | None, store: Path | str | None) -> list[Listing]:
    """Every skill with its figures: the manifest, refined by a store's live runs."""
    from flujo.cli import InvalidInput
    from flujo.learn.market import observed
    from flujo.spec.config import find_config, load_config
    from flujo.spec.registry import StepRegistry
    from flujo.spec.skill_figures import Manifest, listings

    manifest_path = figures or (LOCAL_FIGURES if LOCAL_FIGURES.is_file() else None)
    try:
        manifest = Manifest.load(manifest_path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"flujo market: cannot read {manifest_path}: {exc}") from None
    seen = None
    if store is not None:
        from flujo.engine.store import RunStore

        run_store = RunStore(store)
        try:
            seen = observed(run_store)
        finally:
            run_store.close()
    config = load_config(find_config(Path.cwd()))
    registry = StepRegistry(allow=config.skills.allow, types=config.types)
    return listings(registry, manifest, seen)


def _plan_text(rank: int, plan: Any) -> str:
    from flujo.spec.figures import money

    success = "not measured" if plan.success is None else f"{plan.success:.2f}"
    latency = "not measured" if plan.latency_p95_s is None else f"≤ {plan.latency_p95_s:.2f} s"
    types = " → ".join([plan.steps[0].source, *(s.target for s in plan.steps)])
    lines = [
        f"{rank}. {' → '.join(plan.names)}   ({types})",
        f"   cost {money(plan.cost_usd)} per run · p95 {latency} · success {success}",
    ]
    lines += [f"   - {s.name}: {s.badge}" for s in plan.steps]
    return "\n".join(lines)
