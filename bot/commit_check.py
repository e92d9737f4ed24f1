"""Check one commit on a forge: queue the three checks, evaluate, report.

The same function serves GitHub events, re-runs and `flujo bot local`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from flujo.bot.commit_report import CommitReport, Override
from flujo.bot.evaluate import evaluate
from flujo.bot.forge import CheckOutput, Forge
from flujo.bot.snapshot import DEFAULT_LIMITS, Limits, TooLarge, snapshot
from flujo.bot.verdicts import CHECK_NAMES, check_outputs

if TYPE_CHECKING:
    from flujo.spec.registry import StepRegistry

log = logging.getLogger("flujo.bot.commit_check")


async def check_commit(
    forge: Forge,
    repo: str,
    sha: str,
    *,
    registry: StepRegistry,
    overrides: Mapping[str, Override] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[CheckOutput]:
    """Run the three checks on `repo@sha` and report them; returns what was reported."""
    refs = {name: await forge.queue_check(repo, sha, name) for name in CHECK_NAMES}
    for ref in refs.values():
        await forge.start_check(repo, ref)
    try:
        report = await evaluate_commit(forge, repo, sha, registry, overrides or {}, limits)
        outputs = check_outputs(report)
    except TooLarge as exc:
        outputs = [
            CheckOutput(name, "neutral", "Commit too large to check", str(exc))
            for name in CHECK_NAMES
        ]
    for output in outputs:
        await forge.complete_check(repo, refs[output.name], output)
    log.info("%s@%s: %s", repo, sha[:12], ", ".join(f"{o.name} {o.conclusion}" for o in outputs))
    return outputs


async def evaluate_commit(
    forge: Forge,
    repo: str,
    sha: str,
    registry: StepRegistry,
    overrides: Mapping[str, Override],
    limits: Limits,
) -> CommitReport:
    async with snapshot(forge, repo, sha, limits) as snap:
        return await evaluate(snap.root, snap.files, registry=registry, overrides=overrides)
