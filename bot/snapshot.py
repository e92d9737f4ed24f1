"""A commit's spec files, copied from the forge into a temporary folder.

Only what checks and suggestions need is fetched: `.github/flujo.yml`, the files its
`specs:` globs match, and their cassettes, within limits (a repository is untrusted).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flujo.bot.evaluate import CONFIG_PATHS, Evaluator, lookalike_candidates, spec_paths
from flujo.bot.forge import Forge
from flujo.spec.errors import EXIT_INVALID, FlujoError

log = logging.getLogger("flujo.bot.snapshot")


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a commit the bot reads."""

    max_files: int = 500
    max_bytes: int = 20 * 1024 * 1024
    folder: Path | None = None
    """Where snapshots are made (the system's temporary folder when None); the bot uses
    its own, and empties it when it starts (`clear_stale`)."""


DEFAULT_LIMITS = Limits()
MAX_REFERENCE_DEPTH = 10


class TooLarge(FlujoError):
    """The commit has more spec files or bytes than the limits allow (exit code 1: invalid
    input)."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True, slots=True)
class Snapshot:
    root: Path
    files: list[str]
    """Every fetched path, relative to `root` (config first)."""
    patterns: tuple[str, ...]
    """The `specs:` globs of the commit's config."""


@contextlib.asynccontextmanager
async def snapshot(
    forge: Forge, repo: str, sha: str, evaluator: Evaluator, limits: Limits = DEFAULT_LIMITS
) -> AsyncIterator[Snapshot]:
    """The commit's config, specs and cassettes in a folder that is removed afterwards.

    The files are only written here; `evaluator` reads them (to decide what else to
    fetch). Raises TooLarge when the limits are exceeded.
    """
    listing = {f.path: f.size for f in await forge.list_files(repo, sha)}
    if limits.folder is not None:
        limits.folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flujo-snapshot-", dir=limits.folder) as tmp:
        root = Path(tmp)
        config_files: list[str] = [p for p in CONFIG_PATHS if p in listing]
        write(root, await forge.read_files(repo, sha, config_files))
        plan = await evaluator.plan(root, config_files, list(listing))
        wanted = plan.wanted
        size = sum(listing[p] for p in wanted)
        if len(wanted) > limits.max_files or size > limits.max_bytes:
            raise TooLarge(
                f"This commit has {len(wanted)} spec and cassette files ({size:,} bytes); the "
                f"bot reads at most {limits.max_files} files and {limits.max_bytes:,} bytes. "
                "Narrow `specs:` in `.github/flujo.yml`."
            )
        if not spec_paths(wanted, plan.patterns):  # specs the globs miss? name them
            lookalikes = lookalike_candidates([p for p in listing if p not in wanted], listing)
            wanted += lookalikes
        fetched = await forge.read_files(repo, sha, wanted)
        write(root, fetched)
        # Files the specs read (0.x `imports:`, `from_file` prompts), transitively.
        for _ in range(MAX_REFERENCE_DEPTH):
            read = await evaluator.references(
                root, [p for p in fetched if p.endswith((".yml", ".yaml"))]
            )
            more = [ref for ref in read if ref in listing and ref not in wanted]
            if not more:
                break
            wanted += more
            size += sum(listing[p] for p in more)
            if len(wanted) > limits.max_files or size > limits.max_bytes:
                raise TooLarge(
                    f"The specs of this commit read {len(wanted)} files ({size:,} bytes); the "
                    f"bot reads at most {limits.max_files} files and {limits.max_bytes:,} bytes."
                )
            fetched = await forge.read_files(repo, sha, more)
            write(root, fetched)
        yield Snapshot(root, config_files + wanted, plan.patterns)


def clear_stale(folder: Path) -> int:
    """Remove snapshots left behind by a bot that was killed; returns how many."""
    import shutil

    stale = list(folder.glob("flujo-snapshot-*")) if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def references(content: bytes, path: str) -> list[str]:
    """Repository paths a spec reads besides itself: a 0.x blueprint's `imports:` and its
    agents' `system_prompt: {from_file: …}`, resolved against the spec's folder (paths
    leaving the repository are dropped; loading the spec reports them)."""
    from flujo.spec.errors import SpecError
    from flujo.spec.source import parse

    try:
        data = parse(content, path).data
    except SpecError:
        return []
    if not isinstance(data, dict):
        return []
    found: list[str] = []
    imports = data.get("imports")
    if isinstance(imports, dict):
        found += [v for v in imports.values() if isinstance(v, str)]
    agents = data.get("agents")
    if isinstance(agents, dict):
        for agent in agents.values():
            prompt = agent.get("system_prompt") if isinstance(agent, dict) else None
            if isinstance(prompt, dict) and isinstance(prompt.get("from_file"), str):
                found.append(prompt["from_file"])
    resolved = []
    for name in found:
        parts: list[str] = []
        for part in (*PurePosixPath(path).parent.parts, *PurePosixPath(name).parts):
            if part == "..":
                if not parts:
                    break
                parts.pop()
            elif part not in (".", "/"):
                parts.append(part)
        else:
            resolved.append("/".join(parts))
    return resolved


def write(root: Path, files: Mapping[str, bytes]) -> None:
    """Write files under `root`, refusing absolute paths and `..`."""
    for name, content in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            log.warning("skipping the unsafe path %r", name)
            continue
        target = root.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
