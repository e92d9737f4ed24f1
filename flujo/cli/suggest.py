"""`flujo suggest SPEC`: ranked, verified improvements from recorded telemetry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flujo.cli import UsageError
from flujo.cli.options import store_options
from flujo.cli.terminal import Progress

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
@click.option(
    "--apply",
    "apply_id",
    metavar="ID",
    help="Apply suggestion ID in the spec's git working tree: patch, run the checks (validate, "
    "tests, policies), commit; on any failure the file is restored as it was.",
)
@click.option(
    "--tier",
    "max_tier",
    type=click.Choice(["low", "medium", "high"]),
    help="With --apply: only if the suggestion's risk tier is at most this and nothing "
    "on the never-automatic list applies (as the App decides).",
)
@click.option("--history", is_flag=True, help="Show accepted and rejected suggestions, then exit.")
@click.option(
    "--accept",
    "accept_id",
    metavar="ID",
    help="Record that you accepted suggestion ID (as shown, or its first 4+ characters), "
    "then exit.",
)
@click.option(
    "--reject",
    "reject_id",
    metavar="ID",
    help="Record that you rejected suggestion ID (needs --reason); it is never suggested "
    "again. Then exit.",
)
@click.option("--reason", help="Why, for --reject (and optionally --accept).")
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
    apply_id: str | None,
    max_tier: str | None,
    history: bool,
    accept_id: str | None,
    reject_id: str | None,
    reason: str | None,
    include_text: str,
    store: Path | str | None,
) -> None:
    """Suggest improvements to SPEC from its recorded runs, ranked by risk-adjusted value.

    Every suggestion is a JSON Patch that applies, validates and keeps the spec's embedded
    tests green (replayed from cassettes when the spec has them, else with their mocks);
    suggestions that fail are dropped and counted. Exit codes: 0 (also when there is
    nothing to suggest), 1 --apply did not apply (its tier, a never-automatic rule or a
    failed check; the file is as it was), 2 bad input (spec, option, unreachable model
    server, unknown suggestion id, no git repository, uncommitted changes to the spec).

    Each suggestion has an id, also the name of its branch (`flujo/suggest/ID`) and shown in
    its pull request body. `--accept ID` and `--reject ID --reason TEXT` record what you
    decided; in a git repository, a suggestion branch merged into the branch it was made
    from, or deleted unmerged, is recorded as accepted or rejected on the next run.
    """
    import asyncio

    from flujo.engine.store import RunStore, default_path, exists
    from flujo.learn.meta_agents import AgentUnavailable, make_agent
    from flujo.learn.suggest import suggest as run_suggest
    from flujo.learn.telemetry_view import evidence_filter
    from flujo.spec.errors import SpecError

    include = tuple(w.strip() for w in include_text.split(",") if w.strip())
    if max_tier is not None and apply_id is None:
        raise click.UsageError("--tier goes with --apply ID")
    try:
        since_s = parse_duration(since) if since is not None else None
        evidence_filter(include)
        meta_agent = make_agent(agent, base_url=base_url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not spec.is_file():
        raise UsageError(f"flujo suggest: {spec}: no such file")
    if accept_id is not None and reject_id is not None:
        raise click.UsageError("--accept and --reject cannot be used together")
    if reject_id is not None and not (reason or "").strip():
        raise click.UsageError("--reject needs --reason TEXT (it is kept with the rejection)")
    target = store or default_path()
    # Named as the bot names it, by the spec's path in its repository, so that ids match.
    root = _git_root(spec)
    if create_pr and root is None:
        raise UsageError(f"flujo suggest: --create-pr needs {spec} to be in a git repository")
    key = spec.resolve().relative_to(root).as_posix() if root is not None else None
    if accept_id is not None or reject_id is not None:
        _decide(spec, key, target, accept_id, reject_id, reason or "")
        return
    if history:
        _history(spec, key, target, as_json)
        return
    if not exists(target):
        _no_telemetry(spec, target, as_json, agent)
        return
    if apply_id is not None and root is None:
        from flujo.cli.apply import git_root

        git_root(spec, "--apply")  # exits 2: --apply commits, so it needs a repository
    if root is not None:
        _settle_branches(root, target)

    async def main() -> SuggestReport:
        from flujo.learn.suggestion_log import remember

        db = RunStore(target)
        try:
            with Progress("weighing opportunities", enabled=not as_json) as progress:
                found = await run_suggest(
                    spec,
                    db,
                    agent=meta_agent,
                    limit=limit,
                    since_s=since_s,
                    key=key,
                    include=include,
                    progress=progress,
                )
            remember(db, found.suggestions)
            return found
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
    if apply_id is not None:
        from flujo.cli.apply import apply_suggestion, echo

        echo(apply_suggestion(spec, report, apply_id, max_tier, target))
        return
    if create_pr and root is not None and key is not None and report.suggestions:
        _create_prs(spec, root, key, report, target)
    if html_file is not None and report.suggestions:
        _write_page(spec, report, html_file)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    elif report.no_telemetry and not report.excluded_runs:
        _no_telemetry(spec, target, False, agent)
    else:
        print_report(report)


def _git_root(spec: Path) -> Path | None:
    """The top of the git repository holding `spec` (None outside one, or without git)."""
    import subprocess

    try:
        found = subprocess.run(
            ["git", "-C", str(spec.resolve().parent), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def _actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "local"


def _decide(
    spec: Path,
    key: str | None,
    target: Path | str,
    accept_id: str | None,
    reject_id: str | None,
    reason: str,
) -> None:
    """`--accept ID` / `--reject ID --reason TEXT`: the decision, kept in the run store."""
    from flujo.engine.store import RunStore, exists
    from flujo.learn.feedback import record_acceptance, record_rejection
    from flujo.learn.suggestion_log import lookup, settle
    from flujo.spec.display import display_name

    ident = accept_id if accept_id is not None else reject_id
    assert ident is not None
    name = key or display_name(spec)
    hint = f"run `flujo suggest {spec}` to see the ids of its suggestions"
    if not exists(target):
        raise UsageError(f"flujo suggest: no suggestion {ident} for {name}: {hint}")
    db = RunStore(target)
    try:
        found = lookup(db, name, ident)
        if isinstance(found, list):
            raise UsageError(
                f"flujo suggest: {ident} names {len(found)} suggestions of {name} "
                f"({', '.join(found)}): give more of the id"
            )
        if found is None:
            raise UsageError(f"flujo suggest: no suggestion {ident} for {name}: {hint}")
        if accept_id is not None:
            record_acceptance(db, name, found.patch, _actor(), reason)
            settle(db, found.id, "accepted")
            click.echo(
                f"Recorded: suggestion {found.id} ({found.kind} at {found.yaml_path}) accepted."
            )
        else:
            record_rejection(db, name, found.patch, reason, _actor())
            settle(db, found.id, "rejected")
            click.echo(
                f"Recorded: suggestion {found.id} ({found.kind} at {found.yaml_path}) rejected: "
                f"{reason}. Flujo will not suggest this patch again."
            )
    finally:
        db.close()


def _settle_branches(root: Path, target: Path | str) -> None:
    """Suggestion branches merged or deleted since the last run, recorded as accepted or
    rejected (`flujo.bot.local.LocalForge.settle_proposals`)."""
    import asyncio

    from flujo.bot.local import GitError, LocalForge
    from flujo.engine.store import RunStore
    from flujo.learn.feedback import record_acceptance, record_rejection
    from flujo.learn.proposal import BRANCH_PREFIX
    from flujo.learn.suggestion_log import get, settle

    try:
        settled = asyncio.run(LocalForge(root).settle_proposals(BRANCH_PREFIX))
    except GitError:
        return  # not a repository git can read: nothing to settle
    if not settled:
        return
    db = RunStore(target)
    try:
        for item in settled:
            logged = get(db, item.branch.removeprefix(BRANCH_PREFIX))
            if logged is None:
                continue
            if item.merged:
                why = f"branch {item.branch} merged into {item.base}"
                record_acceptance(db, logged.spec_path, logged.patch, "git", why)
                settle(db, logged.id, "accepted")
                verdict = "accepted"
            else:
                why = f"branch {item.branch} deleted without being merged into {item.base}"
                record_rejection(db, logged.spec_path, logged.patch, why, "git")
                settle(db, logged.id, "rejected")
                verdict = "rejected"
            click.echo(f"suggestion {logged.id}: {why}: recorded as {verdict}", err=True)
    finally:
        db.close()


def _create_prs(
    spec: Path, root: Path, path: str, report: SuggestReport, store_path: Path | str
) -> None:
    """Each suggestion as a local proposal (a branch and a pull request body), made as the
    bot makes its pull requests (`flujo.learn.proposal.proposal_for`), with what it promises
    recorded in the run store (`flujo roi` shows it beside what a merge realised)."""
    import asyncio

    from flujo.bot.forge import Proposal
    from flujo.bot.local import LocalForge
    from flujo.engine.store import RunStore
    from flujo.learn.promises import Promise, record_promise
    from flujo.learn.proposal import proposal_for
    from flujo.spec.edit import apply_patch

    before = spec.read_text(encoding="utf-8")
    forge = LocalForge(root)
    store = RunStore(store_path)

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
            record_promise(
                store,
                path,
                suggestion.patch,
                Promise.of(suggestion, report.prices_version),
                pull.number,
            )
            verb = "opened" if pull.created else ("updated" if pull.changed else "unchanged")
            click.echo(
                f"{verb}: branch {pull.branch} (pull request body: {pull.url[:-5]}.md)", err=True
            )

    try:
        asyncio.run(main())
    finally:
        store.close()


def _write_page(spec: Path, report: SuggestReport, target: Path) -> None:
    from flujo.bot.page import render_page
    from flujo.learn.proposal import review
    from flujo.spec.edit import apply_patch

    before = spec.read_text(encoding="utf-8")
    views = [review(s, before, apply_patch(before, s.patch)) for s in report.suggestions]
    target.write_text(render_page(views), encoding="utf-8")
    click.echo(f"wrote {target}", err=True)


def _history(spec: Path, key: str | None, target: Path | str, as_json: bool) -> None:
    import datetime

    from flujo.engine.store import RunStore, exists
    from flujo.learn.feedback import feedback
    from flujo.learn.suggestion_log import ids_by_patch
    from flujo.spec.display import display_name

    key = key or display_name(spec)
    ids: dict[str, str] = {}
    if not exists(target):
        rows = []
    else:
        db = RunStore(target)
        try:
            rows = feedback(db, key, "accepted", limit=100) + feedback(db, key, "rejected", 100)
            ids = ids_by_patch(db, key)
        finally:
            db.close()
    rows.sort(key=lambda f: f.at, reverse=True)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": ids.get(f.patch_hash),
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
        ident = f"  {ids[f.patch_hash]}" if f.patch_hash in ids else ""
        click.echo(
            f"{when}  {f.verdict:<8}{ident}  by {f.actor}{reason}\n    {json.dumps(f.patch)}"
        )


def _no_telemetry(spec: Path, store: Path | str, as_json: bool, agent: str) -> None:
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
        if item.step_summary:
            click.echo(f"     The step: {item.step_summary}")
        if item.watch_for:
            click.echo(f"     Watch for: {item.watch_for}")
        click.echo(f"     Why: {item.why}")
        click.echo(f"     Evidence: {_evidence(item.evidence)}")
        est = item.estimate
        events, sample = item.evidence.get("events"), item.evidence.get("sample_size")
        unit = item.evidence.get("sample_unit", "runs")
        basis = f", from {events} of {sample} {unit}" if events is not None else ""
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
    worth = [d for d in report.dropped if d.reason == "needs_writer"]
    if worth:
        click.echo("\n  Worth a look (no rule-based patch):")
        for dropped in worth:
            click.echo(f"    {dropped.kind} at {dropped.yaml_path}: {dropped.detail}")
    if report.dropped:
        reasons: dict[str, int] = {}
        for dropped in report.dropped:
            reasons[dropped.reason] = reasons.get(dropped.reason, 0) + 1
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        click.echo(f"\n  Dropped {len(report.dropped)}: {summary}")
        for dropped in report.dropped:
            if dropped.reason == "needs_writer":
                continue  # listed above
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
    from flujo.learn.evidence_table import evidence_rows

    return "; ".join(f"{label}: {value}" for label, value in evidence_rows(evidence))
