"""`flujo suggest SPEC --apply ID [--tier low]`: apply one suggestion in a git working tree.

The patch goes through the one edit path (`flujo.spec.edit.apply_patch`, only the patched
lines change); the spec is then checked as the App's checks would (`flujo/validate`,
`flujo/test`, `flujo/policy`) and committed. On any failure, the file is restored byte for
byte and nothing is committed. `--tier` makes it automatic-safe: the suggestion's tier
(`flujo.learn.tiers`) must be at most that, and nothing on the never-automatic list may
apply.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flujo.cli import UsageError
from flujo.spec.errors import EXIT_INVALID, FlujoError

if TYPE_CHECKING:
    from flujo.bot.forge import CheckOutput
    from flujo.learn.suggest import Suggestion, SuggestReport
    from flujo.learn.tiers import TierDecision
    from flujo.spec.autoapply import AutoApply


class NotApplied(FlujoError):
    """The suggestion was not applied (exit code 1): its tier, a never-automatic rule, or
    a check of the patched spec said no. The file is as it was."""

    exit_code = EXIT_INVALID


def apply_suggestion(
    spec: Path, report: SuggestReport, suggestion_id: str, max_tier: str | None, store: Path | str
) -> list[str]:
    """Apply, check and commit; returns the lines to print. Raises NotApplied or UsageError."""
    from flujo.learn.proposal import proposal_for
    from flujo.spec.edit import apply_patch

    found = [s for s in report.suggestions if s.id == suggestion_id]
    if not found:
        ids = ", ".join(s.id for s in report.suggestions) or "none"
        raise NotApplied(
            f"flujo suggest: no verified suggestion {suggestion_id} for {spec} now "
            f"(suggestions now: {ids})"
        )
    suggestion = found[0]
    root = git_root(spec, "--apply")
    key = spec.resolve().relative_to(root).as_posix()
    dirty = _git(root, "status", "--porcelain", "--", key).stdout.strip()
    if dirty:
        raise UsageError(
            f"flujo suggest: {key} has uncommitted changes; commit or discard them first "
            "(--apply commits only its own change)"
        )
    original = spec.read_bytes()
    before = original.decode("utf-8")
    after = apply_patch(before, suggestion.patch, file=key)
    config_path, settings = _settings(root)
    lines: list[str] = []
    checks_before = _checks(root, key, config_path)
    green = all(o.conclusion in ("success", "neutral") for o in checks_before)
    from flujo.learn.tiers import TIERS, decide_suggestion

    decision = decide_suggestion(
        suggestion, before, after, settings=settings, spec_path=key, default_branch_green=green
    )
    lines.append(decision.line())
    if max_tier is not None:
        _allowed(decision, max_tier, TIERS)
    applied = False
    try:
        spec.write_bytes(after.encode("utf-8"))
        outputs = _checks(root, key, config_path)
        problems = _problems(outputs, strict=max_tier is not None)
        if problems:
            raise NotApplied(
                f"flujo suggest: {suggestion.id} not applied; {key} is as it was:\n"
                + "\n".join(f"  {p}" for p in problems)
            )
        lines += [f"{o.name}: {o.conclusion} ({o.title})" for o in outputs]
        message = proposal_for(suggestion, before, after).commit_message
        message += f"\nFlujo-Tier: {decision.tier}"
        _git(root, "add", "--", key)
        done = _git(root, "commit", "-q", "-m", message, "--", key, check=False)
        if done.returncode != 0:
            _git(root, "reset", "-q", "--", key, check=False)
            raise UsageError(
                f"flujo suggest: git commit failed; {key} is as it was: {done.stderr.strip()}"
            )
        applied = True
    finally:
        if not applied:
            spec.write_bytes(original)
    head = _git(root, "rev-parse", "--short", "HEAD").stdout.strip()
    _record(store, suggestion)
    lines.append(f"applied {suggestion.id} to {key}: commit {head}")
    return lines


def git_root(spec: Path, option: str) -> Path:
    """The top of the git repository holding `spec`; exit 2 when there is none."""
    found = subprocess.run(
        ["git", "-C", str(spec.resolve().parent), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise UsageError(f"flujo suggest: {option} needs {spec} to be in a git repository")
    return Path(found.stdout.strip())


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise UsageError(f"flujo suggest: git {args[0]} failed: {done.stderr.strip()}")
    return done


def _settings(root: Path) -> tuple[str | None, AutoApply]:
    from flujo.spec.config import CONFIG_NAMES, load_config
    from flujo.spec.errors import SpecError

    for name in CONFIG_NAMES:
        if (root / name).is_file():
            try:
                return name, load_config(root / name).auto_apply
            except SpecError as exc:
                raise UsageError(
                    "\n".join(str(d) for d in exc.errors) + "\nflujo suggest: fix it first"
                ) from None
    return None, load_config(None).auto_apply


def _allowed(decision: TierDecision, max_tier: str, order: tuple[str, ...]) -> None:
    if order.index(decision.tier) > order.index(max_tier):
        raise NotApplied(
            f"flujo suggest: not applied: tier {decision.tier} is above --tier {max_tier} "
            f"({decision.reason})"
        )
    if decision.never:
        raise NotApplied(
            "flujo suggest: not applied: never automatic: " + "; ".join(decision.never)
        )


def _checks(root: Path, key: str, config_path: str | None) -> list[CheckOutput]:
    """The three checks of the App on the working tree's spec (trusted: the user's own
    allow-list applies, as in `flujo test`)."""
    from flujo.bot.evaluate import evaluate
    from flujo.bot.verdicts import check_outputs
    from flujo.spec.config import load_config
    from flujo.spec.registry import StepRegistry

    allow = load_config(root / config_path).skills.allow if config_path else []
    files = [key] + ([config_path] if config_path else [])
    report = asyncio.run(evaluate(root, files, registry=StepRegistry(allow=allow)))
    return check_outputs(report)


def _problems(outputs: list[CheckOutput], *, strict: bool) -> list[str]:
    """Why the patched spec may not be committed; `strict` (with --tier): a check that
    could not judge (neutral: no tests, no policies) blocks too, except for policies a
    spec does not have."""
    problems = []
    for output in outputs:
        if output.conclusion not in ("success", "neutral"):
            problems.append(f"{output.name}: {output.conclusion}: {output.title}")
        elif strict and output.conclusion == "neutral" and output.name != "flujo/policy":
            problems.append(f"{output.name}: could not judge: {output.title}")
    return problems


def _record(store: Path | str, suggestion: Suggestion) -> None:
    """An applied suggestion is an accepted one (`flujo suggest --history`)."""
    import getpass

    from flujo.engine.store import RunStore
    from flujo.learn.feedback import record_acceptance

    db = RunStore(store)
    try:
        record_acceptance(db, suggestion.spec, suggestion.patch, f"{getpass.getuser()} (--apply)")
    finally:
        db.close()


def echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)
