"""What the checks say about one commit: validate, test and judge every spec in it.

Input is a snapshot of the commit's relevant files on disk; output is a `CommitReport`
(`commit_report.py`, one `SpecReport` per spec), from which `verdicts.py` builds the
three check runs. Nothing here talks to a forge. Models are never called: tests replay
their cassettes or use their mocks.

Everything that reads the repository's files goes through an `Evaluator`: `InProcess`
here (a person's own repository, `flujo bot local`), or `Isolated` (`isolation.py`, the
App: strangers' specs in a confined child process, one per spec).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from flujo.bot.commit_report import CommitReport, Override, PolicyVerdict, SpecReport
from flujo.spec.config import RepoConfig, matching
from flujo.spec.errors import Diagnostic, SpecError

if TYPE_CHECKING:
    from flujo.bot.bake_cycle import BakeLook, BakeRequest
    from flujo.bot.suggestion_codec import Cycle
    from flujo.bot.suggestion_cycle import CycleRequest
    from flujo.engine.embedded_tests import TestResult
    from flujo.spec.model import Pipeline
    from flujo.spec.registry import StepRegistry

CONFIG_PATHS = (".github/flujo.yml", ".github/flujo.yaml")
TEST_TIME_LIMIT_S = 120.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What to fetch of a commit, decided from its `.github/flujo.yml`."""

    wanted: list[str]
    """Specs and their cassettes."""
    patterns: tuple[str, ...]
    """The `specs:` globs."""


class Evaluator(Protocol):
    """Reads a snapshot's files: the only way the bot looks inside a repository."""

    async def plan(self, root: Path, config_files: list[str], listing: list[str]) -> Plan:
        """Which of `listing` to fetch, given the config files already under `root`."""

    async def references(self, root: Path, paths: list[str]) -> list[str]:
        """Repository paths the specs at `paths` read (0.x imports, prompt files)."""

    async def evaluate(
        self, root: Path, files: list[str], overrides: Mapping[str, Override]
    ) -> CommitReport:
        """Validate, test and judge every spec of the snapshot."""

    async def suggest(self, root: Path, request: CycleRequest) -> Cycle:
        """The suggestion cycle on the snapshot's specs (`suggestion_cycle.run_cycle`)."""

    async def bake(self, root: Path, request: BakeRequest) -> BakeLook:
        """One look of a bake-in on the snapshot's spec (`bake_cycle.run_bake`)."""


@dataclass(frozen=True, slots=True)
class InProcess:
    """An `Evaluator` that works in this process (trusted content only)."""

    registry: StepRegistry
    time_limit_s: float = TEST_TIME_LIMIT_S

    async def plan(self, root: Path, config_files: list[str], listing: list[str]) -> Plan:
        config, _, _ = read_config(root, config_files)
        return Plan(wanted_files(listing, config), tuple(config.specs))

    async def references(self, root: Path, paths: list[str]) -> list[str]:
        return read_references(root, paths)

    async def evaluate(
        self, root: Path, files: list[str], overrides: Mapping[str, Override]
    ) -> CommitReport:
        return await evaluate(
            root, files, registry=self.registry, overrides=overrides, time_limit_s=self.time_limit_s
        )

    async def suggest(self, root: Path, request: CycleRequest) -> Cycle:
        from flujo.bot.suggestion_cycle import run_cycle

        return await run_cycle(root, request, self.registry)

    async def bake(self, root: Path, request: BakeRequest) -> BakeLook:
        from flujo.bot.bake_cycle import run_bake

        return await run_bake(root, request, self.registry)


def read_references(root: Path, paths: list[str]) -> list[str]:
    """`snapshot.references` of each spec file, deduplicated and sorted."""
    from flujo.bot.snapshot import references

    return sorted({ref for path in paths for ref in references((root / path).read_bytes(), path)})


def read_config(root: Path, files: list[str]) -> tuple[RepoConfig, str | None, list[Diagnostic]]:
    """The repository's `.github/flujo.yml` (defaults when absent or broken)."""
    from flujo.spec.config import load_config

    for name in CONFIG_PATHS:
        if name in files:
            try:
                return load_config(root / name), name, []
            except SpecError as exc:
                return RepoConfig(), name, [_relocated(d, name) for d in exc.diagnostics]
    return RepoConfig(), None, []


def wanted_files(files: list[str], config: RepoConfig) -> list[str]:
    """Files to fetch for checking: the specs, and their cassettes."""
    specs = [p for p in matching(files, config.specs) if "/cassettes/" not in f"/{p}"]
    wanted = set(specs)
    for spec in specs:
        folder = f"{_parent(spec)}cassettes/{Path(spec).stem}/"
        wanted.update(p for p in files if p.startswith(folder))
    return sorted(wanted)


async def evaluate(
    root: Path,
    files: list[str],
    *,
    registry: StepRegistry,
    overrides: Mapping[str, Override] | None = None,
    time_limit_s: float = TEST_TIME_LIMIT_S,
) -> CommitReport:
    """Validate, test and judge every spec of a snapshot rooted at `root`; each spec's
    tests may take `time_limit_s` at most."""
    report = commit_config(root, files)
    for path in spec_paths(files, report.patterns):
        report.specs.append(
            await evaluate_spec(root, path, registry, overrides or {}, time_limit_s)
        )
    return report


def commit_config(root: Path, files: list[str]) -> CommitReport:
    """An empty report carrying the commit's config: its path, problems and `specs:` globs."""
    unread = unread_config(files)
    if unread is not None:
        return unread
    config, config_path, config_problems = read_config(root, files)
    report = CommitReport([], config_path, config_problems, tuple(config.specs))
    report.code_scanning = config.code_scanning
    if not spec_paths(files, report.patterns):
        report.lookalikes = [p for p in lookalike_candidates(files) if looks_like_spec(root / p)]
    return report


def unread_config(files: list[str]) -> CommitReport | None:
    """`commit_config` of a commit that has no config file and whose file names match the
    default `specs:` globs: the defaults, found from the names alone (no file is read).
    None when a file must be read: a config, or YAML files that may be specs elsewhere."""
    if any(name in files for name in CONFIG_PATHS):
        return None
    config = RepoConfig()
    if not spec_paths(files, tuple(config.specs)):
        return None  # the lookalikes are found by reading the YAML files
    report = CommitReport([], None, [], tuple(config.specs))
    report.code_scanning = config.code_scanning
    return report


MAX_LOOKALIKES = 20
MAX_LOOKALIKE_BYTES = 256 * 1024


def lookalike_candidates(files: list[str], sizes: Mapping[str, int] | None = None) -> list[str]:
    """YAML files that may be specs outside the `specs:` globs (the first few, small ones)."""
    found = [
        p
        for p in sorted(files)
        if p.endswith((".yml", ".yaml"))
        and not p.startswith(".github/")
        and "/cassettes/" not in f"/{p}"
        and (sizes is None or sizes.get(p, 0) <= MAX_LOOKALIKE_BYTES)
    ]
    return found[:MAX_LOOKALIKES]


def looks_like_spec(path: Path) -> bool:
    """A top-level `steps:` list with `agents:` or `version:` beside it."""
    from flujo.spec.source import parse

    try:
        data = parse(path.read_bytes(), path.name).data
    except (SpecError, OSError, UnicodeDecodeError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and isinstance(data.get("steps"), list)
        and ("agents" in data or "version" in data)
    )


def spec_paths(files: list[str], patterns: tuple[str, ...]) -> list[str]:
    """The specs among `files` (cassettes are not specs)."""
    return [p for p in matching(files, patterns) if "/cassettes/" not in f"/{p}"]


async def evaluate_spec(
    root: Path,
    path: str,
    registry: StepRegistry,
    overrides: Mapping[str, Override],
    time_limit_s: float = TEST_TIME_LIMIT_S,
    on_validated: Callable[[SpecReport], None] | None = None,
) -> SpecReport:
    """Validate one spec and, when it is valid, run its tests and judge its policies.

    `on_validated` sees the report once validation is done, before any test runs.
    """
    report, pipeline = _validate(root, path, registry)
    _repository_relative(report, root)
    if on_validated is not None:
        on_validated(report)
    if pipeline is not None and report.valid:
        await _test(root, report, pipeline, registry, overrides, time_limit_s)
        _repository_relative(report, root)
    return report


def _repository_relative(report: SpecReport, root: Path) -> None:
    """Name files in everything a check shows by their path in the repository, never by
    the snapshot's temporary folder (so a suggested command runs in the author's clone)."""
    from dataclasses import replace

    prefixes = sorted({str(root), str(root.resolve())}, key=len, reverse=True)

    def text(value: str | None) -> str | None:
        if value is None:
            return None
        for prefix in prefixes:
            value = value.replace(prefix + "/", "").replace(prefix, ".")
        return value

    report.diagnostics = [
        replace(d, message=text(d.message) or "", file=text(d.file) or "")
        for d in report.diagnostics
    ]
    report.test_error = text(report.test_error)
    for test in report.tests:
        test.error = text(test.error)
        test.assertions = [replace(a, explanation=text(a.explanation)) for a in test.assertions]
        test.policies = [replace(p, explanation=text(p.explanation)) for p in test.policies]
    for verdict in report.policies:
        verdict.explanation = text(verdict.explanation)


def _validate(root: Path, path: str, registry: StepRegistry) -> tuple[SpecReport, Pipeline | None]:
    from flujo.spec.load import check

    report = SpecReport(path)
    try:
        pipeline, diagnostics = check(root / path, registry=registry)
    except SpecError as exc:
        report.diagnostics = [_relocated(d, path) for d in exc.diagnostics]
        return report, None
    except (OSError, UnicodeDecodeError) as exc:
        report.diagnostics = [Diagnostic(f"cannot read the file: {exc}", "unreadable", path)]
        return report, None
    report.diagnostics = [_relocated(d, path) for d in diagnostics]
    if pipeline is not None:
        report.parsed = True
        report.has_tests = bool(pipeline.tests)
        report.name = pipeline.name
        report.sha256 = pipeline.spec_sha256
    return report, pipeline


async def _test(
    root: Path,
    spec: SpecReport,
    pipeline: Pipeline,
    registry: StepRegistry,
    overrides: Mapping[str, Override],
    time_limit_s: float,
) -> None:
    from flujo.engine.cassette import cassette_folder
    from flujo.engine.embedded_tests import run_tests, soft_policies
    from flujo.engine.session import SessionOptions, session

    if pipeline.tests:
        cassettes = cassette_folder(root / spec.path)
        options = SessionOptions(
            replay=cassettes if cassettes.is_dir() else None,
            offline=not cassettes.is_dir(),
            use_store=False,
            export=False,
            origin="check",
        )
        # Soft policies are judged by the policy check, where an override can apply.
        soft = soft_policies(pipeline)  # as `flujo test` does: one verdict model
        try:
            async with (
                asyncio.timeout(time_limit_s),
                session(pipeline, options, registry) as runner,
            ):
                spec.prices_version = runner.prices_version
                spec.prices_warning = _prices_warning(root / spec.path, pipeline)
                spec.tests = await run_tests(
                    pipeline, runner, spec=spec.path, overrides=soft, jobs=4
                )
        except TimeoutError:  # a spec is untrusted input: it cannot hold the bot
            spec.tests = []
            spec.test_error = f"the tests took longer than {time_limit_s:g} s and were stopped"
        except MemoryError:
            raise  # the process's limit: its parent reports it
        except Exception as exc:  # a broken spec must not break the check
            spec.test_error = f"the tests could not run: {exc}"
    spec.policies = judge_policies(pipeline, spec.tests, overrides)


def _prices_warning(path: Path, pipeline: Pipeline) -> str | None:
    """The old-prices warning for the spec's models, by its repository's `prices:`."""
    from flujo.engine.pricing import pipeline_models, table_for
    from flujo.spec.prices_config import repository_prices

    return table_for(repository_prices(path)).stale_warning(pipeline_models(pipeline))


def judge_policies(
    pipeline: Pipeline, tests: list[TestResult], overrides: Mapping[str, Override]
) -> list[PolicyVerdict]:
    """Each policy over all test runs: failed if any run fails it."""
    verdicts = []
    for index, policy in enumerate(pipeline.policies):
        path = f"policies[{index}]"
        verdict = PolicyVerdict(
            policy.id,
            policy.action,
            path,
            _line(pipeline, f"{path}.assert", policy.line),
            "unjudged" if not tests else "skipped",
            description=policy.description,
        )
        for test in tests:
            for result in test.policies:
                if result.id != policy.id or result.outcome in ("skipped",):
                    continue
                if result.outcome == "passed":
                    if verdict.verdict in ("skipped", "unjudged"):
                        verdict.verdict = "passed"
                    continue
                if verdict.verdict not in ("failed", "error"):
                    verdict.verdict = result.outcome
                    verdict.explanation = result.explanation
                verdict.tests.append(test.name)
        override = overrides.get(policy.id)
        if override is not None and verdict.blocks and policy.action == "REQUIRE_APPROVAL":
            verdict.verdict = "overridden"
            verdict.override = override
        verdicts.append(verdict)
    return verdicts


def _line(pipeline: Pipeline, yaml_path: str, default: int | None) -> int | None:
    try:
        return pipeline.locate(yaml_path)[0]
    except (KeyError, LookupError, ValueError):
        return default


def _relocated(diagnostic: Diagnostic, path: str) -> Diagnostic:
    """The same diagnostic, naming the file by its path in the repository."""
    from dataclasses import replace

    return replace(diagnostic, file=path)


def _parent(path: str) -> str:
    head, _, _ = path.rpartition("/")
    return f"{head}/" if head else ""
