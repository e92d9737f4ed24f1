"""Graph-aware diff of two pipeline specs.

`diff_specs(old, new)` maps every structural difference to the pipeline graph: steps
added, removed, renamed (same content under a new name) or moved (to another parent or
position), and field changes of matched steps, agents, tests and policies, each with a
category (model, prompt, retries, ...) and its place in the new file (or the old one for
what is gone). Steps are matched by name first; their own fields are compared with
DeepDiff. Locations are known only for specs loaded from YAML (`line` is None otherwise).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flujo.spec import paths
from flujo.spec.model import Pipeline, StepBase

ChangeKind = Literal["added", "removed", "renamed", "moved", "changed"]
Subject = Literal["step", "agent", "test", "policy", "pipeline"]
Category = Literal[
    "step",
    "model",
    "prompt",
    "retries",
    "timeout",
    "validators",
    "branches",
    "loop",
    "map",
    "condition",
    "uses",
    "input",
    "params",
    "sampling",
    "output_schema",
    "fallback",
    "tests",
    "policies",
    "limits",
    "description",
    "pipeline",
]
Mark = Literal["added", "removed", "changed", "moved"]

# Most important first: what can break or change a run's cost comes before cosmetics.
_RANK: dict[Category, int] = {
    "step": 0,
    "model": 1,
    "prompt": 2,
    "validators": 3,
    "retries": 4,
    "timeout": 5,
    "branches": 6,
    "condition": 7,
    "loop": 8,
    "map": 9,
    "uses": 10,
    "fallback": 11,
    "output_schema": 12,
    "sampling": 13,
    "input": 14,
    "params": 15,
    "limits": 16,
    "policies": 17,
    "tests": 18,
    "pipeline": 19,
    "description": 20,
}
_KIND_RANK: dict[ChangeKind, int] = {
    "removed": 0,
    "added": 1,
    "changed": 2,
    "renamed": 3,
    "moved": 4,
}

# Step fields compared field by field; containers' step lists are compared as steps.
_STEP_FIELD_CATEGORY: dict[str, Category] = {
    "uses": "uses",
    "input": "input",
    "with": "params",
    "validators": "validators",
    "description": "description",
    "merge": "branches",
    "on_branch_failure": "branches",
    "branches": "branches",
    "default": "branches",
    "condition_expression": "condition",
    "max_loops": "loop",
    "exit_expression": "loop",
    "over": "map",
    "fallback": "fallback",
    "kind": "step",
}
_CONFIG_CATEGORY: dict[str, Category] = {
    "max_retries": "retries",
    "backoff": "retries",
    "timeout_s": "timeout",
    "temperature": "sampling",
    "top_p": "sampling",
}
_AGENT_FIELD_CATEGORY: dict[str, Category] = {
    "model": "model",
    "system_prompt": "prompt",
    "output_schema": "output_schema",
    "temperature": "sampling",
    "max_tokens": "sampling",
}


@dataclass(frozen=True)
class Change:
    """One semantic change between two versions of a spec.

    `subject` and `name` say what changed (a step, agent, test, policy or the pipeline
    itself); `field` is the changed field relative to it (`config.max_retries`, empty for
    whole-node changes). `old_path`/`new_path` are yaml_paths in each file (empty where
    the node does not exist) and `old_line`/`new_line` their lines (None when unknown).
    `steps` names every step the change touches (all steps inside an added container,
    the steps using a changed agent), so diagrams can mark them.
    """

    kind: ChangeKind
    category: Category
    subject: Subject
    name: str
    field: str = ""
    before: Any = None
    after: Any = None
    old_path: str = ""
    new_path: str = ""
    old_line: int | None = None
    new_line: int | None = None
    old_name: str = ""
    steps: tuple[str, ...] = ()
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """How callers address this change (e.g. in `bullets(notes=...)`).

        `SUBJECT:NAME` for whole-node changes (`step:fetch`, `test:smoke`) and
        `SUBJECT:NAME.FIELD` for field changes (`step:fetch.config.max_retries`,
        `agent:writer.model`, `step:draft.validators.tone_check`).
        """
        base = f"{self.subject}:{self.name}"
        return f"{base}.{self.field}" if self.field else base

    @property
    def yaml_path(self) -> str:
        """Where the change is: in the new file, or in the old one for what is gone."""
        return self.new_path or self.old_path

    @property
    def line(self) -> int | None:
        return self.new_line if self.new_path else self.old_line

    @property
    def side(self) -> Literal["old", "new"]:
        """Which file `yaml_path` and `line` refer to."""
        return "new" if self.new_path else "old"

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: most important first."""
        return _RANK[self.category], _KIND_RANK[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "category": self.category,
            "subject": self.subject,
            "name": self.name,
            "old_name": self.old_name or None,
            "field": self.field or None,
            "before": self.before,
            "after": self.after,
            "yaml_path": self.yaml_path,
            "line": self.line,
            "side": self.side,
            "old_path": self.old_path or None,
            "new_path": self.new_path or None,
            "old_line": self.old_line,
            "new_line": self.new_line,
            "steps": list(self.steps),
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class SpecDiff:
    """Every change between `old` and `new`, most important first."""

    old: Pipeline
    new: Pipeline
    changes: tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def marks(self, side: Literal["old", "new"]) -> dict[str, Mark]:
        """Step name -> how it changed, for the diagram of the `old` or `new` version."""
        names = {step.name for _, step in (self.old if side == "old" else self.new).walk()}
        result: dict[str, Mark] = {}
        strength = {"removed": 3, "added": 3, "changed": 2, "moved": 1}
        for change in self.changes:
            whole_step = change.subject == "step" and change.category == "step"
            if whole_step and change.kind in ("added", "removed"):
                # A step exists in one diagram only.
                if side != ("new" if change.kind == "added" else "old"):
                    continue
                mark: Mark = "added" if change.kind == "added" else "removed"
            elif change.kind == "moved":
                mark = "moved"
            else:
                mark = "changed"
            touched = change.steps
            if change.kind == "renamed" and side == "old":
                touched = (change.old_name,)
            for name in touched:
                if name in names and strength[mark] > strength.get(result.get(name, ""), 0):
                    result[name] = mark
        return result

    def fingerprint(self) -> str:
        """SHA-256 of what changed (keys, kinds, values), not of where or how it is
        written: the same suggestion made again, on a reformatted file or with its
        steps at other lines, has the same fingerprint."""
        import hashlib
        import json

        facts = sorted(
            json.dumps([c.key, c.kind, c.before, c.after], sort_keys=True, default=str)
            for c in self.changes
        )
        return hashlib.sha256("\n".join(facts).encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint(),
            "old": {"file": self.old.file, "sha256": self.old.spec_sha256},
            "new": {"file": self.new.file, "sha256": self.new.spec_sha256},
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True)
class _Placed:
    """A step with its place in one version."""

    step: StepBase
    path: str
    parent: str  # container step name + field (`route.branches.billing`), "" at top level
    index: int


def diff_specs(old: Pipeline, new: Pipeline) -> SpecDiff:
    """Compare two versions of a spec and list their semantic changes."""
    builder = _Builder(old, new)
    builder.compare_steps()
    builder.compare_agents()
    builder.compare_named("test", old.tests, new.tests, "name", "tests", "tests")
    builder.compare_named("policy", old.policies, new.policies, "id", "policies", "policies")
    builder.compare_pipeline()
    changes = sorted(builder.changes, key=lambda c: c.rank)
    return SpecDiff(old, new, tuple(changes))


# -- helpers -------------------------------------------------------------------------


def _place(pipeline: Pipeline) -> dict[str, _Placed]:
    placed: dict[str, _Placed] = {}

    def visit(steps: list[Any], base: str, parent: str) -> None:
        for i, step in enumerate(steps):
            path = f"{base}[{i}]" if base else f"steps[{i}]"
            placed[step.name] = _Placed(step, path, parent, i)
            descend(step, path)

    def descend(step: StepBase, path: str) -> None:
        for field_path, step_list in step.children():
            visit(step_list.steps, f"{path}.{field_path}.steps", f"{step.name}.{field_path}")
        for field_path, inner in step.inner_steps():
            placed[inner.name] = _Placed(
                inner, f"{path}.{field_path}", f"{step.name}.{field_path}", 0
            )
            descend(inner, f"{path}.{field_path}")

    visit(pipeline.steps, "", "")
    return placed


def _own(step: StepBase) -> dict[str, Any]:
    """A step's own fields as data; nested steps are replaced by their names."""
    data: dict[str, Any] = step.model_dump(mode="json", by_alias=True)
    for field_path, step_list in step.children():
        segments = [str(segment) for segment in paths.split(field_path)]
        node = data
        for segment in segments[:-1]:
            node = node[segment]
        node[segments[-1]] = [s.name for s in step_list.steps]
    for field_path, inner in step.inner_steps():
        segments = [str(segment) for segment in paths.split(field_path)]
        node = data
        for segment in segments[:-1]:
            node = node[segment]
        node[segments[-1]] = inner.name
    return data


def _line(pipeline: Pipeline, yaml_path: str) -> int | None:
    """Line of `yaml_path`, or of its nearest ancestor in the file (None if unknown)."""
    source = pipeline.source
    if source is None or not yaml_path:
        return None
    segments = paths.split(yaml_path)
    while segments:
        try:
            return source.locate(paths.join(segments))[0]
        except KeyError:
            segments.pop()
    return None


def _has(data: Any, segments: list[paths.Segment]) -> bool:
    for segment in segments:
        try:
            data = data[segment]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _get(data: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        if isinstance(data, dict):
            data = data.get(segment)
        elif isinstance(data, list) and isinstance(segment, int) and segment < len(data):
            data = data[segment]
        else:
            return None
    return data


def _agent_of(step: StepBase) -> str | None:
    uses = getattr(step, "uses", None)
    if isinstance(uses, str) and uses.startswith("agents."):
        return uses.removeprefix("agents.")
    return None


def _validator_key(validator: Any) -> str:
    return validator if isinstance(validator, str) else str(validator.get("uses", ""))


def _validator_params(validator: Any) -> dict[str, Any]:
    return {} if isinstance(validator, str) else dict(validator.get("with", {}))


def _outermost(
    names: list[str], placed: dict[str, _Placed]
) -> Iterator[tuple[str, _Placed, tuple[str, ...]]]:
    """Steps that appeared (or went) with the steps inside them; a step inside a container
    that also appeared (or went) is reported with its container, not on its own."""
    for name in names:
        where = placed[name]
        if where.parent.split(".")[0] in names:
            continue
        yield name, where, tuple(n for n in where.step.step_names() if n in names)


class _Builder:
    def __init__(self, old: Pipeline, new: Pipeline) -> None:
        self.old = old
        self.new = new
        self.changes: list[Change] = []
        self.old_placed = _place(old)
        self.new_placed = _place(new)
        self.renames: dict[str, str] = {}  # old name -> new name
        # The data the paths are checked against: the files' own, or the models'.
        self.old_data = old.source.data if old.source else old.model_dump(by_alias=True)
        self.new_data = new.source.data if new.source else new.model_dump(by_alias=True)

    # -- locations -------------------------------------------------------------------

    def _where(self, old_path: str, new_path: str) -> dict[str, Any]:
        """Paths that exist in each file, with their lines."""
        old_ok = bool(old_path) and _has(self.old_data, paths.split(old_path))
        new_ok = bool(new_path) and _has(self.new_data, paths.split(new_path))
        if not old_ok and not new_ok:  # e.g. a default made explicit: point at the node
            new_ok = bool(new_path)
        return {
            "old_path": old_path if old_ok else "",
            "new_path": new_path if new_ok else "",
            "old_line": _line(self.old, old_path) if old_ok else None,
            "new_line": _line(self.new, new_path) if new_ok else None,
        }

    def add(self, old_path: str = "", new_path: str = "", **fields: Any) -> None:
        self.changes.append(Change(**fields, **self._where(old_path, new_path)))

    # -- steps -----------------------------------------------------------------------

    def compare_steps(self) -> None:
        old, new = self.old_placed, self.new_placed
        removed = [n for n in old if n not in new]
        added = [n for n in new if n not in old]
        pairs = {n: n for n in old if n in new}  # new name -> old name
        renamed = self._renames(removed, added)
        pairs.update(renamed)
        self.renames = {old_name: new_name for new_name, old_name in renamed.items()}
        removed = [n for n in removed if n not in renamed.values()]
        added = [n for n in added if n not in renamed]

        for name, placed, inner in _outermost(removed, old):
            self.add(
                old_path=placed.path,
                kind="removed",
                category="step",
                subject="step",
                name=name,
                before=placed.step.kind,
                steps=inner,
                detail={"parent": self._parent_text(placed), "inner": len(inner) - 1},
            )
        for name, placed, inner in _outermost(added, new):
            self.add(
                new_path=placed.path,
                kind="added",
                category="step",
                subject="step",
                name=name,
                after=placed.step.kind,
                steps=inner,
                detail={
                    "parent": self._parent_text(placed),
                    "after_step": self._previous(new, placed),
                    "inner": len(inner) - 1,
                },
            )
        for new_name, old_name in renamed.items():
            self.add(
                old_path=old[old_name].path,
                new_path=new[new_name].path,
                kind="renamed",
                category="step",
                subject="step",
                name=new_name,
                old_name=old_name,
                before=old_name,
                after=new_name,
                steps=(new_name,),
            )
        self._moves(pairs)
        for new_name, old_name in pairs.items():
            self._fields(old[old_name], new[new_name], new_name)

    def _renames(self, removed: list[str], added: list[str]) -> dict[str, str]:
        """Added steps that are a removed step under a new name (same kind and content)."""

        def content(step: StepBase) -> dict[str, Any]:
            data = _own(step)
            data.pop("name", None)
            data.pop("description", None)
            return data

        found: dict[str, str] = {}
        free = list(removed)
        for name in added:
            wanted = content(self.new_placed[name].step)
            candidates = [r for r in free if content(self.old_placed[r].step) == wanted]
            if not candidates:
                continue
            here = self.new_placed[name]
            # Prefer the candidate that sat in the same place.
            candidates.sort(
                key=lambda r: (
                    self.old_placed[r].parent != here.parent,
                    abs(self.old_placed[r].index - here.index),
                )
            )
            found[name] = candidates[0]
            free.remove(candidates[0])
        return found

    def _moves(self, pairs: dict[str, str]) -> None:
        old, new = self.old_placed, self.new_placed
        to_new = {o: n for n, o in pairs.items()}

        def parent_in_new(placed: _Placed) -> str:
            """The old parent spelled with the new name of its container."""
            if not placed.parent:
                return ""
            container, _, rest = placed.parent.partition(".")
            return f"{to_new.get(container, '?' + container)}.{rest}"

        siblings: dict[str, list[str]] = {}
        for new_name, old_name in pairs.items():
            before, after = old[old_name], new[new_name]
            if parent_in_new(before) != after.parent:
                self.add(
                    old_path=before.path,
                    new_path=after.path,
                    kind="moved",
                    category="step",
                    subject="step",
                    name=new_name,
                    before=self._parent_text(before),
                    after=self._parent_text(after),
                    steps=(new_name,),
                    detail={"reparented": True},
                )
            else:
                siblings.setdefault(after.parent, []).append(new_name)
        # Reordered among siblings that stayed under the same parent: the fewest moves.
        for names in siblings.values():
            new_order = sorted(names, key=lambda n: new[n].index)
            old_order = sorted(names, key=lambda n: old[pairs[n]].index)
            matcher = difflib.SequenceMatcher(a=old_order, b=new_order, autojunk=False)
            kept = {
                n
                for block in matcher.get_matching_blocks()
                for n in new_order[block.b : block.b + block.size]
            }
            for name in new_order:
                if name in kept:
                    continue
                position = new_order.index(name)
                self.add(
                    old_path=old[pairs[name]].path,
                    new_path=new[name].path,
                    kind="moved",
                    category="step",
                    subject="step",
                    name=name,
                    before=old[pairs[name]].index,
                    after=new[name].index,
                    steps=(name,),
                    detail={
                        "reparented": False,
                        "parent": self._parent_text(new[name]),
                        "after_step": new_order[position - 1] if position else None,
                        "before_step": new_order[position + 1]
                        if position + 1 < len(new_order)
                        else None,
                    },
                )

    @staticmethod
    def _parent_text(placed: _Placed) -> str:
        """`top level`, `branch billing of route`, `body of refine`, `fallback of fetch`."""
        if not placed.parent:
            return "top level"
        container, _, rest = placed.parent.partition(".")
        segments = paths.split(rest)
        if segments[0] == "branches":
            return f"branch {segments[1]} of {container}"
        return f"{segments[0]} of {container}"

    @staticmethod
    def _previous(placed_map: dict[str, _Placed], placed: _Placed) -> str | None:
        for other in placed_map.values():
            if other.parent == placed.parent and other.index == placed.index - 1:
                return other.step.name
        return None

    def _fields(self, before: _Placed, after: _Placed, name: str) -> None:
        # References to renamed steps are compared under their new names: a rename
        # is one change, not one more per step that mentions it.
        old_data, new_data = _follow_renames(_own(before.step), self.renames), _own(after.step)
        del old_data["name"], new_data["name"]
        if old_data == new_data:
            return
        if old_data.get("kind") != new_data.get("kind"):
            self.add(
                old_path=before.path,
                new_path=after.path,
                kind="changed",
                category="step",
                subject="step",
                name=name,
                field="kind",
                before=old_data.get("kind"),
                after=new_data.get("kind"),
                steps=(name,),
            )
            return
        self._validators(before, after, name, old_data, new_data)
        old_data.pop("validators", None)
        new_data.pop("validators", None)
        for group in _changed_groups(old_data, new_data):
            top = group[0]
            if top == "config":
                category = _CONFIG_CATEGORY.get(str(group[1]), "retries")
            else:
                category = _STEP_FIELD_CATEGORY.get(str(top), "params")
            field_path = paths.join(list(group))
            old_value, new_value = _get(old_data, list(group)), _get(new_data, list(group))
            detail: dict[str, Any] = {}
            if top == "uses":
                category = self._uses_category(old_value, new_value, detail)
            if top in ("branches",) and len(group) == 2:
                branch = str(group[1])
                if branch not in old_data.get("branches", {}):
                    kind: ChangeKind = "added"
                elif branch not in new_data.get("branches", {}):
                    kind = "removed"
                else:
                    continue  # the branch's steps changed: reported as step changes
                self.add(
                    old_path=f"{before.path}.{field_path}",
                    new_path=f"{after.path}.{field_path}",
                    kind=kind,
                    category="branches",
                    subject="step",
                    name=name,
                    field=field_path,
                    before=old_value,
                    after=new_value,
                    steps=(name,),
                    detail={"branch": branch},
                )
                continue
            if top in ("body", "fallback"):
                continue  # nested steps: reported as step changes
            kind = "changed"
            if top == "default":
                if (old_value is None) == (new_value is None):
                    continue
                kind = "added" if old_value is None else "removed"
            self.add(
                old_path=f"{before.path}.{field_path}",
                new_path=f"{after.path}.{field_path}",
                kind=kind,
                category=category,
                subject="step",
                name=name,
                field=field_path,
                before=old_value,
                after=new_value,
                steps=(name,),
                detail=detail,
            )

    def _uses_category(self, old_uses: Any, new_uses: Any, detail: dict[str, Any]) -> Category:
        """A step switched between agents with different models is a model change."""
        old_agent = self.old.agents.get(str(old_uses).removeprefix("agents."))
        new_agent = self.new.agents.get(str(new_uses).removeprefix("agents."))
        if (
            isinstance(old_uses, str)
            and isinstance(new_uses, str)
            and old_uses.startswith("agents.")
            and new_uses.startswith("agents.")
            and old_agent is not None
            and new_agent is not None
            and old_agent.model != new_agent.model
        ):
            detail.update(before_model=old_agent.model, after_model=new_agent.model)
            return "model"
        return "uses"

    def _validators(
        self,
        before: _Placed,
        after: _Placed,
        name: str,
        old_data: dict[str, Any],
        new_data: dict[str, Any],
    ) -> None:
        old_list: list[Any] = old_data.get("validators") or []
        new_list: list[Any] = new_data.get("validators") or []
        if old_list == new_list:
            return
        old_by = {_validator_key(v): (i, v) for i, v in enumerate(old_list)}
        new_by = {_validator_key(v): (i, v) for i, v in enumerate(new_list)}
        for key, (i, validator) in new_by.items():
            new_path = f"{after.path}.validators[{i}]"
            if key not in old_by:
                self.add(
                    new_path=new_path,
                    kind="added",
                    category="validators",
                    subject="step",
                    name=name,
                    field=f"validators.{key}",
                    after=validator,
                    steps=(name,),
                    detail={"validator": key},
                )
            elif _validator_params(old_by[key][1]) != _validator_params(validator):
                self.add(
                    old_path=f"{before.path}.validators[{old_by[key][0]}]",
                    new_path=new_path,
                    kind="changed",
                    category="validators",
                    subject="step",
                    name=name,
                    field=f"validators.{key}",
                    before=_validator_params(old_by[key][1]),
                    after=_validator_params(validator),
                    steps=(name,),
                    detail={"validator": key},
                )
        for key, (i, validator) in old_by.items():
            if key not in new_by:
                self.add(
                    old_path=f"{before.path}.validators[{i}]",
                    kind="removed",
                    category="validators",
                    subject="step",
                    name=name,
                    field=f"validators.{key}",
                    before=validator,
                    steps=(name,),
                    detail={"validator": key},
                )

    # -- agents, tests, policies, pipeline -------------------------------------------

    def _users(self, agent: str) -> tuple[str, ...]:
        users = [p.step.name for p in self.new_placed.values() if _agent_of(p.step) == agent]
        if not users:
            users = [p.step.name for p in self.old_placed.values() if _agent_of(p.step) == agent]
        return tuple(users)

    def compare_agents(self) -> None:
        old, new = self.old.agents, self.new.agents
        for name in [*new, *(n for n in old if n not in new)]:
            path = paths.child("agents", name)
            if name not in new or name not in old:
                added = name not in old
                self.add(
                    old_path="" if added else path,
                    new_path=path if added else "",
                    kind="added" if added else "removed",
                    category="uses",
                    subject="agent",
                    name=name,
                    before=None if added else old[name].model,
                    after=new[name].model if added else None,
                    steps=self._users(name),
                )
                continue
            before = old[name].model_dump(mode="json", by_alias=True)
            after = new[name].model_dump(mode="json", by_alias=True)
            for group in _changed_groups(before, after, depth=1):
                key = str(group[0])
                self.add(
                    old_path=paths.child(path, key),
                    new_path=paths.child(path, key),
                    kind="changed",
                    category=_AGENT_FIELD_CATEGORY.get(key, "sampling"),
                    subject="agent",
                    name=name,
                    field=key,
                    before=before.get(key),
                    after=after.get(key),
                    steps=self._users(name),
                )

    def compare_named(
        self,
        subject: Subject,
        old_items: list[Any],
        new_items: list[Any],
        id_field: str,
        section: str,
        category: Category,
    ) -> None:
        old_by = {getattr(x, id_field): (i, x) for i, x in enumerate(old_items)}
        new_by = {getattr(x, id_field): (i, x) for i, x in enumerate(new_items)}
        for key in [*new_by, *(k for k in old_by if k not in new_by)]:
            old_entry, new_entry = old_by.get(key), new_by.get(key)
            old_path = f"{section}[{old_entry[0]}]" if old_entry else ""
            new_path = f"{section}[{new_entry[0]}]" if new_entry else ""
            if old_entry is None or new_entry is None:
                self.add(
                    old_path=old_path,
                    new_path=new_path,
                    kind="added" if old_entry is None else "removed",
                    category=category,
                    subject=subject,
                    name=key,
                )
                continue
            before = old_entry[1].model_dump(mode="json", by_alias=True)
            before = _follow_renames(before, self.renames)
            after = new_entry[1].model_dump(mode="json", by_alias=True)
            fields = sorted({str(g[0]) for g in _changed_groups(before, after, depth=1)})
            if fields:
                one = fields[0] if len(fields) == 1 else ""
                self.add(
                    old_path=paths.child(old_path, one) if one else old_path,
                    new_path=paths.child(new_path, one) if one else new_path,
                    kind="changed",
                    category=category,
                    subject=subject,
                    name=key,
                    field=one,
                    before=before.get(one) if one else None,
                    after=after.get(one) if one else None,
                    detail={"fields": fields},
                )

    def compare_pipeline(self) -> None:
        for key in ("name", "description", "version", "usage_limits"):
            before, after = getattr(self.old, key), getattr(self.new, key)
            if before == after:
                continue
            if key == "usage_limits":
                old_limits = before.model_dump() if before else {}
                new_limits = after.model_dump() if after else {}
                for limit in sorted(old_limits.keys() | new_limits.keys()):
                    if old_limits.get(limit) != new_limits.get(limit):
                        path = f"usage_limits.{limit}"
                        self.add(
                            old_path=path,
                            new_path=path,
                            kind="changed",
                            category="limits",
                            subject="pipeline",
                            name=self.new.name or "",
                            field=path,
                            before=old_limits.get(limit),
                            after=new_limits.get(limit),
                        )
                continue
            self.add(
                old_path=key,
                new_path=key,
                kind="changed",
                category="description" if key == "description" else "pipeline",
                subject="pipeline",
                name=self.new.name or "",
                field=key,
                before=before,
                after=after,
            )


def _follow_renames(data: Any, renames: Mapping[str, str], key: str = "") -> Any:
    """`data` with references to renamed steps (`steps.OLD`, `steps['OLD']`, names in
    a `mocks` mapping or a container's step list) spelled with the new names."""
    if not renames:
        return data
    if isinstance(data, str):
        return _reference_pattern(tuple(renames)).sub(lambda m: _renamed(m, renames), data)
    if isinstance(data, list):
        if key in ("body", "default") or key.startswith("branch:"):
            return [renames.get(item, item) for item in data]
        return [_follow_renames(item, renames) for item in data]
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            inner = f"branch:{k}" if key == "branches" else k
            out[renames.get(k, k) if key == "mocks" else k] = _follow_renames(v, renames, inner)
        if key == "" and isinstance(out.get("fallback"), str):
            out["fallback"] = renames.get(out["fallback"], out["fallback"])
        return out
    return data


@functools.cache
def _reference_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(
        rf"(?<![\w.])(?:result\.)?steps\s*(?:\.\s*(?P<dot>{alternatives})(?![\w-])"
        rf"|\[\s*(?P<q>['\"])(?P<key>{alternatives})(?P=q)\s*\])"
    )


def _renamed(match: re.Match[str], renames: Mapping[str, str]) -> str:
    group = "dot" if match.group("dot") is not None else "key"
    start, end = match.span(group)
    offset = match.start()
    text = match.group(0)
    return text[: start - offset] + renames[match.group(group)] + text[end - offset :]


def _changed_groups(
    old: dict[str, Any], new: dict[str, Any], depth: int = 2
) -> list[tuple[str | int, ...]]:
    """Paths (at most `depth` keys deep into `config`, `with` and `branches`) where the
    two dicts differ, in order of first appearance, found by DeepDiff."""
    from deepdiff import DeepDiff  # slow to import (~0.5 s): only when something differs

    found = DeepDiff(old, new, ignore_order=False, verbose_level=0, view="tree")
    groups: list[tuple[str | int, ...]] = []
    for report in found.values():
        for level in report:
            segments: list[str | int] = level.path(output_format="list")
            if not segments:
                continue
            nested = depth > 1 and segments[0] in ("config", "with", "branches")
            group = tuple(segments[:2] if nested and len(segments) > 1 else segments[:1])
            if group not in groups:
                groups.append(group)
    return groups
