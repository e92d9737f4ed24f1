"""`flujo test [SPEC…]`"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flujo.cli import UsageError, exit_with
from flujo.cli.options import store_options
from flujo.cli.terminal import Progress
from flujo.spec.errors import EXIT_INVALID, EXIT_NO_TESTS, EXIT_OK, EXIT_USAGE
from flujo.spec.figures import money


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-k",
    "patterns",
    multiple=True,
    help="Only tests whose spec::name contains or "
    "matches (glob) this, or that carry this tag. Repeatable.",
)
@click.option(
    "--replay",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cassette folder (default: cassettes/<spec name>/ beside each spec, if any).",
)
@click.option(
    "--record",
    is_flag=True,
    help="Record model calls into each spec's cassette folder (with --live or --fake).",
)
@click.option("--mock", "mode", flag_value="mock", help="Only the tests' mocks; no model calls.")
@click.option("--live", "mode", flag_value="live", help="Real model calls (OPENAI_* settings).")
@click.option("--fake", "mode", flag_value="fake", help="The built-in fake model server.")
@click.option(
    "--override",
    "overrides",
    multiple=True,
    metavar="POLICY_ID",
    help="Treat this REQUIRE_APPROVAL policy as approved. Repeatable.",
)
@click.option(
    "--untrusted",
    is_flag=True,
    help="Ignore the repository's skill allow-list (.github/flujo.yml skills.allow): only "
    "built-ins, plugins and $FLUJO_SKILLS_ALLOW run. Use it in CI for pull requests "
    "(a fork's allow-list names the fork's code).",
)
@click.option(
    "--jobs",
    "-j",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Tests run at once, across all the specs (one process); 1 runs them one by one.",
)
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON report.")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a JUnit XML report here.",
)
def test(
    paths: tuple[Path, ...],
    patterns: tuple[str, ...],
    replay: Path | None,
    record: bool,
    mode: str | None,
    overrides: tuple[str, ...],
    untrusted: bool,
    jobs: int,
    store: Path | str | None,
    as_json: bool,
    junit: Path | None,
) -> None:
    """Run the `tests:` embedded in specs: their assertions and the spec's policies.

    Specs are the files given (or the .yml/.yaml files with tests under a folder; by
    default the current one). Models are replayed from cassettes when a spec has them
    (cassettes/<spec name>/ beside it), else only mocks are used, unless --live, --fake
    or --replay says otherwise. A test passes or fails as in the `flujo/test` check; an
    unapproved REQUIRE_APPROVAL policy that failed is reported apart, as `flujo/policy`
    does. Exit codes: 0 all passed, 1 a test failed or a policy needs approval (the
    checks would block the merge), 2 a spec is invalid or a path is wrong, 5 no tests
    collected.

    Every test's run is recorded in the run store (origin `test`: never counted as
    evidence of production), so `flujo runs show RUN_ID` shows a failed test's steps.
    """
    import asyncio

    from flujo.cli.preload import preload
    from flujo.cli.validate import CHECK_MODULES

    preload(*CHECK_MODULES, "flujo.engine.session", "flujo.engine.embedded_tests")
    from flujo.engine import embedded_tests as testing
    from flujo.engine.session import session
    from flujo.spec.errors import SpecError
    from flujo.spec.load import registry_for, repository_allowed_references
    from flujo.spec.model import Pipeline
    from flujo.spec.registry import StepRegistry

    files = _spec_files(paths or (Path("."),))
    errors: list[str] = []
    specs: list[tuple[Path, Pipeline, StepRegistry]] = []
    for file in files:  # every spec is read and checked first, in order
        try:
            registry = registry_for(file, untrusted=untrusted)
            pipeline = Pipeline.from_yaml(file, registry=registry)
        except SpecError as exc:
            errors.extend(str(d) for d in exc.errors)
            continue
        except OSError as exc:
            errors.append(f"{file}: cannot read: {exc.strerror or exc}")
            continue
        if not pipeline.tests:
            continue
        if not untrusted:
            _warn_repository_code(file, repository_allowed_references(pipeline, file))
        specs.append((file, pipeline, registry))
    chosen = sum(
        testing.selected(pipeline.file or str(file), t, patterns)
        for file, pipeline, _ in specs
        for t in pipeline.tests
    )

    async def main(progress: Progress) -> list[list[testing.TestResult]]:
        # `jobs` tests at once over all the specs, and at most `jobs` specs' sessions
        # open; results are kept in spec order, then test order, whatever ends first
        tests, sessions = asyncio.Semaphore(jobs), asyncio.Semaphore(jobs)

        async def spec_tests(
            file: Path, pipeline: Pipeline, registry: StepRegistry
        ) -> list[testing.TestResult]:
            async with sessions:
                options = _options(file, mode, replay, record, store)
                async with session(pipeline, options, registry) as runner:
                    return await testing.run_tests(
                        pipeline,
                        runner,
                        spec=pipeline.file or str(file),
                        patterns=patterns,
                        # as the bot's flujo/test: an unapproved REQUIRE_APPROVAL
                        # policy fails the policy verdict (below), not the test
                        overrides=testing.soft_policies(pipeline),
                        limit=tests,
                        on_result=lambda _result: progress.advance(chosen),
                    )

        return await asyncio.gather(*(spec_tests(*spec) for spec in specs))

    with Progress("tests", enabled=not as_json) as progress:
        per_spec = asyncio.run(main(progress))
    results = [result for spec_results in per_spec for result in spec_results]
    starts = [0]
    for spec_results in per_spec[:-1]:
        starts.append(starts[-1] + len(spec_results))
    tested = [(p, f, start) for (f, p, _), start in zip(specs, starts, strict=False)]
    _warn_stale_prices(tested, results)
    pending = testing.needs_approval(results, frozenset(overrides))
    if junit is not None:
        junit.write_text(testing.junit_xml(results), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(testing.report(results, errors, pending), indent=2, default=str))
    else:
        _print_text(results, errors, pending)
    if errors or not files:
        exit_with(EXIT_USAGE)
    if not results:  # as pytest: a selection that matches nothing is not a pass
        if not as_json:
            click.echo("no tests collected" + (f" (-k {' '.join(patterns)})" if patterns else ""))
        exit_with(EXIT_NO_TESTS)
    failed = any(r.outcome == "failed" for r in results)
    exit_with(EXIT_INVALID if failed or pending else EXIT_OK)


def _warn_repository_code(file: Path, references: list[str]) -> None:
    if not references:
        return
    click.secho(
        f"flujo test: WARNING: {file} runs code that only the repository's own allow-list "
        f"(.github/flujo.yml skills.allow) permits: {', '.join(references)}. On a pull "
        "request that is the pull request's code (a fork's, for a fork); run "
        "`flujo test --untrusted` in CI for changes you do not trust.",
        err=True,
        fg="yellow",
        bold=True,
    )


def _options(
    file: Path, mode: str | None, replay: Path | None, record: bool, store: Path | str | None
) -> Any:
    from flujo.engine.session import SessionOptions
    from flujo.engine.store import default_path

    cassette = replay or cassette_folder(file)
    if mode is None and replay is None and not cassette.is_dir():
        mode = "mock"
    return SessionOptions(
        replay=cassette if mode is None else None,
        record=cassette_folder(file) if record else None,
        fake=mode == "fake",
        store=store or default_path(),
        offline=mode == "mock",
        origin="test",
    )


def cassette_folder(spec: Path) -> Path:
    from flujo.engine.cassette import cassette_folder as folder

    return folder(spec)


def _spec_files(paths: tuple[Path, ...]) -> list[Path]:
    from flujo.cli.validate import expand_paths_with_roots, symlink_problem

    found, problems = expand_paths_with_roots(paths)
    files = []
    for file, root in found:
        escape = symlink_problem(file, root)
        if escape is None:
            files.append(file)
        else:
            problems.append(f"{file}: {escape}")
    for problem in problems:
        click.echo(f"flujo test: {problem}", err=True)
    if problems:
        raise UsageError("\n".join(f"flujo test: {problem}" for problem in problems))
    return files


def _warn_stale_prices(tested: list[tuple[Any, Path, int]], results: list[Any]) -> None:
    """The old-prices warning for each spec whose tests showed a cost."""
    from flujo.cli.prices import warn_if_stale

    ends = [start for _, _, start in tested[1:]] + [len(results)]
    for (pipeline, file, start), end in zip(tested, ends[: len(tested)], strict=True):
        if any(r.cost_usd for r in results[start:end]):
            warn_if_stale(pipeline, file)


def _print_text(results: list[Any], errors: list[str], pending: list[Any]) -> None:
    from flujo.engine.embedded_tests import failure_lines

    for error in errors:
        click.echo(error, err=True)
    for result in results:
        cost = "" if result.cost_usd in (None, 0.0) else f", {money(result.cost_usd)}"
        mark = (
            click.style("PASS", fg="green")
            if result.outcome == "passed"
            else click.style("FAIL", fg="red", bold=True)
        )
        click.echo(f"{mark} {result.id}  ({result.duration_s:.2f}s{cost})")
        if result.outcome == "failed":
            for line in failure_lines(result):
                click.echo(f"    {line}")
            if result.run_id:
                click.echo(f"    its run: flujo runs show {result.run_id}")
        for policy in result.policies:
            if policy.action == "WARN" and policy.outcome in ("failed", "error"):
                click.echo(f"    warning: policy {policy.id}: {policy.explanation}")
    for policy in pending:
        tests = ", ".join(policy.tests)
        click.echo(
            f"{click.style('needs approval', fg='yellow', bold=True)}: policy {policy.id} "
            f"(REQUIRE_APPROVAL) of {policy.spec} failed "
            f"in {tests}: {policy.explanation}\n"
            f"    approve it with --override {policy.id} "
            f"(on a pull request: the label flujo/override:{policy.id})"
        )
    passed = sum(r.outcome == "passed" for r in results)
    summary = f"{passed} passed, {len(results) - passed} failed"
    if pending:
        ids = {p.id for p in pending}
        summary += f", {len(ids)} polic{'y needs' if len(ids) == 1 else 'ies need'} approval"
    if errors:
        summary += f", {len(errors)} spec error{'s' * (len(errors) != 1)}"
    failed = passed < len(results) or pending or errors
    click.secho(summary, fg="red" if failed else "green")
