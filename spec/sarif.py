"""Findings as a SARIF 2.1.0 log, the format GitHub code scanning and editors read.

One run per log (tool `flujo`), one rule per diagnostic code, one result per finding,
located at its file, line and column, with its yaml_path as the logical location.
Paths are written as given (repository-relative in the bot and for specs under the
working directory), against the `%SRCROOT%` base, as code scanning expects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from flujo.spec.errors import Diagnostic

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
_LEVELS = {"error": "error", "warning": "warning"}  # anything else is a note


def sarif_log(diagnostics: Iterable[Diagnostic], *, tool_version: str) -> dict[str, Any]:
    """A SARIF log of `diagnostics`: rules in order of first appearance."""
    rules: dict[str, int] = {}
    results = []
    for d in diagnostics:
        index = rules.setdefault(d.code, len(rules))
        results.append(_result(d, index))
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "flujo",
                        "version": tool_version,
                        "rules": [_rule(code) for code in rules],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def as_sarif_text(diagnostics: Iterable[Diagnostic], *, tool_version: str) -> str:
    return json.dumps(sarif_log(diagnostics, tool_version=tool_version), indent=2) + "\n"


def _rule(code: str) -> dict[str, Any]:
    title = code.replace("/", ": ").replace("-", " ")
    return {
        "id": code,
        "name": "".join(part.capitalize() for part in code.replace("/", "-").split("-")),
        "shortDescription": {"text": title[:1].upper() + title[1:]},
    }


def _result(d: Diagnostic, rule_index: int) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": _uri(d.file), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": max(d.line, 1), "startColumn": max(d.col, 1)},
        }
    }
    if d.yaml_path:
        location["logicalLocations"] = [{"fullyQualifiedName": d.yaml_path, "kind": "element"}]
    return {
        "ruleId": d.code,
        "ruleIndex": rule_index,
        "level": _LEVELS.get(d.severity, "note"),
        "message": {"text": d.message},
        "locations": [location],
        # Code scanning matches a finding across commits by this, not by its line.
        "partialFingerprints": {"flujoFinding/v1": _fingerprint(d)},
    }


def _uri(file: str) -> str:
    path = file.replace("\\", "/")
    return path[2:] if path.startswith("./") else path


def _fingerprint(d: Diagnostic) -> str:
    key = "\0".join((d.code, _uri(d.file), d.yaml_path or f"{d.line}", d.message))
    return hashlib.sha256(key.encode()).hexdigest()[:32]
