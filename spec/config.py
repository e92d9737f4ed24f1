"""A repository's Flujo configuration (`.github/flujo.yml`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

CONFIG_NAMES = (".github/flujo.yml", ".github/flujo.yaml")
DEFAULT_SPEC_GLOBS = ("**/*.flujo.yml", "**/*.flujo.yaml", "flujo/**/*.yml", "flujo/**/*.yaml")


class SkillsConfig(BaseModel):
    """Which skills specs in this repository may use, beyond built-ins and plugins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(
        default_factory=list,
        description="Import paths (`package.module:attr`, or `package.module:*`) specs may use.",
    )


class RepoConfig(BaseModel):
    """Settings read from `.github/flujo.yml` at the root of a repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SPEC_GLOBS),
        description="Glob patterns of the spec files in the repository.",
    )
    skills: SkillsConfig = Field(default_factory=SkillsConfig, description="Skill allow-list.")

    def is_spec(self, path: str) -> bool:
        """Whether a repository-relative path (with `/`) is a spec by the `specs` globs."""
        return spec_matcher(tuple(self.specs))(path)


@lru_cache(maxsize=64)
def spec_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """A predicate for glob patterns over `/` paths: `*` and `?` stay within a folder,
    `**/` matches any number of folders (none included), as in `.gitignore`."""
    regex = re.compile("|".join(f"(?:{_glob_regex(p)})" for p in patterns) or "(?!)")
    return lambda path: regex.fullmatch(path) is not None


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    pattern = pattern.lstrip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def matching(paths: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The paths that match any of the patterns, sorted."""
    match = spec_matcher(tuple(patterns))
    return sorted(p for p in paths if match(p))


def find_config(start: Path) -> Path | None:
    """The config file of the repository that contains `start` (searching upwards)."""
    directory = start.resolve()
    if not directory.is_dir():
        directory = directory.parent
    for folder in (directory, *directory.parents):
        for name in CONFIG_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
        if (folder / ".git").exists():
            return None
    return None


def load_config(path: Path | None) -> RepoConfig:
    """Read a config file; an absent file gives the defaults. Raises SpecError."""
    if path is None:
        return RepoConfig()
    from pydantic import ValidationError

    from flujo.spec.errors import SpecError
    from flujo.spec.load import display_name, pydantic_diagnostics
    from flujo.spec.source import parse, read_bytes

    document = parse(read_bytes(path), display_name(path))
    try:
        return RepoConfig.model_validate(document.data or {})
    except ValidationError as exc:
        raise SpecError(pydantic_diagnostics(document, exc, RepoConfig)) from None
