"""`flujo runs list` and `flujo runs show RUN_ID`"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from flujo.cli import UsageError
from flujo.cli.options import model_options, store_options
from flujo.spec.figures import money


@click.group()
def runs() -> None:
    """Inspect recorded runs (the run store)."""


def _store(path: Path | str | None) -> Any:
    from flujo.engine.store import RunStore, default_path, exists

    target = path or default_path()
    if not exists(target):
        raise UsageError(f"flujo runs: no run store at {target} (run a pipeline first)")
    store = RunStore(target)
    click.get_current_context().call_on_close(store.close)  # a database connection too
    return store


@runs.command("list")
@store_options
@click.option("--limit", "-n", default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_runs(store: Path | str | None, limit: int, as_json: bool) -> None:
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
def show_run(run_id: str, store: Path | str | None, as_json: bool) -> None:
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
    if run.get("resumed_from"):
        root = next((s for s in spans if s["parent_id"] is None), None)
        after = (root or {}).get("attributes", {}).get("flujo.run.resumed_after")
        where = f" after {after}" if after else " from its start" if after == "" else ""
        click.echo(f"resumed from run {run['resumed_from']}{where}")
    later = db.resumed_as(run["run_id"])
    if later is not None:
        click.echo(f"resumed as run {later}")
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


@runs.command("resume")
@click.argument("run_id")
@store_options
@model_options
@click.option(
    "--answer",
    "answer_texts",
    multiple=True,
    metavar="[STEP=]VALUE",
    help="Answer a hitl step (JSON when its input_schema wants more than text); without "
    "STEP=, the first question asked. Repeatable.",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The spec file, when it is not where the run read it.",
)
@click.option("--force", is_flag=True, help="Resume a run marked running on another host.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def resume_run(
    run_id: str,
    store: Path | str | None,
    answer_texts: tuple[str, ...],
    spec_path: Path | None,
    force: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Continue a run that stopped (killed, cancelled, failed, or paused at a question)
    from its last checkpoint, with the context and step outputs it had.

    The continuation is a new run that records the run it resumes; its spans say so.
    A spec changed since the run started is refused: a changed spec applies on the next
    run, never to one in flight. A run that succeeded has nothing to resume.

    \b
    Exit codes: 0 the resumed run succeeded, 1 it failed or cannot be resumed (the
    message says why), 2 no store, no such run or no spec file, 4 it paused again
    (a question is still unanswered), 130 interrupted.
    """
    import asyncio

    from flujo.cli import Interrupted, exit_with
    from flujo.cli.load_and_run import load_spec_or_exit
    from flujo.cli.run import format_output, format_status
    from flujo.engine.checkpoint import NoSuchRun
    from flujo.engine.session import SessionOptions, session
    from flujo.spec.errors import EXIT_INVALID, EXIT_OK, EXIT_PARTIAL

    db = _store(store)
    found = db.find_runs(run_id, limit=11)
    if not found:
        raise UsageError(f"flujo runs: no run matches '{run_id}' in {db.path}")
    if len(found) > 1:
        raise UsageError(_ambiguous(run_id, found, 10))
    run = found[0]
    db.close()
    path = spec_path or (Path(run["spec_path"]) if run["spec_path"] else None)
    if path is None or not path.is_file():
        raise UsageError(
            f"flujo runs: the spec of run {run['run_id']} is not at {path or '(not recorded)'}:"
            " give it with --spec PATH"
        )
    pipeline = load_spec_or_exit(path)
    answers = _answers(answer_texts, pipeline)
    settings = SessionOptions.from_cli(options | {"store": store, "ask": True})

    async def resume() -> Any:
        async with session(pipeline, settings) as runner:
            return await runner.resume(run["run_id"], answers=answers, force=force)

    try:
        result = asyncio.run(resume())
    except NoSuchRun as exc:  # pragma: no cover - found above; removed since
        raise UsageError(f"flujo runs: {exc}") from None
    except KeyboardInterrupt:
        raise Interrupted("flujo: interrupted; the run was recorded as cancelled") from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str, ensure_ascii=False))
    else:
        click.echo(f"resumed run {run['run_id']} as {result.run_id}", err=True)
        color = "green" if result.success else "yellow" if result.status == "paused" else "red"
        click.secho(format_status(result), err=True, fg=color)
        if result.output is not None:
            click.echo(format_output(result.output))
    if result.status == "paused":
        exit_with(EXIT_PARTIAL)
    exit_with(EXIT_OK if result.success else EXIT_INVALID)


def _answers(texts: tuple[str, ...], pipeline: Any) -> dict[str | None, str]:
    """`--answer` values by the hitl step they name (None: the first question)."""
    hitl = {step.name for _, step in pipeline.walk() if step.kind == "hitl"}
    answers: dict[str | None, str] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        key: str | None = name if sep and name in hitl else None
        if key is None:
            value = text
        if key in answers:
            shown = f"step '{key}'" if key else "the first question"
            raise click.BadParameter(f"two answers for {shown}", param_hint="--answer")
        answers[key] = value
    return answers


@runs.command("prune")
@store_options
@click.option(
    "--older-than",
    "older_than",
    default=None,
    help="Drop captured examples, and the checkpoints of stopped runs, older than this"
    " (e.g. 30d, 12h).",
)
@click.option(
    "--keep", type=click.IntRange(min=0), default=None, help="Captured runs kept per spec."
)
def prune_runs(store: Path | str | None, older_than: str | None, keep: int | None) -> None:
    """Drop captured examples beyond a retention limit, and with --older-than the
    checkpoints of runs that stopped that long ago (they can no longer be resumed); runs
    and spans stay."""
    from flujo.cli.suggest import parse_duration
    from flujo.engine.capture import prune

    if older_than is None and keep is None:
        raise click.UsageError("give --older-than, --keep or both")
    try:
        seconds = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    opened = _store(store)
    dropped = prune(opened, older_than_s=seconds, keep=keep)
    click.echo(f"dropped the captured examples of {dropped} run{'s' * (dropped != 1)}")
    if seconds is not None:
        stopped = opened.drop_old_checkpoints(time.time() - seconds)
        click.echo(
            f"dropped the checkpoints of {stopped} stopped run{'s' * (stopped != 1)}"
            " (they can no longer be resumed)"
        )


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
