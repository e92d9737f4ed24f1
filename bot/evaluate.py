"""What the checks say about one commit: validate, test and judge every spec in it.

Input is a snapshot of the commit's relevant files on disk; output is one `SpecReport`
per spec, from which `verdicts.py` builds the three check runs. Nothing here talks to a
forge. Models are never called: tests replay their cassettes or use their mocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from flujo.spec.config import RepoConfig, matching
from flujo.spec.errors import Diagnostic, SpecError

if TYPE_CHECKING:
    from flujo.engine.embedded_tests import TestResult
    from flujo.spec.model import Pipeline
    from flujo.spec.registry import StepRegistry

CONFIG_PATHS = (".github/flujo.yml", ".github/flujo.yaml")
TEST_TIME_LIMIT_S = 120.0
Verdict = Literal["passed", "failed", "error", "skipped", "overridden", "unjudged"]


@dataclass(frozen=True, slots=True)
class Override:
    """A maintainer's approval of a REQUIRE_APPROVAL policy (the PR label)."""

    policy_id: str
    by: str
    at: str


@dataclass(slots=True)
class PolicyVerdict:
    """One policy judged over every test run of its spec."""

    id: str
    action: str
    yaml_path: str
    line: int | None
    verdict: Verdict
    explanation: str | None = None
    tests: list[str] = field(default_factory=list)
    override: Override | None = None
    description: str | None = None

    @property
    def blocks(self) -> bool:
        return self.verdict in ("failed", "error") and self.action != "WARN"


@dataclass(slots=True)
class SpecReport:
    path: str
    name: str | None = None
    sha256: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    test_error: str | None = None
    policies: list[PolicyVerdict] = field(default_factory=list)
    pipeline: Pipeline | None = None

    @property
    def valid(self) -> bool:
        return self.pipeline is not None and not any(
            d.severity == "error" for d in self.diagnostics
        )


@dataclass(slots=True)
class CommitReport:
    """Everything found in one commit."""

    specs: list[SpecReport]
    config_path: str | None = None
    config_problems: list[Diagnostic] = field(default_factory=list)
    patterns: tuple[str, ...] = ()


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
    config, config_path, config_problems = read_config(root, files)
    specs = [p for p in matching(files, config.specs) if "/cassettes/" not in f"/{p}"]
    report = CommitReport([], config_path, config_problems, tuple(config.specs))
    for path in specs:
        spec = _validate(root, path, registry)
        if spec.valid:
            await _test(root, spec, registry, overrides or {}, time_limit_s)
        report.specs.append(spec)
    return report


def _validate(root: Path, path: str, registry: StepRegistry) -> SpecReport:
    from flujo.spec.load import check

    report = SpecReport(path)
    try:
        pipeline, diagnostics = check(root / path, registry=registry)
    except SpecError as exc:
        report.diagnostics = [_relocated(d, path) for d in exc.diagnostics]
        return report
    except (OSError, UnicodeDecodeError) as exc:
        report.diagnostics = [Diagnostic(f"cannot read the file: {exc}", "unreadable", path)]
        return report
    report.diagnostics = [_relocated(d, path) for d in diagnostics]
    report.pipeline = pipeline
    if pipeline is not None:
        report.name = pipeline.name
        report.sha256 = pipeline.spec_sha256
    return report


async def _test(
    root: Path,
    spec: SpecReport,
    registry: StepRegistry,
    overrides: Mapping[str, Override],
    time_limit_s: float,
) -> None:
    from flujo.engine.cassette import cassette_folder
    from flujo.engine.embedded_tests import run_tests
    from flujo.engine.session import SessionOptions, session

    pipeline = spec.pipeline
    assert pipeline is not None
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
        soft = frozenset(p.id for p in pipeline.policies if p.action == "REQUIRE_APPROVAL")
        try:
            async with (
                asyncio.timeout(time_limit_s),
                session(pipeline, options, registry) as runner,
            ):
                spec.tests = await run_tests(
                    pipeline, runner, spec=spec.path, overrides=soft, jobs=4
                )
        except TimeoutError:  # a spec is untrusted input: it cannot hold the bot
            spec.tests = []
            spec.test_error = f"the tests took longer than {time_limit_s:g} s and were stopped"
        except Exception as exc:  # a broken spec must not break the check
            spec.test_error = f"the tests could not run: {exc}"
    spec.policies = judge_policies(pipeline, spec.tests, overrides)


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
