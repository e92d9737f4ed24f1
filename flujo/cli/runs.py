"""`flujo runs list` and `flujo runs show RUN_ID`"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from flujo.cli import UsageError
from flujo.cli.options import store_options
from flujo.spec.figures import money


@click.group()
def runs() -> None:
    """Inspect recorded runs (the run store)."""


def _store(path: Path | None) -> Any:
    from flujo.engine.store import RunStore, default_path, exists

    target = path or default_path()
    if not exists(target):
        raise UsageError(f"flujo runs: no run store at {target} (run a pipeline first)")
    return RunStore(target)


@runs.command("list")
@store_options
@click.option("--limit", "-n", default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_runs(store: Path | None, limit: int, as_json: bool) -> None:
    """The most recent runs, newest first."""
    rows = _store(store).list_runs(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    line = "{:<22}  {:<19}  {:<9}  {:<7}  {:<12}  {:<20}  {:>8}  {:>6}  {:<12}  {}"
    click.echo(
        line.format(
            "RUN",
            "STARTED (UTC)",
            "STATUS",
            "MODE",
            "ORIGIN",
            "PIPELINE",
            "LATENCY",
            "TOKENS",
            "COST",
            "SPEC",
        )
    )
    for row in rows:
        started = datetime.fromtimestamp(row["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        cost = row["total_cost_usd"]
        cost_text = money(cost)
        latency = row["latency_s"] or 0.0
        status = row["status"] + (f" ({row['cause']})" if row.get("cause") else "")
        click.echo(
            line.format(
                row["run_id"],
                started,
                status,
                row["mode"],
                row["origin"],
                row["pipeline"] or "-",
                f"{latency:.3f}s",
                row["total_tokens"] or 0,
                cost_text,
                row["spec_path"] or "-",
            )
        )


@runs.command("show")
@click.argument("run_id")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_run(run_id: str, store: Path | None, as_json: bool) -> None:
    """A run as a tree of step attempts, each with its yaml_path and file:line."""
    db = _store(store)
    shown_at_most = 10
    found = db.find_runs(run_id, limit=shown_at_most + 1)
    if not found:
        raise UsageError(f"flujo runs: no run matches '{run_id}' in {db.path}")
    if len(found) > 1:
        raise UsageError(_ambiguous(run_id, found, shown_at_most))
    run = found[0]
    spans = db.spans(run["run_id"])
    from flujo.engine.capture import captures_of_run

    captured = captures_of_run(db, run["run_id"])
    if as_json:
        shown: dict[str, Any] = {"run": run, "spans": spans}
        if captured:
            shown["captured"] = captured
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    cost = run["total_cost_usd"]
    cause = f" ({run['cause']})" if run.get("cause") else ""
    click.echo(
        f"run {run['run_id']}  {run['status']}{cause}  mode {run['mode']}  origin "
        f"{run['origin']}  spec {run['spec_path']} "
        f"(sha256 {run['spec_sha256'][:12]}…)  {run['latency_s'] or 0:.3f}s  "
        f"{run['total_tokens'] or 0} tokens  "
        + ("cost unknown" if cost is None else money(cost))
        + f"  prices {run.get('prices_version') or 'not recorded'}"
    )
    if run["error"]:
        click.echo(f"error: {run['error']}")
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent_id"], []).append(span)
    roots = children.get(None, [])
    for root in roots:
        _print_tree(children, root["span_id"], run["spec_path"], "")
    if captured:
        click.echo("captured examples (redacted):")
        for example in captured:
            cut = "  (truncated)" if example["truncated"] else ""
            click.echo(f"  {example['step'] or '(run)'}{cut}")
            click.echo(f"    input:  {json.dumps(example['input'], ensure_ascii=False)[:2000]}")
            click.echo(f"    output: {json.dumps(example['output'], ensure_ascii=False)[:2000]}")


def _ambiguous(prefix: str, found: list[dict[str, Any]], shown_at_most: int) -> str:
    lines = [
        f"flujo runs: '{prefix}' matches "
        + (f"more than {shown_at_most}" if len(found) > shown_at_most else str(len(found)))
        + " runs; give more of the id:"
    ]
    for row in found[:shown_at_most]:
        started = datetime.fromtimestamp(row["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"  {row['run_id']}  {started}  {row['status']}  {row['origin']}  "
            f"{row['spec_path'] or '-'}"
        )
    return "\n".join(lines)


@runs.command("prune")
@store_options
@click.option(
    "--older-than",
    "older_than",
    default=None,
    help="Drop captured examples older than this (e.g. 30d, 12h).",
)
@click.option(
    "--keep", type=click.IntRange(min=0), default=None, help="Captured runs kept per spec."
)
def prune_runs(store: Path | None, older_than: str | None, keep: int | None) -> None:
    """Drop captured examples beyond a retention limit (runs and spans stay)."""
    from flujo.cli.suggest import parse_duration
    from flujo.engine.capture import prune

    if older_than is None and keep is None:
        raise click.UsageError("give --older-than, --keep or both")
    try:
        seconds = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    dropped = prune(_store(store), older_than_s=seconds, keep=keep)
    click.echo(f"dropped the captured examples of {dropped} run{'s' * (dropped != 1)}")


def _print_tree(
    children: dict[str | None, list[dict[str, Any]]], parent: str, file: str, indent: str
) -> None:
    for span in children.get(parent, []):
        latency = ((span["end_ns"] or span["start_ns"]) - span["start_ns"]) / 1e9
        mark = {"OK": "✓", "ERROR": "✗"}.get(span["status"], "…")
        details = [f"{latency * 1000:.1f} ms"]
        if span["input_tokens"] is not None:
            details.append(f"{span['input_tokens']}+{span['output_tokens']} tok")
        if span["cost_usd"] is not None:
            details.append(money(span["cost_usd"]))
        elif span["model"] is not None:
            details.append("cost unknown")
        if (span["attempt"] or 1) > 1:
            details.append(f"attempt {span['attempt']}")
        where = (span.get("attributes") or {}).get("flujo.yaml.file") or file
        click.echo(
            f"{indent}{mark} {span['step_name']}  {span['yaml_path']}  {where}:{span['line']}  "
            + "  ".join(details)
        )
        if span["error"]:
            cause = f"[{span['cause']}] " if span.get("cause") else ""
            click.echo(f"{indent}    {cause}{span['error']}")
        attributes = span.get("attributes") or {}
        if attributes.get("flujo.jit.plan"):
            sha = str(attributes.get("flujo.jit.plan_sha256", ""))[:12]
            builder = attributes.get("flujo.jit.builder", "?")
            source = attributes.get("flujo.jit.plan_source")
            how = f", {source}" if source else ""
            if source == "built" and "flujo.jit.builder_latency_s" in attributes:
                spent = attributes.get("flujo.jit.builder_cost_usd")
                cost = f" {money(spent)}" if isinstance(spent, int | float) else ""
                how += f" in {float(attributes['flujo.jit.builder_latency_s']):.3f}s"
                how += f" for{cost}" if cost else ""
            click.echo(
                f"{indent}    plan: {attributes['flujo.jit.plan']}  ({builder}{how}, sha {sha})"
            )
            for reason in attributes.get("flujo.jit.rejected") or []:
                click.echo(f"{indent}    refused before: {reason}")
        _print_tree(children, span["span_id"], file, indent + "  ")
