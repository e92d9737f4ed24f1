"""A commit's report as JSON and back: what an isolated check sends to the bot.

JSON, never pickle: the child that wrote it read untrusted input. The parsed spec itself
does not cross (only whether it loaded and has tests): the bot never holds a stranger's
model.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flujo.bot.commit_report import CommitReport, Override, PolicyVerdict, SpecReport
from flujo.engine.embedded_tests import AssertionResult, TestResult
from flujo.engine.policies import PolicyResult
from flujo.spec.errors import Diagnostic


def encode_report(report: CommitReport) -> dict[str, Any]:
    return {
        "config_path": report.config_path,
        "config_problems": [d.to_dict() for d in report.config_problems],
        "patterns": list(report.patterns),
        "lookalikes": list(report.lookalikes),
        "code_scanning": report.code_scanning,
        "specs": [encode_spec(s) for s in report.specs],
    }


def decode_report(data: dict[str, Any]) -> CommitReport:
    return CommitReport(
        specs=[decode_spec(s) for s in data["specs"]],
        config_path=data["config_path"],
        config_problems=[Diagnostic(**d) for d in data["config_problems"]],
        patterns=tuple(data["patterns"]),
        lookalikes=list(data.get("lookalikes", [])),
        code_scanning=bool(data.get("code_scanning", False)),
    )


def encode_spec(spec: SpecReport) -> dict[str, Any]:
    return {
        "path": spec.path,
        "name": spec.name,
        "sha256": spec.sha256,
        "diagnostics": [d.to_dict() for d in spec.diagnostics],
        "tests": [_encode_test(t) for t in spec.tests],
        "test_error": spec.test_error,
        "policies": [asdict(p) for p in spec.policies],
        "parsed": spec.parsed,
        "has_tests": spec.has_tests,
        "prices_version": spec.prices_version,
        "prices_warning": spec.prices_warning,
    }


def decode_spec(data: dict[str, Any]) -> SpecReport:
    policies = []
    for p in data["policies"]:
        override = p.pop("override")
        policies.append(
            PolicyVerdict(**p, override=Override(**override) if override is not None else None)
        )
    return SpecReport(
        path=data["path"],
        name=data["name"],
        sha256=data["sha256"],
        diagnostics=[Diagnostic(**d) for d in data["diagnostics"]],
        tests=[_decode_test(t) for t in data["tests"]],
        test_error=data["test_error"],
        policies=policies,
        parsed=data["parsed"],
        has_tests=data["has_tests"],
        prices_version=data.get("prices_version"),
        prices_warning=data.get("prices_warning"),
    )


def _encode_test(test: TestResult) -> dict[str, Any]:
    data = test.to_dict()
    del data["id"]
    return data


def _decode_test(data: dict[str, Any]) -> TestResult:
    fields = dict(data)
    fields["assertions"] = [AssertionResult(**a) for a in data["assertions"]]
    fields["policies"] = [PolicyResult(**p) for p in data["policies"]]
    return TestResult(**fields)
