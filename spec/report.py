"""Render diagnostics as text, JSON, GitHub Actions workflow commands or SARIF."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from flujo.spec.errors import Diagnostic


@dataclass
class FileReport:
    """What validating one file found."""

    file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    spec_sha256: str | None = None

    @property
    def valid(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def count(reports: Iterable[FileReport], severity: str) -> int:
    return sum(d.severity == severity for r in reports for d in r.diagnostics)


def as_text(reports: list[FileReport]) -> str:
    return "".join(f"{d}\n" for r in reports for d in r.diagnostics)


def as_json(reports: list[FileReport]) -> str:
    data = {
        "valid": all(r.valid for r in reports),
        "errors": count(reports, "error"),
        "warnings": count(reports, "warning"),
        "files": [
            {
                "file": r.file,
                "valid": r.valid,
                "spec_sha256": r.spec_sha256,
                "diagnostics": [d.to_dict() for d in r.diagnostics],
            }
            for r in reports
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def as_github(reports: list[FileReport]) -> str:
    """GitHub Actions `::error file=…,line=…,col=…::message` lines (annotations)."""
    lines = []
    for report in reports:
        for d in report.diagnostics:
            props = ",".join(
                f"{key}={_escape(str(value), prop=True)}"
                for key, value in (
                    ("file", d.file),
                    ("line", d.line),
                    ("col", d.col),
                    ("title", f"flujo: {d.code}"),
                )
            )
            message = d.message + (f" ({d.yaml_path})" if d.yaml_path else "")
            lines.append(f"::{d.severity} {props}::{_escape(message)}\n")
    return "".join(lines)


def _escape(value: str, *, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def as_sarif(reports: list[FileReport]) -> str:
    """A SARIF 2.1.0 log, for GitHub code scanning and editors."""
    from flujo import __version__
    from flujo.spec.sarif import as_sarif_text

    return as_sarif_text((d for r in reports for d in r.diagnostics), tool_version=str(__version__))


FORMATS = {"text": as_text, "json": as_json, "github": as_github, "sarif": as_sarif}
