"""StepRegistry: resolves `uses:` references to callables through an allow-list.

A reference is a skill name (`json_parse`) or an import path (`package.module:attr`).
It is allowed only if it is a built-in skill, a model-backed skill shipped with Flujo
(`text_to_sql`, `summarize`, …: `spec/skillpacks/`), a skill an installed package publishes
through the `flujo.skills` entry-point group, or a path the repository's Flujo config
lists under `skills.allow` (exactly, or as `package.module:*`). Checking a reference
never imports anything; `resolve()` imports only what is allowed.

A wildcard `package.module:*` allows the callables DEFINED in that module, by their
top-level name: never a dotted path (`mod:os.system`), a dunder
(`mod:fn.__globals__`), or a name the module merely imports (`mod:system` after
`from os import system`: its `__module__` is not `package.module`).
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from flujo.spec.errors import EXIT_INVALID, FlujoError
from flujo.spec.skills import BUILTINS, SkillInfo

if TYPE_CHECKING:
    from flujo.spec.skill_packs import ModelSkill

ENTRY_POINT_GROUP = "flujo.skills"
IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class RegistryError(FlujoError, LookupError):
    """A reference that is unknown or not allowed (exit code 1: invalid input)."""

    exit_code = EXIT_INVALID


class StepRegistry:
    """The skills a spec may use, with their metadata."""

    def __init__(
        self,
        allow: Iterable[str] = (),
        *,
        entry_points: bool = True,
        types: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.types = dict(types or {})
        """The repository's own skill types (name: JSON Schema), beside the built-in ones."""
        self._builtins: dict[str, tuple[SkillInfo, Callable[..., Any]]] = {}
        from flujo.spec.legacy.builtins import LEGACY_BUILTINS

        for fn in (*BUILTINS, *LEGACY_BUILTINS):
            info: SkillInfo = fn.__flujo_skill__  # type: ignore[attr-defined]
            self._builtins[info.name] = (info, fn)
        self._by_target = {info.target: name for name, (info, _) in self._builtins.items()}
        self.allow = tuple(allow)
        self._use_entry_points = entry_points

    @cached_property
    def _packs(self) -> dict[str, ModelSkill]:
        # Read on the first reference that is not a built-in: a spec that names only
        # built-ins (most do) is checked without parsing the packs or building their model.
        from flujo.spec.skill_packs import model_skills

        return model_skills()

    @cached_property
    def _entry_points(self) -> dict[str, Any]:
        if not self._use_entry_points:
            return {}
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

    # -- lookups that never import ---------------------------------------------------------

    def problem(self, reference: str) -> str | None:
        """Why `reference` cannot be used, or None when it is allowed."""
        if reference in self._builtins or reference in self._by_target:
            return None
        if reference in self._packs:
            return None
        if ":" in reference:
            from flujo.spec.legacy.builtins import refusal

            refused = refusal(reference)
            if refused is not None:
                return refused
            if not IMPORT_PATH.match(reference):
                return f"'{reference}' is not a valid import path (expected package.module:attr)"
            if self._allowed_path(reference):
                return None
            return (
                f"'{reference}' is not in the skill allow-list; add it under `skills.allow` "
                "in .github/flujo.yml or publish it through the 'flujo.skills' entry point"
            )
        if reference in self._entry_points:
            return None
        names = list(self._builtins) + list(self._packs) + list(self._entry_points)
        close = difflib.get_close_matches(reference, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown skill '{reference}'{hint}"

    def info(self, reference: str) -> SkillInfo | None:
        """Metadata of a built-in or model-backed skill (None for plugin and config skills
        until loaded)."""
        name = self._by_target.get(reference, reference)
        entry = self._builtins.get(name)
        if entry is None and name in self._packs:
            return self._packs[name].info()
        return entry[0] if entry else None

    def model_skill(self, reference: str) -> ModelSkill | None:
        """The model-backed skill `reference` names (None for any other reference): it runs
        as a model call of its agent, never as a function."""
        return self._packs.get(reference)

    def _allowed_path(self, reference: str) -> bool:
        return self._exactly_allowed(reference) or self._wildcard_allowed(reference)

    def _exactly_allowed(self, reference: str) -> bool:
        return reference in self.allow or reference in {
            ep.value for ep in self._entry_points.values()
        }

    def _wildcard_allowed(self, reference: str) -> bool:
        """Whether a `module:*` pattern covers `reference`: a plain top-level name only."""
        module, _, attr = reference.partition(":")
        if "." in attr or attr.startswith("__"):
            return False
        return f"{module}:*" in self.allow

    # -- resolving (imports allowed code) --------------------------------------------------

    def resolve(self, reference: str) -> Callable[..., Any]:
        """The callable behind an allowed reference; RegistryError for anything else."""
        problem = self.problem(reference)
        if problem is not None:
            raise RegistryError(problem)
        if reference in self._packs:
            raise RegistryError(f"'{reference}' is a model-backed skill: it runs as a model call")
        name = self._by_target.get(reference, reference)
        if name in self._builtins:
            return self._builtins[name][1]
        if name in self._entry_points:
            return self._entry_points[name].load()  # type: ignore[no-any-return]
        module_name, _, attr = reference.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise RegistryError(f"'{reference}' is not callable")
        if not self._exactly_allowed(reference) and (
            getattr(target, "__module__", None) != module_name
        ):
            raise RegistryError(
                f"'{reference}' is not defined in {module_name} ('{module_name}:*' allows "
                "only the callables defined there, not the names it imports)"
            )
        return target  # type: ignore[no-any-return]

    def manifest(self) -> list[SkillInfo]:
        """Every skill: built-ins, entry-point skills and allow-listed paths (loaded to read
        their metadata, which is safe because they are allowed)."""
        # flujo 0.x's built-ins are there for old files, not listed for new ones
        skills = [info for info, _ in self._builtins.values() if ":" not in info.name]
        for name, ep in sorted(self._entry_points.items()):
            skills.append(self._describe(ep.load(), name, ep.value, f"entry-point:{ep.group}"))
        for pattern in self.allow:
            if not pattern.endswith(":*"):
                fn = self.resolve(pattern)
                skills.append(self._describe(fn, pattern, pattern, "config"))
        return skills

    @staticmethod
    def _describe(fn: Any, name: str, target: str, origin: str) -> SkillInfo:
        info = getattr(fn, "__flujo_skill__", None)
        if isinstance(info, SkillInfo):
            return replace(info, name=name, target=target, origin=origin)
        summary = (getattr(fn, "__doc__", None) or "").strip().split("\n")[0]
        return SkillInfo(name=name, target=target, summary=summary, origin=origin)
