"""`flujo policy check SPEC`"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
def check(
    spec: Path, last: int, include_text: str, store: Path | str | None, as_json: bool
) -> None:
    """Judge the spec's policies (as they are in the file now) against its recorded runs,
    so that a policy change can be weighed on real history before it merges.

    Recorded runs keep costs, tokens, latencies and attempts but no outputs, so a rule
    that reads outputs is reported as `error` (cannot be judged) for them. Exit codes: 0 no
    blocking violation, 1 a FAIL_RUN or REQUIRE_APPROVAL policy fails on some run, 2 no
    runs or no store. `--json` prints one document (see docs/running.md).
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
        if as_json:
            click.echo(json.dumps(_report(display_name(spec), [], modes, excluded, []), indent=2))
        else:
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
    verdicts: list[dict[str, Any]] = []
    for index, rule in enumerate(pipeline.policies):
        outcomes: Counter[str] = Counter(policies[index].outcome for _, policies in judged)
        failures = [(r, p[index]) for r, p in judged if p[index].outcome in ("failed", "error")]
        # An `error` means the run lacks what the rule reads (outputs are not recorded):
        # it cannot be judged on history, which is reported but does not block.
        violated = any(p[index].outcome == "failed" for _, p in judged)
        verdicts.append(
            {
                "id": rule.id,
                "action": rule.action,
                "yaml_path": f"policies[{index}]",
                "line": pipeline.locate(f"policies[{index}]")[0],
                "outcomes": {o: outcomes[o] for o in OUTCOMES},
                "blocks": violated and rule.action != "WARN",
                "failures": [
                    {"run_id": r.run_id, "outcome": o.outcome, "explanation": o.explanation}
                    for r, o in failures
                ],
            }
        )
    blocking = any(v["blocks"] for v in verdicts)
    if as_json:
        report = _report(display_name(spec), results, modes, excluded, verdicts)
        click.echo(json.dumps(report, indent=2, default=str, ensure_ascii=False))
        exit_with(EXIT_INVALID if blocking else EXIT_OK)
    click.echo(
        f"{len(results)} recorded runs of {display_name(spec)} (newest first; evidence: {counted})"
    )
    for verdict in verdicts:
        counts = ", ".join(f"{verdict['outcomes'][o]} {o}" for o in OUTCOMES)
        click.echo(
            f"{verdict['id']} ({verdict['action']}, {display_name(spec)}:{verdict['line']}): "
            f"{counts}"
        )
        for failure in verdict["failures"][:5]:
            click.echo(f"    run {failure['run_id']}: {failure['explanation']}")
    exit_with(EXIT_INVALID if blocking else EXIT_OK)


OUTCOMES = ("passed", "failed", "skipped", "error")


def _report(
    spec: str,
    results: list[Any],
    modes: tuple[str, ...],
    excluded: tuple[str, ...],
    verdicts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON of `flujo policy check --json`: what was judged, on what evidence, and
    each policy's outcomes (every failure, newest run first)."""
    return {
        "spec": spec,
        "evidence": {"modes": list(modes), "excluded_origins": list(excluded)},
        "runs": len(results),
        "blocking": any(v["blocks"] for v in verdicts),
        "policies": verdicts,
    }
