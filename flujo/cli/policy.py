"""`flujo policy check SPEC`"""

from __future__ import annotations

from pathlib import Path

import click

from flujo.cli import UsageError, exit_with
from flujo.cli.options import store_options
from flujo.spec.errors import EXIT_INVALID, EXIT_OK


@click.group()
def policy() -> None:
    """Judge a spec's policies."""


@policy.command("check")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--last", default=100, show_default=True, help="How many recorded runs to judge.")
@click.option(
    "--include",
    "include_text",
    default="",
    metavar="MODE,...",
    help="Also judge runs of these modes (replay, fake, mock, unknown) or origins (test, "
    "check, verification, eval); by default only live runs that no test started.",
)
@store_options
def check(spec: Path, last: int, include_text: str, store: Path | None) -> None:
    """Judge the spec's policies (as they are in the file now) against its recorded runs,
    so that a policy change can be weighed on real history before it merges.

    Recorded runs keep costs, tokens, latencies and attempts but no outputs, so a rule
    that reads outputs is reported as `error` (cannot be judged) for them. Exit codes: 0 no
    blocking violation, 1 a FAIL_RUN or REQUIRE_APPROVAL policy fails on some run, 2 no
    runs or no store.
    """
    from collections import Counter

    from flujo.cli.load_and_run import load_spec_or_exit
    from flujo.engine.history import recorded_results
    from flujo.engine.policies import evaluate_policies
    from flujo.engine.store import RunStore, default_path, exists
    from flujo.learn.telemetry_view import evidence_filter
    from flujo.spec.display import display_name

    try:
        modes, excluded = evidence_filter(w for w in include_text.split(",") if w.strip())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    pipeline = load_spec_or_exit(spec)
    if not pipeline.policies:
        click.echo(f"{display_name(spec)} has no policies")
        return
    target = store or default_path()
    if not exists(target):
        raise UsageError(f"flujo policy: no run store at {target}")
    db = RunStore(target)
    results = recorded_results(
        db,
        [display_name(spec), str(spec.resolve())],
        last,
        modes=modes,
        excluded_origins=excluded,
    )
    db.close()
    counted = f"{', '.join(modes)} runs" + (
        f" that no {', '.join(excluded)} started" if excluded else ""
    )
    if not results:
        raise UsageError(
            f"flujo policy: no recorded {counted} of {display_name(spec)} in {target} "
            "(--include widens)"
        )
    judged = [(result, evaluate_policies(pipeline, result)) for result in results]
    blocking = False
    click.echo(
        f"{len(results)} recorded runs of {display_name(spec)} (newest first; evidence: {counted})"
    )
    for index, rule in enumerate(pipeline.policies):
        outcomes = Counter(policies[index].outcome for _, policies in judged)
        failures = [(r, p[index]) for r, p in judged if p[index].outcome in ("failed", "error")]
        # An `error` means the run lacks what the rule reads (outputs are not recorded):
        # it cannot be judged on history, which is reported but does not block.
        violated = any(p[index].outcome == "failed" for _, p in judged)
        blocking |= violated and rule.action != "WARN"
        counts = ", ".join(f"{outcomes[o]} {o}" for o in ("passed", "failed", "skipped", "error"))
        line = pipeline.locate(f"policies[{index}]")[0]
        click.echo(f"{rule.id} ({rule.action}, {display_name(spec)}:{line}): {counts}")
        for result, outcome in failures[:5]:
            click.echo(f"    run {result.run_id}: {outcome.explanation}")
    exit_with(EXIT_INVALID if blocking else EXIT_OK)
