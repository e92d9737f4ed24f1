"""Check one commit on a forge: queue the three checks, evaluate, report.

The same function serves GitHub events, re-runs and `flujo bot local`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import replace

from flujo.bot.commit_report import CommitReport, Override
from flujo.bot.cost_change import Baseline
from flujo.bot.evaluate import Evaluator
from flujo.bot.forge import CheckOutput, Forge
from flujo.bot.isolation import IsolationFailed
from flujo.bot.snapshot import DEFAULT_LIMITS, Limits, TooLarge, snapshot
from flujo.bot.verdicts import CHECK_NAMES, check_outputs

log = logging.getLogger("flujo.bot.commit_check")
MAX_ANNOTATIONS = 200


async def check_commit(
    forge: Forge,
    repo: str,
    sha: str,
    *,
    evaluator: Evaluator,
    overrides: Mapping[str, Override] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    git_ref: str | None = None,
    base: tuple[str, str] | None = None,
) -> list[CheckOutput]:
    """Run the three checks on `repo@sha` and report them; returns what was reported.
    With `git_ref` (the branch or pull request ref checked), a repository that opted in
    also gets the findings in code scanning. With `base` (a pull request's base sha and
    branch), `flujo/test` also compares the expected cost per test run with the base's."""
    refs = {name: await forge.queue_check(repo, sha, name) for name in CHECK_NAMES}
    for ref in refs.values():
        await forge.start_check(repo, ref)
    report: CommitReport | None = None
    try:
        report = await evaluate_commit(forge, repo, sha, evaluator, overrides or {}, limits)
        baseline = await _baseline(forge, repo, base, evaluator, limits) if base else None
        outputs = [capped(output) for output in check_outputs(report, baseline)]
    except TooLarge as exc:  # a check that could not judge must never pass
        outputs = _not_checked("Not checked: the commit is too large", str(exc))
    except IsolationFailed as exc:
        summary = f"Reading the repository's `.github/flujo.yml` {exc.reason}."
        outputs = _not_checked("Not checked: the configuration could not be read", summary)
    except Exception as exc:  # retried by the queue; meanwhile (and if it never works) say so
        with contextlib.suppress(Exception):
            for output in _not_checked("Not checked: the check failed", _failed(exc)):
                await forge.complete_check(repo, refs[output.name], output)
        raise
    for output in outputs:
        await forge.complete_check(repo, refs[output.name], output)
    if report is not None and report.code_scanning and git_ref is not None:
        await _upload_findings(forge, repo, sha, git_ref, report)
    log.info("%s@%s: %s", repo, sha[:12], ", ".join(f"{o.name} {o.conclusion}" for o in outputs))
    return outputs


async def _upload_findings(
    forge: Forge, repo: str, sha: str, git_ref: str, report: CommitReport
) -> None:
    """Code scanning is extra: the checks already carry every finding, so a refused
    upload (code scanning not enabled on the repository) is logged, not retried."""
    from flujo import __version__
    from flujo.bot.code_scanning import encoded_sarif

    sarif, _ = encoded_sarif(report, str(__version__))
    try:
        await forge.upload_sarif(repo, sha, git_ref, sarif)
    except Exception as exc:
        log.warning("%s@%s: code scanning upload refused: %s", repo, sha[:12], exc)


async def fail_checks(forge: Forge, repo: str, sha: str, title: str, summary: str) -> None:
    """Complete the three checks of `repo@sha` as failed with `summary` (those already
    queued are found by their external id, so no check is left in progress)."""
    for output in _not_checked(title, summary):
        ref = await forge.queue_check(repo, sha, output.name)
        await forge.complete_check(repo, ref, output)


def poison_summary(attempts: int) -> tuple[str, str]:
    """The title and summary of the checks of a commit whose job crashed the bot."""
    title = f"Not checked: checking this commit stopped the bot {attempts} times"
    summary = (
        f"The bot stopped (crashed or was killed) each of the {attempts} times it checked "
        "this commit, so it gave up on it: the commit is not checked. Something in it may "
        "exhaust the checker; re-run the checks from GitHub, or push a new commit, to try "
        "again."
    )
    return title, summary


async def _baseline(
    forge: Forge, repo: str, base: tuple[str, str], evaluator: Evaluator, limits: Limits
) -> Baseline:
    """The base branch's report, evaluated as the head's is; or why it could not be."""
    sha, ref = base
    try:
        return Baseline(ref, await evaluate_commit(forge, repo, sha, evaluator, {}, limits))
    except Exception as exc:  # the comparison is extra: the head's checks still stand
        log.warning("%s@%s: the base %s could not be evaluated: %s", repo, sha[:12], ref, exc)
        return Baseline(ref, None, f"the base branch could not be evaluated ({exc})")


def capped(output: CheckOutput, limit: int = MAX_ANNOTATIONS) -> CheckOutput:
    """At most `limit` annotations on one check run (each 50 cost a request to GitHub);
    the summary says how many more there are."""
    extra = len(output.annotations) - limit
    if extra <= 0:
        return output
    note = (
        f"\n\n{extra:,} more annotations are not shown (at most {limit} per check): run "
        "`flujo validate` or `flujo test` on the spec to see every one."
    )
    return replace(output, annotations=output.annotations[:limit], summary=output.summary + note)


def _not_checked(title: str, summary: str) -> list[CheckOutput]:
    return [CheckOutput(name, "failure", title, summary) for name in CHECK_NAMES]


def _failed(exc: Exception) -> str:
    return (
        f"The bot could not finish this check ({type(exc).__name__}: {exc}). It tries again "
        "on its own; re-run the check from GitHub to try at once."
    )


async def evaluate_commit(
    forge: Forge,
    repo: str,
    sha: str,
    evaluator: Evaluator,
    overrides: Mapping[str, Override],
    limits: Limits,
) -> CommitReport:
    async with snapshot(forge, repo, sha, evaluator, limits) as snap:
        return await evaluator.evaluate(snap.root, snap.files, overrides)
