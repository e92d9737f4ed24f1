"""`flujo demo`: run the example pipelines offline and show where telemetry went."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flujo.cli import UsageError, exit_with
from flujo.cli.options import store_options
from flujo.cli.terminal import Progress
from flujo.spec.errors import EXIT_INVALID, EXIT_OK
from flujo.spec.figures import money


@click.command()
@click.option(
    "--examples",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("examples"),
    show_default=True,
    help="Folder of specs, each with inputs in inputs/<name>.jsonl.",
)
@click.option("--repeat", default=2, show_default=True, help="Runs per input.")
@store_options
def demo(examples: Path, repeat: int, store: Path | str | None) -> None:
    """Run every example pipeline on its sample inputs against the built-in fake model
    server (no key, no network), recording runs and spans in the run store."""
    from flujo.cli.load_and_run import load_spec_or_exit, run_session
    from flujo.engine.store import RunStore, default_path

    plans: list[tuple[Path, list[Any]]] = []
    for spec in sorted(examples.glob("*.y*ml")):
        inputs_file = examples / "inputs" / f"{spec.stem}.jsonl"
        if inputs_file.is_file():
            inputs = [json.loads(line) for line in inputs_file.read_text().splitlines() if line]
            plans.append((spec, inputs * repeat))
    if not plans:
        raise UsageError(f"flujo demo: no specs with inputs under {examples}")

    total = sum(len(inputs) for _, inputs in plans)
    target = store or default_path()
    failed = 0
    click.echo(f"Running {total} pipeline runs on the fake model server, recording to {target}")
    for spec, inputs in plans:
        pipeline = load_spec_or_exit(spec)
        label = f"  {spec.name:<24}"
        with Progress(label) as progress:
            results = run_session(
                pipeline,
                inputs,
                {"fake": True, "store": target},
                on_result=progress.advancing(len(inputs)),
            )
        spec_failed = sum(not r.success for r in results)
        failed += spec_failed
        cost = sum(r.total_cost_usd or 0.0 for r in results)
        mean = sum(r.latency_s for r in results) / len(results)
        click.echo(
            f"  {spec.name:<24} {len(results) - spec_failed} ok, {spec_failed} failed, "
            f"{money(cost)} in all, {mean * 1000:.0f} ms per run"
        )
    db = RunStore(target)
    try:
        newest = db.list_runs(1)[0]["run_id"]
        click.echo(
            f"\nTelemetry: runs and spans (tagged with flujo.yaml.path and spec_sha256) are in "
            f"{target}.\n\nWhat the runs suggest (flujo suggest SPEC, offline agent):\n"
        )
        _print_suggestions([spec for spec, _ in plans], db)
    finally:
        db.close()
    click.echo(f"\nNext: flujo runs list   |   flujo runs show {newest}   |   flujo suggest SPEC")
    exit_with(EXIT_INVALID if failed else EXIT_OK)


def _print_suggestions(specs: list[Path], db: Any) -> None:
    """The ranked suggestions for each example, from the runs just recorded."""
    import asyncio

    from flujo.cli.suggest import print_report
    from flujo.learn.suggest import suggest

    async def reports() -> list[Any]:
        return [await suggest(spec, db, include=("fake",)) for spec in specs]  # demo runs

    for report in asyncio.run(reports()):
        print_report(report)
        click.echo("")
