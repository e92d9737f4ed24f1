"""From a commit's report to the three check runs a person sees (pure).

`flujo/validate` fails on any spec error, `flujo/test` on any failed test, and
`flujo/policy` on a failed `FAIL_RUN` or un-overridden `REQUIRE_APPROVAL` policy, so a
branch protection rule that requires these checks blocks the merge.
"""

from __future__ import annotations

from typing import Any

from flujo.bot.commit_report import CommitReport, PolicyVerdict, SpecReport
from flujo.bot.cost_change import Baseline, change_rows
from flujo.bot.forge import (
    Action,
    Annotation,
    CheckOutput,
    Level,
)
from flujo.spec.errors import Diagnostic
from flujo.spec.figures import money
from flujo.templates.environment import cell, one_line, product_environment
from flujo.templates.fit import fit, shrink

VALIDATE, TEST, POLICY = "flujo/validate", "flujo/test", "flujo/policy"
CHECK_NAMES = (VALIDATE, TEST, POLICY)
APPROVE = Action(
    "Approve policies", "approve", "Approve the REQUIRE_APPROVAL policies"
)  # on a pull request, as the `flujo/override:<id>` labels would
_ROWS = 200


def check_outputs(report: CommitReport, base: Baseline | None = None) -> list[CheckOutput]:
    """The three checks for a commit, in `CHECK_NAMES` order; `base` (on a pull request)
    adds the change in expected cost per run to `flujo/test`."""
    if not report.specs and report.lookalikes:
        return [lookalikes_output(name, report) for name in CHECK_NAMES]
    return [validate_output(report), test_output(report, base), policy_output(report)]


def lookalikes_output(name: str, report: CommitReport) -> CheckOutput:
    """No spec matches `specs:`, but some files look like specs: name them, and the line of
    `.github/flujo.yml` that makes the bot check them."""
    found = report.lookalikes
    globs = sorted({_glob_for(path) for path in found})
    line = "specs: [" + ", ".join(f'"{g}"' for g in [*report.patterns, *globs]) + "]"
    if report.config_path is None:
        line = "specs: [" + ", ".join(f'"{g}"' for g in globs) + "]"
    shown = ", ".join(found[:3]) + ("…" if len(found) > 3 else "")
    verb = "looks" if len(found) == 1 else "look"
    title = f"Not checked: {shown} {verb} like Flujo specs but match no `specs:` glob"
    summary = _render(
        "check_lookalikes.md.j2",
        lookalikes=found,
        line=line,
        config_path=report.config_path or ".github/flujo.yml",
        patterns=report.patterns,
    )
    return CheckOutput(name, "neutral", title, summary)


def _glob_for(path: str) -> str:
    head, _, name = path.rpartition("/")
    suffix = name.rsplit(".", 1)[-1]
    return f"{head}/**/*.{suffix}" if head else f"*.{suffix}"


def validate_output(report: CommitReport) -> CheckOutput:
    diagnostics = [d for s in report.specs for d in s.diagnostics] + report.config_problems
    errors = [d for d in diagnostics if d.severity == "error"]
    invalid = [s for s in report.specs if not s.valid]
    rows = [
        {
            "path": s.path,
            "name": s.name,
            "valid": s.valid,
            "errors": sum(d.severity == "error" for d in s.diagnostics),
            "warnings": sum(d.severity == "warning" for d in s.diagnostics),
        }
        for s in report.specs
    ]
    summary = _render(
        "check_validate.md.j2",
        specs=rows,
        problems=diagnostics,
        patterns=report.patterns,
        config_path=report.config_path,
        config_problems=report.config_problems,
    )
    if not report.specs:
        return CheckOutput(VALIDATE, "neutral", "No Flujo specs found", summary)
    total = len(report.specs)
    config_errors = [d for d in report.config_problems if d.severity == "error"]
    if invalid:
        title = f"{len(invalid)} of {total} spec{_s(total)} invalid: {_n(len(errors), 'error')}"
    elif config_errors:  # the defaults were used instead: auto-apply settings among them
        title = f"{report.config_path} invalid: {_n(len(config_errors), 'error')}"
    else:
        warnings = len(diagnostics) - len(errors)
        title = f"{_n(total, 'spec')} valid" + (f", {_n(warnings, 'warning')}" if warnings else "")
    return CheckOutput(
        VALIDATE,
        "failure" if errors and (invalid or config_errors) else "success",
        title,
        summary,
        annotations=tuple(_diagnostic_annotation(d) for d in diagnostics),
    )


def test_output(report: CommitReport, base: Baseline | None = None) -> CheckOutput:
    specs, failures, annotations = [], [], []
    passed = failed = 0
    total_cost = 0.0
    for spec in report.specs:
        ok = sum(t.outcome == "passed" for t in spec.tests)
        bad = len(spec.tests) - ok
        passed, failed = passed + ok, failed + bad
        cost = sum(t.cost_usd or 0.0 for t in spec.tests)
        total_cost += cost
        specs.append(
            {
                "path": spec.path,
                "passed": ok,
                "failed": bad,
                "cost": money(cost),
                "duration": f"{sum(t.duration_s for t in spec.tests):.2f}s",
                "skipped": _skip_reason(spec),
            }
        )
        if spec.test_error:
            failures.append(
                {"spec": spec.path, "name": "(setup)", "line": None, "lines": [spec.test_error]}
            )
        for test in spec.tests:
            if test.outcome == "passed":
                continue
            failures.append(_failure(spec.path, test))
            annotations.extend(_test_annotations(spec, test))
    summary = _render(
        "check_test.md.j2",
        specs=specs,
        failures=failures,
        total_cost=money(total_cost),
        patterns=report.patterns,
        prices_versions=sorted({s.prices_version for s in report.specs if s.prices_version}),
        prices_warnings=sorted({s.prices_warning for s in report.specs if s.prices_warning}),
        base_ref=base.ref if base is not None else None,
        cost_changes=change_rows(report, base) if base is not None else [],
    )
    if not report.specs:
        return CheckOutput(TEST, "neutral", "No Flujo specs found", summary)
    if passed + failed == 0 and not any(s.test_error for s in report.specs):
        invalid = [s for s in report.specs if not s.valid]
        if invalid:
            return CheckOutput(TEST, "failure", _not_run(invalid), summary)
        return CheckOutput(TEST, "neutral", "No tests: add `tests:` to a spec", summary)
    broken = any(not s.valid or s.test_error for s in report.specs)
    title = f"{passed} passed, {failed} failed" + (", a spec could not be tested" if broken else "")
    return CheckOutput(
        TEST,
        "failure" if failed or broken else "success",
        title,
        summary,
        annotations=tuple(annotations),
    )


def policy_output(report: CommitReport) -> CheckOutput:
    rows, annotations = [], []
    blocking = 0
    for spec in report.specs:
        for verdict in spec.policies:
            rows.append(_policy_row(spec, verdict))
            blocking += verdict.blocks
            annotation = _policy_annotation(spec, verdict)
            if annotation is not None:
                annotations.append(annotation)
    summary = _render("check_policy.md.j2", specs=report.specs, rows=rows, patterns=report.patterns)
    if not report.specs:
        return CheckOutput(POLICY, "neutral", "No Flujo specs found", summary)
    invalid = [s for s in report.specs if not s.valid]
    if not rows:
        # Neutral counts as passing for a required check: a spec that could not be judged fails.
        if invalid:
            return CheckOutput(POLICY, "failure", _not_run(invalid), summary)
        return CheckOutput(POLICY, "neutral", "No policies", summary)
    judged = sum(r["verdict"] not in ("unjudged",) for r in rows)
    if blocking:
        title = f"{_n(blocking, 'policy', 'policies')} block{'s' * (blocking == 1)} the merge"
    else:
        title = f"{judged} of {_n(len(rows), 'policy', 'policies')} judged, none blocks"
    if invalid:
        title += f"; not run: {_n(len(invalid), 'invalid spec')} ({_paths(invalid)})"
    return CheckOutput(
        POLICY,
        "failure" if blocking or invalid else "success",
        title,
        summary,
        annotations=tuple(annotations),
        actions=(APPROVE,) if soft_blocking(report) else (),
    )


def soft_blocking(report: CommitReport) -> list[str]:
    """Ids of the REQUIRE_APPROVAL policies that block the merge (an approval lifts them)."""
    return sorted(
        {
            v.id
            for s in report.specs
            for v in s.policies
            if v.blocks and v.action == "REQUIRE_APPROVAL"
        }
    )


# -- pieces --------------------------------------------------------------------------------


def _diagnostic_annotation(d: Diagnostic) -> Annotation:
    where = f" ({d.yaml_path})" if d.yaml_path else ""
    return Annotation(
        path=d.file,
        start_line=max(1, d.line),
        end_line=max(1, d.line),
        level="failure" if d.severity == "error" else "warning",
        message=f"{d.message}{where}",
        title=f"flujo validate: {d.code}",
        start_column=max(1, d.col),
    )


def _failure(path: str, test: Any) -> dict[str, Any]:
    from flujo.engine.embedded_tests import failure_lines

    return {"spec": path, "name": test.name, "line": test.line, "lines": failure_lines(test)}


def _test_annotations(spec: SpecReport, test: Any) -> list[Annotation]:
    title = f"Test failed: {test.name}"
    found = [
        Annotation(
            spec.path,
            a.line,
            a.line,
            "failure",
            f"{a.expression}\n{a.explanation or 'is False'}",
            title,
        )
        for a in test.assertions
        if not a.passed and a.line
    ]
    if test.error or not found:
        line = test.line or 1
        reason = test.error or "; ".join(
            f"policy {p.id} {p.outcome}" for p in test.policies if p.blocks
        )
        found.insert(0, Annotation(spec.path, line, line, "failure", reason or "failed", title))
    return found


def _policy_row(spec: SpecReport, verdict: PolicyVerdict) -> dict[str, Any]:
    texts = {
        "passed": "✅ passed",
        "failed": "❌ failed" if verdict.action != "WARN" else "⚠️ failed (warning)",
        "error": "❌ error" if verdict.action != "WARN" else "⚠️ error (warning)",
        "skipped": "➖ not applicable",
        "overridden": "✅ approved",
        "unjudged": "➖ not judged (no tests)",
    }
    # Markdown for the summary's table: the spec's own words (explanations quote its
    # expressions, test names) are made inert; the bot's own words around them are not.
    why = one_line(verdict.explanation or "")
    if verdict.tests:
        names = ", ".join(one_line(name) for name in verdict.tests[:3])
        why = f"{why} (in {names}{'…' if len(verdict.tests) > 3 else ''})"
    if verdict.override is not None:  # a GitHub login: letters, digits and hyphens
        why = f"approved by @{verdict.override.by} at {verdict.override.at}; was: {why}"
    elif verdict.blocks and verdict.action == "REQUIRE_APPROVAL":
        why = f"{why}; approve with the label `flujo/override:{cell(verdict.id)}`"
    return {
        "id": verdict.id,
        "spec": spec.path,
        "line": verdict.line,
        "action": verdict.action,
        "verdict": verdict.verdict,
        "verdict_text": texts[verdict.verdict],
        "why": why.strip("; ") or one_line(verdict.description or ""),
    }


def _policy_annotation(spec: SpecReport, verdict: PolicyVerdict) -> Annotation | None:
    line = verdict.line or 1
    if verdict.verdict == "overridden" and verdict.override is not None:
        message = f"approved by @{verdict.override.by} at {verdict.override.at}"
        return Annotation(spec.path, line, line, "notice", message, f"Policy {verdict.id}")
    if verdict.verdict not in ("failed", "error"):
        return None
    level: Level = "warning" if verdict.action == "WARN" else "failure"
    message = verdict.explanation or verdict.verdict
    if verdict.action == "REQUIRE_APPROVAL":
        message += f"\nA maintainer can approve it with the label flujo/override:{verdict.id}"
    return Annotation(
        spec.path, line, line, level, message, f"Policy {verdict.id} ({verdict.action})"
    )


def _skip_reason(spec: SpecReport) -> str | None:
    if not spec.valid:
        return "not run: the spec is invalid"
    if spec.test_error:
        return spec.test_error
    if spec.parsed and not spec.has_tests:
        return "no tests"
    return None


def _not_run(invalid: list[SpecReport]) -> str:
    """The title of a check that could not judge `invalid` specs (it fails: never neutral)."""
    if len(invalid) == 1:
        return f"Not run: the spec is invalid ({invalid[0].path})"
    return f"Not run: {len(invalid)} specs are invalid ({_paths(invalid)})"


def _paths(specs: list[SpecReport]) -> str:
    names = [s.path for s in specs[:3]]
    return ", ".join(names) + ("…" if len(specs) > 3 else "")


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# -- rendering -----------------------------------------------------------------------------


TRUNCATED = "\n\n_…truncated: the full report is in the annotations and `flujo test`._\n"


def _render(template: str, **context: Any) -> str:
    """Render within GitHub's limit: fewer rows until it fits, then cut at a line."""
    rows = _ROWS

    def fewer_rows(excess: int) -> str | None:
        nonlocal rows
        if rows <= 1:
            return None
        rows //= 2
        return render(rows)

    def render(max_rows: int) -> str:
        environment = product_environment(autoescape=False)  # Markdown; user text via filters
        return environment.get_template(template).render(max_rows=max_rows, **context)

    return fit(shrink(render(rows), [fewer_rows]), marker=TRUNCATED)
