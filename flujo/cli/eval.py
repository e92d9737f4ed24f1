"""`flujo eval SPEC [--patch FILE | --candidate SPEC2]`: compare on captured examples."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from flujo.cli import UsageError, exit_with
from flujo.cli.options import store_options
from flujo.cli.terminal import Progress
from flujo.spec.figures import money


@click.command("eval")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--patch",
    "patch_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JSON Patch (or a suggestion's JSON with a `patch`) to evaluate.",
)
@click.option(
    "--candidate",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Another version of the spec to evaluate.",
)
@click.option("--examples", type=click.IntRange(min=1), help="Use at most N captured examples.")
@click.option("--max-cost", type=click.FloatRange(min=0), help="Stop before spending more (USD).")
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    help="Exit 1 when the agreement is below this share (a CI gate).",
)
@click.option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible model server.")
@click.option(
    "--replay",
    type=click.Path(file_okay=False, path_type=Path),
    help="Answer model calls from this cassette folder.",
)
@click.option("--fake", is_flag=True, help="Use the built-in fake model server (wiring only).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
@store_options
def eval_command(
    spec: Path,
    patch_file: Path | None,
    candidate: Path | None,
    examples: int | None,
    max_cost: float | None,
    min_agreement: float | None,
    base_url: str | None,
    replay: Path | None,
    fake: bool,
    as_json: bool,
    store: Path | str | None,
) -> None:
    """Replay captured examples through a candidate and compare the changed steps' outputs
    with the baseline's; without --patch/--candidate, a dataset run of SPEC."""
    from flujo.engine.session import SessionOptions
    from flujo.engine.store import RunStore, default_path, exists
    from flujo.learn.evaluate import evaluate
    from flujo.spec.errors import SpecError
    from flujo.spec.model import Pipeline

    if patch_file is not None and candidate is not None:
        raise click.UsageError("give --patch or --candidate, not both")
    if not spec.is_file():
        raise UsageError(f"flujo eval: {spec}: no such file")
    target = store or default_path()
    if not exists(target):
        raise UsageError(f"flujo eval: no run store at {target} (capture some runs first)")
    try:
        baseline = Pipeline.from_yaml(spec)
        label: str | None = None
        other: Pipeline | None = None
        if patch_file is not None:
            from flujo.spec.edit import apply_patch

            data = json.loads(patch_file.read_text(encoding="utf-8"))
            ops = data.get("patch") if isinstance(data, dict) else data
            if not isinstance(ops, list):
                raise ValueError(f"{patch_file}: not a JSON Patch (a list of operations)")
            text = apply_patch(
                spec.read_text(encoding="utf-8"), ops, file=baseline.file or str(spec)
            )
            other = Pipeline.from_yaml(text)
            label = str(patch_file)
        elif candidate is not None:
            other, label = Pipeline.from_yaml(candidate), str(candidate)
    except SpecError as exc:
        raise UsageError("\n".join(str(d) for d in exc.errors)) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"flujo eval: {exc}") from None
    options = SessionOptions(base_url=base_url, replay=replay, fake=fake)
    db = RunStore(target)
    try:
        with Progress("examples", enabled=not as_json) as progress:
            report = asyncio.run(
                evaluate(
                    baseline,
                    other,
                    db,
                    options,
                    spec_path=baseline.file or str(spec),
                    examples=examples,
                    max_cost=max_cost,
                    candidate_label=label,
                    progress=progress,
                )
            )
    finally:
        db.close()
    data = report.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        print_eval(data)
    if min_agreement is not None and other is not None:
        agreement = data.get("agreement")
        if agreement is None or agreement < min_agreement:
            click.echo(
                f"flujo eval: agreement {_share(agreement)} is below --min-agreement "
                f"{min_agreement:.0%}",
                err=True,
            )
            exit_with(1)


def _share(value: Any) -> str:
    return "not measured" if value is None else f"{value:.1%}"


def _money(value: Any) -> str:
    return money(value)


def print_eval(data: dict[str, Any]) -> None:
    captured = ", ".join(f"{n} {k}" for k, n in data["captured_runs"].items()) or "none"
    click.echo(
        f"{data['spec']}: {data['examples']} of {data['examples_available']} captured live "
        f"examples evaluated (runs {data['mode']}; captured runs by mode/origin: {captured})"
    )
    if data["examples"] == 0:
        click.echo("  not measured: no captured examples of live runs (turn on telemetry.capture)")
    if data.get("candidate") is not None:
        interval = data.get("interval_95")
        span = f" (95% interval {interval[0]:.1%}–{interval[1]:.1%})" if interval else ""
        click.echo(
            f"  Agreement on {', '.join(data['steps']) or 'no changed step'}: "
            f"{data['agreed']}/{data['examples']} = {_share(data['agreement'])}{span}"
        )
        comparators = ", ".join(f"{k}: {v}" for k, v in data["comparators"].items())
        click.echo(
            f"  Compared by: {comparators or '-'}; baseline reused for "
            f"{data['baseline_reused']} example(s)"
        )
        for item in data["disagreements"][:10]:
            click.echo(
                f"  ✗ {item['step']} on run {item['run_id']}: input "
                f"{json.dumps(item['input'], ensure_ascii=False)[:200]}"
            )
            click.echo(f"      before: {json.dumps(item['before'], ensure_ascii=False)[:300]}")
            click.echo(f"      after:  {json.dumps(item['after'], ensure_ascii=False)[:300]}")
    else:
        click.echo(
            f"  Checks passed: {data['checks_passed']}/{data['examples']} "
            f"({_share(data['pass_rate'])}); test assertions over the inputs: "
            f"{data['assertions_passed']}/{data['assertions_total']}"
        )
    for side in ("before", "after"):
        s = data[side]
        if s["runs"] or s["cost_usd_per_run"] is not None:
            p50, p95 = s["latency_s_p50"], s["latency_s_p95"]
            lat = f"latency p50 {p50:.3f}s p95 {p95:.3f}s" if p50 is not None else "latency -"
            click.echo(f"  {side.capitalize()}: {_money(s['cost_usd_per_run'])}/run, {lat}")
    click.echo(f"  Spent on this evaluation: {_money(data['eval_cost_usd'])}")
    if data["stopped"]:
        click.echo(f"  Stopped early: {data['stopped']}")
