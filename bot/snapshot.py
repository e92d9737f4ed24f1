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

from flujo.bot.evaluate import CONFIG_PATHS, read_config, wanted_files
from flujo.bot.forge import Forge
from flujo.spec.config import RepoConfig

log = logging.getLogger("flujo.bot.snapshot")


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a commit the bot reads."""

    max_files: int = 500
    max_bytes: int = 20 * 1024 * 1024


DEFAULT_LIMITS = Limits()


class TooLarge(Exception):
    """The commit has more spec files or bytes than the limits allow."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    root: Path
    files: list[str]
    """Every fetched path, relative to `root` (config first)."""
    config: RepoConfig


@contextlib.asynccontextmanager
async def snapshot(
    forge: Forge, repo: str, sha: str, limits: Limits = DEFAULT_LIMITS
) -> AsyncIterator[Snapshot]:
    """The commit's config, specs and cassettes in a folder that is removed afterwards.

    Raises TooLarge when the limits are exceeded.
    """
    listing = {f.path: f.size for f in await forge.list_files(repo, sha)}
    with tempfile.TemporaryDirectory(prefix="flujo-snapshot-") as tmp:
        root = Path(tmp)
        config_files: list[str] = [p for p in CONFIG_PATHS if p in listing]
        write(root, await forge.read_files(repo, sha, config_files))
        config, _, _ = read_config(root, config_files)
        wanted = wanted_files(list(listing), config)
        size = sum(listing[p] for p in wanted)
        if len(wanted) > limits.max_files or size > limits.max_bytes:
            raise TooLarge(
                f"This commit has {len(wanted)} spec and cassette files ({size:,} bytes); the "
                f"bot reads at most {limits.max_files} files and {limits.max_bytes:,} bytes. "
                "Narrow `specs:` in `.github/flujo.yml`."
            )
        write(root, await forge.read_files(repo, sha, wanted))
        yield Snapshot(root, config_files + wanted, config)


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
