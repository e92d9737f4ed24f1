"""Check one commit on a forge: queue the three checks, evaluate, report.

The same function serves GitHub events, re-runs and `flujo bot local`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from flujo.bot.evaluate import (
    CONFIG_PATHS,
    CommitReport,
    Override,
    evaluate,
    read_config,
    wanted_files,
)
from flujo.bot.forge import CheckOutput, Forge
from flujo.bot.verdicts import CHECK_NAMES, check_outputs

if TYPE_CHECKING:
    from flujo.spec.registry import StepRegistry

log = logging.getLogger("flujo.bot.checks")


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a commit the bot reads (a repository is untrusted input)."""

    max_files: int = 500
    max_bytes: int = 20 * 1024 * 1024


class TooLarge(Exception):
    pass


async def check_commit(
    forge: Forge,
    repo: str,
    sha: str,
    *,
    registry: StepRegistry,
    overrides: Mapping[str, Override] | None = None,
    limits: Limits = Limits(),
) -> list[CheckOutput]:
    """Run the three checks on `repo@sha` and report them; returns what was reported."""
    refs = {name: await forge.queue_check(repo, sha, name) for name in CHECK_NAMES}
    for ref in refs.values():
        await forge.start_check(repo, ref)
    try:
        report = await _evaluate(forge, repo, sha, registry, overrides or {}, limits)
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


async def _evaluate(
    forge: Forge,
    repo: str,
    sha: str,
    registry: StepRegistry,
    overrides: Mapping[str, Override],
    limits: Limits,
) -> CommitReport:
    listing = {f.path: f.size for f in await forge.list_files(repo, sha)}
    with tempfile.TemporaryDirectory(prefix="flujo-check-") as tmp:
        root = Path(tmp)
        config_files: list[str] = [p for p in CONFIG_PATHS if p in listing]
        _write(root, await forge.read_files(repo, sha, config_files))
        config, _, _ = read_config(root, config_files)
        wanted = wanted_files(list(listing), config)
        size = sum(listing[p] for p in wanted)
        if len(wanted) > limits.max_files or size > limits.max_bytes:
            raise TooLarge(
                f"This commit has {len(wanted)} spec and cassette files ({size:,} bytes); the "
                f"bot checks at most {limits.max_files} files and {limits.max_bytes:,} bytes. "
                "Narrow `specs:` in `.github/flujo.yml`."
            )
        _write(root, await forge.read_files(repo, sha, wanted))
        return await evaluate(root, config_files + wanted, registry=registry, overrides=overrides)


def _write(root: Path, files: Mapping[str, bytes]) -> None:
    for name, content in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            log.warning("skipping the unsafe path %r", name)
            continue
        target = root.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
