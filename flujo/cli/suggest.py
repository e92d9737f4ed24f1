"""`flujo suggest SPEC`: ranked, verified improvements from recorded telemetry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flujo.cli import UsageError
from flujo.cli.options import store_options

if TYPE_CHECKING:
    from flujo.learn.suggest import SuggestReport

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
@click.option(
    "--create-pr",
    is_flag=True,
    help="Propose each suggestion as a branch flujo/suggest/<id> in the spec's git repository "
    "(one commit changing only the patched lines; the pull request body is written beside it).",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a page showing each suggestion: bullets, before/after diagrams, YAML diff.",
)
@click.option("--history", is_flag=True, help="Show accepted and rejected suggestions, then exit.")
@click.option(
    "--include",
    "include_text",
    default="",
    metavar="MODE,...",
    help="Also count runs of these modes (replay, fake, mock, unknown) or origins (test, "
    "check, verification, eval); by default only live runs that no test started count.",
)
@store_options
def suggest(
    spec: Path,
    agent: str,
    base_url: str | None,
    as_json: bool,
    limit: int | None,
    since: str | None,
    create_pr: bool,
    html_file: Path | None,
    history: bool,
    include_text: str,
    store: Path | None,
) -> None:
    """Suggest improvements to SPEC from its recorded runs, ranked by risk-adjusted value.

    Every suggestion is a JSON Patch that applies, validates and keeps the spec's embedded
    tests green (replayed from cassettes when the spec has them, else with their mocks);
    suggestions that fail are dropped and counted. Exit codes: 0 (also when there is
    nothing to suggest), 2 bad input (spec, option, unreachable model server).
    """
    import asyncio

    from flujo.engine.store import RunStore, default_path
    from flujo.learn.meta_agents import AgentUnavailable, make_agent
    from flujo.learn.suggest import suggest as run_suggest
    from flujo.learn.telemetry_view import evidence_filter
    from flujo.spec.errors import SpecError

    include = tuple(w.strip() for w in include_text.split(",") if w.strip())
    try:
        since_s = parse_duration(since) if since is not None else None
        evidence_filter(include)
        meta_agent = make_agent(agent, base_url=base_url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not spec.is_file():
        raise UsageError(f"flujo suggest: {spec}: no such file")
    target = store or default_path()
    if history:
        _history(spec, target, as_json)
        return
    if not target.exists():
        _no_telemetry(spec, target, as_json, agent)
        return

    # Proposed as the bot would: named by the spec's path in its repository.
    root = _git_root(spec) if create_pr else None
    key = spec.resolve().relative_to(root).as_posix() if root is not None else None

    async def main() -> SuggestReport:
        db = RunStore(target)
        try:
            return await run_suggest(
                spec, db, agent=meta_agent, limit=limit, since_s=since_s, key=key, include=include
            )
        finally:
            db.close()
            close = getattr(meta_agent, "close", None)
            if close is not None:
                await close()

    try:
        report = asyncio.run(main())
    except SpecError as exc:  # exit 2, as documented above
        lines = [str(diagnostic) for diagnostic in exc.errors]
        lines.append("flujo suggest: fix the spec first (flujo validate)")
        raise UsageError("\n".join(lines)) from None
    except AgentUnavailable as exc:
        raise UsageError(f"flujo suggest: {exc}") from None
    except Exception as exc:
        import openai

        if not isinstance(exc, openai.OpenAIError):
            raise
        raise UsageError(f"flujo suggest: the model server failed: {exc}") from None
    if root is not None and key is not None and report.suggestions:
        _create_prs(spec, root, key, report)
    if html_file is not None and report.suggestions:
        _write_page(spec, report, html_file)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    elif report.no_telemetry and not report.excluded_runs:
        _no_telemetry(spec, target, False, agent)
    else:
        print_report(report)


def _git_root(spec: Path) -> Path:
    """The top of the git repository holding `spec`; exit 2 when there is none."""
    import subprocess

    found = subprocess.run(
        ["git", "-C", str(spec.resolve().parent), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise UsageError(f"flujo suggest: --create-pr needs {spec} to be in a git repository")
    return Path(found.stdout.strip())


def _create_prs(spec: Path, root: Path, path: str, report: SuggestReport) -> None:
    """Each suggestion as a local proposal (a branch and a pull request body), made as the
    bot makes its pull requests (`flujo.learn.proposal.proposal_for`)."""
    import asyncio

    from flujo.bot.forge import Proposal
    from flujo.bot.local import LocalForge
    from flujo.learn.proposal import proposal_for
    from flujo.spec.edit import apply_patch

    before = spec.read_text(encoding="utf-8")
    forge = LocalForge(root)

    async def main() -> None:
        for suggestion in report.suggestions:
            after = apply_patch(before, suggestion.patch, file=path)
            proposal = proposal_for(suggestion, before, after)
            pull = await forge.propose(
                root.name,
                Proposal(
                    branch=proposal.branch,
                    files={path: after.encode("utf-8")},
                    message=proposal.commit_message,
                    title=proposal.title,
                    body=proposal.body,
                    labels=proposal.labels,
                ),
            )
            verb = "opened" if pull.created else ("updated" if pull.changed else "unchanged")
            click.echo(
                f"{verb}: branch {pull.branch} (pull request body: {pull.url[:-5]}.md)", err=True
            )

    asyncio.run(main())


def _write_page(spec: Path, report: SuggestReport, target: Path) -> None:
    from flujo.bot.page import render_page
    from flujo.learn.proposal import review
    from flujo.spec.edit import apply_patch

    before = spec.read_text(encoding="utf-8")
    views = [review(s, before, apply_patch(before, s.patch)) for s in report.suggestions]
    target.write_text(render_page(views), encoding="utf-8")
    click.echo(f"wrote {target}", err=True)


def _history(spec: Path, target: Path, as_json: bool) -> None:
    import datetime

    from flujo.engine.store import RunStore
    from flujo.learn.feedback import feedback
    from flujo.spec.display import display_name

    key = display_name(spec)
    if not target.exists():
        rows = []
    else:
        db = RunStore(target)
        try:
            rows = feedback(db, key, "accepted", limit=100) + feedback(db, key, "rejected", 100)
        finally:
            db.close()
    rows.sort(key=lambda f: f.at, reverse=True)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "verdict": f.verdict,
                        "patch": f.patch,
                        "actor": f.actor,
                        "reason": f.reason,
                        "at": f.at,
                    }
                    for f in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo(f"No suggestion for {key} has been accepted or rejected yet.")
    for f in rows:
        when = datetime.datetime.fromtimestamp(f.at).strftime("%Y-%m-%d %H:%M")
        reason = f" — {f.reason}" if f.reason else ""
        click.echo(f"{when}  {f.verdict:<8}  by {f.actor}{reason}\n    {json.dumps(f.patch)}")


def _no_telemetry(spec: Path, store: Path, as_json: bool, agent: str) -> None:
    if as_json:
        from flujo.learn.suggest import SuggestReport

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
    click.echo(f"  {evidence_line(report)}")
    if report.prices_version:
        click.echo(f"  Costs and savings at the prices of table {report.prices_version}.")
    if not report.suggestions and report.runs == 0:
        click.echo("  Nothing to suggest: no recorded run counts as evidence.")
    elif not report.suggestions:
        click.echo("  Nothing to suggest: every step looks right for the telemetry recorded.")
    for rank, item in enumerate(report.suggestions, 1):
        where = f"{item.yaml_path}" + (f" (line {item.line})" if item.line else "")
        click.echo(f"\n  {rank}. {item.headline}")
        click.echo(f"     {item.kind} at {where}  [id {item.id}]")
        click.echo(f"     Why: {item.why}")
        click.echo(f"     Evidence: {_evidence(item.evidence)}")
        est = item.estimate
        events, sample = item.evidence.get("events"), item.evidence.get("sample_size")
        basis = f", from {events} of {sample}" if events is not None else ""
        click.echo(
            f"     Risk: {item.risk}; quality: {est.quality}; confidence: "
            f"{est.confidence_label} ({est.confidence:.2f}{basis})"
        )
        v = item.verification
        total = v.tests_passed + v.tests_failed
        if v.tests_mode == "none" or total == 0:
            tests = "no embedded tests"
        elif v.changed_steps and v.exercised == 0:
            tests = (
                f"{v.tests_passed}/{total} embedded tests pass ({v.tests_mode}), wiring only: "
                "no test ran the changed steps with answers for the new configuration"
            )
        else:
            tests = f"{v.tests_passed}/{total} embedded tests pass ({v.tests_mode})"
            if v.changed_steps:
                tests += f"; {v.exercised} exercised the changed steps"
        click.echo(f"     Verified: validates; {tests}")
        for test in v.tests:
            hows = ", ".join(f"{step}: {how}" for step, how in test.changed_steps)
            click.echo(f"       test {test.name}: {test.evidence}" + (f" ({hows})" if hows else ""))
        quality = item.quality_evidence.get("summary")
        if quality:
            click.echo(f"     Quality evidence: {quality}")
        if item.basis:
            click.echo(f"     Basis: {item.basis}")
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


def evidence_line(report: SuggestReport) -> str:
    """Which runs were counted, e.g. 'Evidence: live runs (not counted: 12 mode fake)'."""
    origins = ", ".join(report.excluded_origins)
    line = f"Evidence: {', '.join(report.evidence_modes)} runs" + (
        f", none started by {origins}" if origins else ""
    )
    left_out = [f"{n} {why}" for why, n in sorted(report.excluded_runs.items())]
    if report.not_evidence_runs:
        left_out.append(f"{report.not_evidence_runs} failed by the harness or their input")
    if left_out:
        line += f" (not counted: {', '.join(left_out)}; --include widens)"
    return line


def _evidence(evidence: dict[str, Any]) -> str:
    from flujo.learn.roi import money

    parts = []
    for key, value in evidence.items():
        if key in ("sample_size", "events"):
            continue  # shown with the confidence
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
