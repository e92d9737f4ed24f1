"""A commit's validation and policy findings as a SARIF upload for GitHub code scanning
(opt-in with `code_scanning: true` in `.github/flujo.yml`)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from flujo.bot.commit_report import CommitReport
from flujo.spec.errors import Diagnostic
from flujo.spec.sarif import sarif_log


def findings(report: CommitReport) -> list[Diagnostic]:
    """What code scanning shows: config problems, spec diagnostics and blocking or
    failed policies, at their repository-relative files and lines."""
    found = list(report.config_problems)
    for spec in report.specs:
        found.extend(spec.diagnostics)
        for policy in spec.policies:
            if policy.verdict not in ("failed", "error"):
                continue
            what = "could not be judged" if policy.verdict == "error" else "failed"
            because = f": {policy.explanation}" if policy.explanation else ""
            found.append(
                Diagnostic(
                    f"policy `{policy.id}` ({policy.action}) {what}{because}",
                    f"policy/{policy.id}",
                    spec.path,
                    policy.line or 1,
                    1,
                    policy.yaml_path,
                    "warning" if policy.action == "WARN" else "error",
                )
            )
    return found


def encoded_sarif(report: CommitReport, tool_version: str) -> tuple[str, dict[str, Any]]:
    """The upload's `sarif` field (gzip, then base64, as GitHub requires) and the log."""
    log = sarif_log(findings(report), tool_version=tool_version)
    data = gzip.compress(json.dumps(log, separators=(",", ":")).encode(), mtime=0)
    return base64.b64encode(data).decode("ascii"), log
