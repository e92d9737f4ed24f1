"""A repository's Flujo configuration (`.github/flujo.yml`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flujo.spec.autoapply import AutoApply
from flujo.spec.dashboard_config import Dashboard
from flujo.spec.pr_pacing import PullRequests
from flujo.spec.prices_config import PricesConfig

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
    types: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="The repository's own skill types (name: JSON Schema), beside the "
        "built-in `str`, `JSON`, `SQL`, `ValidatedSQL`, `Summary` and `Labels`.",
    )
    code_scanning: bool = Field(
        default=False,
        description="Also upload validation and policy findings to GitHub code scanning "
        "(SARIF), where they show in the Security tab and beside other linters' annotations. "
        "Needs code scanning enabled on the repository.",
    )
    prices: PricesConfig = Field(
        default_factory=PricesConfig,
        description="The repository's own model prices (replacing the built-in ones for "
        "those models) and when a price is too old to trust.",
    )

    @field_validator("types")
    @classmethod
    def _type_names(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from flujo.spec.skill_types import BUILTIN_TYPES, NAME

        for name in value:
            if not NAME.match(name):
                raise ValueError(f"type name {name!r} must be letters, digits and `_`")
            if name in BUILTIN_TYPES:
                raise ValueError(f"type {name!r} is built in; choose another name")
        return value

    auto_apply: AutoApply = Field(
        default_factory=AutoApply,
        description="What the bot may apply by itself (by default nothing merges).",
    )
    dashboard: Dashboard = Field(
        default_factory=Dashboard,
        description="The dashboard issue the bot keeps up to date (on by default).",
    )
    pull_requests: PullRequests = Field(
        default_factory=PullRequests,
        description="How the bot paces suggestion pull requests: grouping, limits, schedule.",
    )

    def is_spec(self, path: str) -> bool:
        """Whether a repository-relative path (with `/`) is a spec by the `specs` globs."""
        return spec_matcher(tuple(self.specs))(path)


@lru_cache(maxsize=64)
def spec_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """A predicate for glob patterns over `/` paths: `*` and `?` stay within a folder,
    `**/` matches any number of folders (none included), as in `.gitignore`.

    Patterns come from a repository's own config, so matching must not backtrack: a
    simple pattern (at most one `**` and three `*`) becomes a regex, whose backtracking
    is then at most quadratic; any other pattern is matched by simulating its automaton
    (every position at once), in time linear in the path's length."""
    simple = [p for p in patterns if _is_simple(p)]
    regex = re.compile("|".join(f"(?:{_glob_regex(p)})" for p in simple) or "(?!)")
    automata = [_tokens(p) for p in patterns if not _is_simple(p)]
    return lambda path: (
        regex.fullmatch(path) is not None
        or any(_automaton_matches(tokens, path) for tokens in automata)
    )


def _is_simple(pattern: str) -> bool:
    return pattern.count("**") <= 1 and pattern.count("*") <= 3


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


# Tokens of a glob: a literal character, `?`, `*`, `**` (anything) and `**/` (folders).
_ANY, _STAR, _DSTAR, _FOLDERS = "?", "*", "**", "**/"


def _tokens(pattern: str) -> list[str]:
    tokens: list[str] = []
    pattern, i = pattern.lstrip("/"), 0
    while i < len(pattern):
        for token in (_FOLDERS, _DSTAR, _STAR, _ANY):
            if pattern.startswith(token, i):
                if not (token == _FOLDERS and tokens[-1:] == [_FOLDERS]):  # `**/**/` = `**/`
                    tokens.append(token)
                i += len(token)
                break
        else:
            tokens.append("\\" + pattern[i])  # a literal character
            i += 1
    return tokens


def _automaton_matches(tokens: list[str], path: str) -> bool:
    """Whether the glob `tokens` matches all of `path`, simulating its NFA: a state is
    (token index, inside a `**/` folder name); the set of states has at most twice as
    many members as there are tokens, whatever the path."""
    end = len(tokens)

    def closure(states: set[tuple[int, bool]]) -> set[tuple[int, bool]]:
        stack, seen = list(states), set(states)
        while stack:
            index, inside = stack.pop()
            if not inside and index < end and tokens[index] in (_STAR, _DSTAR, _FOLDERS):
                nxt = (index + 1, False)  # these may match nothing
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    states = closure({(0, False)})
    for ch in path:
        following: set[tuple[int, bool]] = set()
        for index, inside in states:
            if index == end:
                continue
            token = tokens[index]
            if token == _FOLDERS:
                if ch != "/":
                    following.add((index, True))
                elif inside:
                    following.add((index, False))
            elif token == _DSTAR:
                following.add((index, False))
            elif token == _STAR:
                if ch != "/":
                    following.add((index, False))
            elif token == _ANY:
                if ch != "/":
                    following.add((index + 1, False))
            elif token[1] == ch:
                following.add((index + 1, False))
        if not following:
            return False
        states = closure(following)
    return (end, False) in states


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
    from flujo.spec.display import display_name
    from flujo.spec.source import read_bytes

    return parse_config(read_bytes(path), display_name(path))


def parse_config(data: bytes, name: str) -> RepoConfig:
    """A config from its bytes (`name` is shown in errors). Raises SpecError."""
    from pydantic import ValidationError

    from flujo.spec.errors import SpecError
    from flujo.spec.load import pydantic_diagnostics
    from flujo.spec.source import parse

    document = parse(data, name)
    try:
        return RepoConfig.model_validate(document.data or {})
    except ValidationError as exc:
        raise SpecError(pydantic_diagnostics(document, exc, RepoConfig)) from None
