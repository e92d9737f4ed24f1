"""A repository's Flujo configuration (`.github/flujo.yml`)."""

from __future__ import annotations

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
