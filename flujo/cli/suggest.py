"""`flujo suggest SPEC`: ranked, verified improvements from recorded telemetry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flujo.cli import EXIT_OK, EXIT_USAGE
from flujo.cli.options import store_options

if TYPE_CHECKING:
    from flujo.engine.learn.suggest import SuggestReport

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """`30m`, `24h`, `7d`, `2w` -> seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not a duration (e.g. 30m, 24h, 7d, 2w)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--agent",
    default="offline",
    show_default=True,
    help="Who writes the patches: `offline` (rules, no network) or `openai:MODEL`.",
)
@click.option(
    "--base-url",
    envvar="OPENAI_BASE_URL",
    help="OpenAI-compatible server for --agent openai:MODEL (default: $OPENAI_BASE_URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON report.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N suggestions.")
@click.option("--since", help="Only runs started within this long (30m, 24h, 7d, 2w).")
@store_options
def suggest(
    spec: Path,
    agent: str,
    base_url: str | None,
    as_json: bool,
    limit: int | None,
    since: str | None,
    store: Path | None,
) -> None:
    """Suggest improvements to SPEC from its recorded runs, ranked by risk-adjusted value.

    Every suggestion is a JSON Patch that applies, validates and keeps the spec's embedded
    tests green (replayed from cassettes when the spec has them, else with their mocks);
    suggestions that fail are dropped and counted. Exit codes: 0 (also when there is
    nothing to suggest), 2 bad input (spec, option, unreachable model server).
    """
    import asyncio

    from flujo.engine.learn.meta_agents import AgentUnavailable, make_agent
    from flujo.engine.learn.suggest import suggest as run_suggest
    from flujo.engine.store import RunStore, default_path
    from flujo.spec.errors import SpecError

    try:
        since_s = parse_duration(since) if since is not None else None
        meta_agent = make_agent(agent, base_url=base_url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not spec.is_file():
        click.echo(f"flujo suggest: {spec}: no such file", err=True)
        raise SystemExit(EXIT_USAGE)
    target = store or default_path()
    if not target.exists():
        _no_telemetry(spec, target, as_json, agent)
        raise SystemExit(EXIT_OK)

    async def main() -> SuggestReport:
        db = RunStore(target)
        try:
            return await run_suggest(spec, db, agent=meta_agent, limit=limit, since_s=since_s)
        finally:
            db.close()
            close = getattr(meta_agent, "close", None)
            if close is not None:
                await close()

    try:
        report = asyncio.run(main())
    except SpecError as exc:
        for diagnostic in exc.errors:
            click.echo(str(diagnostic), err=True)
        click.echo("flujo suggest: fix the spec first (flujo validate)", err=True)
        raise SystemExit(EXIT_USAGE) from None
    except AgentUnavailable as exc:
        click.echo(f"flujo suggest: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    except Exception as exc:
        import openai

        if not isinstance(exc, openai.OpenAIError):
            raise
        click.echo(f"flujo suggest: the model server failed: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    elif report.no_telemetry:
        _no_telemetry(spec, target, False, agent)
    else:
        print_report(report)
    raise SystemExit(EXIT_OK)


def _no_telemetry(spec: Path, store: Path, as_json: bool, agent: str) -> None:
    if as_json:
        from flujo.engine.learn.suggest import SuggestReport

        click.echo(json.dumps(SuggestReport(str(spec), agent).to_dict(), indent=2))
        return
    click.echo(
        f"No runs of {spec} are recorded in {store}, so there is nothing to learn from yet.\n"
        f"Record some with `flujo run {spec} --input ...` (or `flujo demo` for the examples),\n"
        "or import runs from elsewhere with `flujo telemetry import FILE`."
    )


def print_report(report: SuggestReport, *, diff: bool = True) -> None:
    """The human-readable report (used by `flujo suggest` and `flujo demo`)."""
    versions = f"{report.versions} spec version{'s' * (report.versions != 1)}"
    click.echo(
        f"{report.spec}: {report.runs} runs ({versions}, ~{report.runs_per_month:.0f} "
        f"runs/month at the observed rate), {report.opportunities} "
        f"opportunit{'y' if report.opportunities == 1 else 'ies'}"
    )
    if not report.suggestions:
        click.echo("  Nothing to suggest: every step looks right for the telemetry recorded.")
    for rank, item in enumerate(report.suggestions, 1):
        where = f"{item.yaml_path}" + (f" (line {item.line})" if item.line else "")
        click.echo(f"\n  {rank}. {item.headline}")
        click.echo(f"     {item.kind} at {where}  [id {item.id}]")
        click.echo(f"     Why: {item.why}")
        click.echo(f"     Evidence: {_evidence(item.evidence)}")
        est = item.estimate
        click.echo(
            f"     Risk: {item.risk}; quality: {est.quality}; confidence: "
            f"{est.confidence_label} ({est.confidence:.2f})"
        )
        v = item.verification
        tests = (
            f"{v.tests_passed}/{v.tests_passed + v.tests_failed} embedded tests pass "
            f"({v.tests_mode})"
            if v.tests_mode != "none"
            else "no embedded tests"
        )
        click.echo(f"     Verified: validates; {tests}")
        click.echo(f"     Patch: {json.dumps(item.patch)}")
        if diff:
            for line in item.diff.splitlines()[2:]:
                click.echo(f"       {line}")
    if report.dropped:
        reasons: dict[str, int] = {}
        for dropped in report.dropped:
            reasons[dropped.reason] = reasons.get(dropped.reason, 0) + 1
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        click.echo(f"\n  Dropped {len(report.dropped)}: {summary}")
        for dropped in report.dropped:
            detail = f": {dropped.detail}" if dropped.detail else ""
            click.echo(f"    {dropped.kind} at {dropped.yaml_path}: {dropped.reason}{detail}")
    stats = report.guard
    rejected = sum(stats.rejected.values())
    if stats.accepted or rejected:
        by_reason = ", ".join(f"{r} {n}" for r, n in sorted(stats.rejected.items()))
        click.echo(
            f"  Prompt Guard: {stats.accepted} accepted, {rejected} rejected"
            + (f" ({by_reason})" if by_reason else "")
        )


def _evidence(evidence: dict[str, Any]) -> str:
    from flujo.engine.learn.roi import money

    parts = []
    for key, value in evidence.items():
        if key == "sample_size":
            continue  # the same as runs
        label = key.removesuffix("_s").removesuffix("_usd").replace("_usd_", " ")
        if isinstance(value, float):
            if key.endswith(("share", "rate")):
                value = f"{value:.0%}"
            elif "usd" in key:
                value = money(value)
            elif key.endswith("_s"):
                value = f"{value:.2f}s"
            else:
                value = f"{value:g}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        parts.append(f"{label.replace('_', ' ')} {value}")
    return "; ".join(parts)
