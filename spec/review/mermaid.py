"""Mermaid flowcharts of a pipeline, with changed steps colour-coded.

Sequence is an arrow from step to step; a parallel step forks into one box per branch
and joins again; a conditional is a diamond with one labelled arrow per branch; loops
and maps are boxes with their body inside (a loop has a dashed "repeat" arrow). Steps in
`marks` get a class: added (green), removed (red), changed (amber), moved (blue), and a
legend lists the classes used. From `COLLAPSE_AT` steps on, runs of unchanged steps fold
into one summary node so large pipelines stay readable.

Node ids derive from step names (`s_` + an escaped name), so a step keeps its id between
the before and after diagrams. Labels are escaped so any text is valid Mermaid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from flujo.spec.model import (
    AgenticLoopStep,
    AgentStep,
    CacheStep,
    ConditionalStep,
    DynamicRouterStep,
    HitlStep,
    LoopStep,
    MapStep,
    ParallelStep,
    Pipeline,
    StateMachineStep,
    StepBase,
)

Mark = Literal["added", "removed", "changed", "moved"]
COLLAPSE_AT = 50
_LABEL_LIMIT = 60

CLASS_STYLES: dict[str, str] = {
    "added": "fill:#dafbe1,stroke:#1a7f37,color:#0f2e18",
    "removed": "fill:#ffebe9,stroke:#cf222e,color:#4c0d0d,stroke-dasharray:5 3",
    "changed": "fill:#fff8c5,stroke:#9a6700,color:#3b2300",
    "moved": "fill:#ddf4ff,stroke:#0969da,color:#0a3069",
    "collapsed": "fill:#f6f8fa,stroke:#8c959f,color:#57606a,stroke-dasharray:3 3",
}
_LEGEND: dict[str, str] = {
    "added": "added",
    "removed": "removed",
    "changed": "changed",
    "moved": "moved",
    "collapsed": "unchanged, folded",
}

# Characters that would end a quoted label or be read as markup: written as entities.
_ESCAPES = {c: f"#{ord(c)};" for c in '"#&<>`|\\;{}[]()'}


def node_id(name: str, prefix: str = "s_") -> str:
    """A Mermaid-safe id for a step name: letters and digits kept, anything else `_hex_`."""
    out = [prefix]
    for char in name:
        out.append(char if char.isascii() and char.isalnum() else f"_{ord(char):x}_")
    return "".join(out)


def label(text: str, limit: int = _LABEL_LIMIT) -> str:
    """`text` as a quoted Mermaid label: one line, shortened, markup characters escaped."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    escaped = "".join(_ESCAPES.get(c, c) for c in flat)
    return f'"{escaped or " "}"'


def flowchart(
    pipeline: Pipeline,
    marks: Mapping[str, Mark] | None = None,
    *,
    collapse_unchanged: bool | None = None,
    direction: Literal["TD", "LR"] = "TD",
) -> str:
    """The pipeline as a Mermaid flowchart.

    `marks` colours steps by name. `collapse_unchanged` folds unchanged runs of steps
    into summary nodes; by default it does so for pipelines of `COLLAPSE_AT` steps or more.
    """
    marks = dict(marks or {})
    total = sum(1 for _ in pipeline.walk())
    collapse = total >= COLLAPSE_AT if collapse_unchanged is None else collapse_unchanged
    chart = _Chart(marks, collapse)
    chart.line("start([input])")
    exits = chart.sequence(pipeline.steps, [("start", None)], "  ")
    chart.line("finish([output])")
    chart.connect(exits, "finish")
    return chart.text(direction)


@dataclass
class _Chart:
    marks: Mapping[str, Mark]
    collapse: bool
    lines: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=dict)
    _subgraphs: int = 0

    def line(self, text: str, indent: str = "  ") -> None:
        self.lines.append(indent + text)

    def edge(self, text: str) -> None:
        """Edges are written after every node, at the top level: Mermaid moves a node into
        any subgraph whose block mentions it, so an edge written inside a box would pull
        the node it comes from (a fork, a decision) into that box."""
        self.edges.append("  " + text)

    def node(self, ident: str, shape: str, indent: str, mark: str | None) -> None:
        self.line(f"{ident}{shape}", indent)
        if mark is not None:
            self.classes.setdefault(mark, []).append(ident)

    def connect(self, exits: Sequence[tuple[str, str | None]], target: str) -> None:
        for source, edge_label in exits:
            arrow = f"-->|{label(edge_label, 30)}|" if edge_label is not None else "-->"
            self.edge(f"{source} {arrow} {target}")

    def subgraph(self, title: str, indent: str) -> str:
        self._subgraphs += 1
        ident = f"g{self._subgraphs}"
        self.line(f"subgraph {ident} [{label(title)}]", indent)
        return ident

    # -- structure -------------------------------------------------------------------

    def sequence(
        self, steps: Sequence[StepBase], incoming: list[tuple[str, str | None]], indent: str
    ) -> list[tuple[str, str | None]]:
        exits = incoming
        for group in self._groups(steps):
            if isinstance(group, list):
                entry = node_id(group[0].name, "c_")
                count = sum(_size(s) for s in group)
                text = f"{count} unchanged step{'s' * (count != 1)}"
                if len(group) == 1:
                    text = f"{group[0].name} · {text}"
                else:
                    text = f"{group[0].name} … {group[-1].name} · {text}"
                self.node(entry, f"[[{label(text)}]]", indent, "collapsed")
                self.connect(exits, entry)
                exits = [(entry, None)]
                continue
            entry, exits_after = self.step(group, indent)
            self.connect(exits, entry)
            exits = exits_after
        return exits

    def _groups(self, steps: Sequence[StepBase]) -> Iterable[StepBase | list[StepBase]]:
        """Steps, with runs of unchanged ones folded (when collapsing)."""
        if not self.collapse:
            yield from steps
            return
        quiet = [not self._touched(s) for s in steps]
        run: list[StepBase] = []
        for i, step in enumerate(steps):
            # Keep one unchanged step of context on each side of a changed one.
            near = (i > 0 and not quiet[i - 1]) or (i + 1 < len(steps) and not quiet[i + 1])
            if quiet[i] and not (near and _size(step) == 1):
                run.append(step)
                continue
            yield from _folded(run)
            run = []
            yield step
        yield from _folded(run)

    def _touched(self, step: StepBase) -> bool:
        return any(name in self.marks for name in step.step_names())

    def step(self, step: StepBase, indent: str) -> tuple[str, list[tuple[str, str | None]]]:
        """Draw one step; returns its entry node and its exits (node, edge label)."""
        ident = node_id(step.name)
        mark = self.marks.get(step.name)
        inner = indent + "  "
        if isinstance(step, ParallelStep | DynamicRouterStep):
            kind = "parallel" if isinstance(step, ParallelStep) else "router chooses"
            self.node(ident, f"[[{label(step.name + ' · ' + kind)}]]", indent, mark)
            join = node_id(step.name, "j_")
            exits: list[tuple[str, str | None]] = []
            fork: list[tuple[str, str | None]] = [(ident, None)]
            if isinstance(step, DynamicRouterStep):  # the router runs first
                entry, fork = self.step(step.router_agent, indent)
                self.connect([(ident, None)], entry)
            for branch, step_list in step.branches.items():
                self.subgraph(f"branch {branch}", indent)
                exits += self.sequence(step_list.steps, fork, inner)
                self.line("end", indent)
            self.node(join, f"(({label('join', 10)}))", indent, None)
            self.connect(exits, join)
            return ident, [(join, None)]
        if isinstance(step, ConditionalStep):
            self.node(ident, "{" + label(step.name) + "}", indent, mark)
            exits = []
            branches = list(step.branches.items())
            for key, step_list in branches:
                exits += self._branch(ident, key, step_list.steps, indent)
            if step.default is not None:
                exits += self._branch(ident, "otherwise", step.default.steps, indent)
            else:
                exits.append((ident, "no match"))
            return ident, exits
        if isinstance(step, LoopStep | MapStep):
            if isinstance(step, LoopStep):
                title = f"{step.name} · loop, at most {step.max_loops}×"
            else:
                title = f"{step.name} · for each in {step.over}"
            self.subgraph(title, indent)
            self.node(ident, f"([{label(step.name)}])", inner, mark)
            exits = self.sequence(step.body.steps, [(ident, None)], inner)
            if isinstance(step, LoopStep):
                for source, _ in exits:
                    self.edge(f"{source} -.->|{label('repeat', 10)}| {ident}")
            self.line("end", indent)
            return ident, exits
        if isinstance(step, StateMachineStep):
            return self._machine(step, ident, mark, indent)
        text = step.name
        uses = getattr(step, "uses", None)
        if uses:
            text = f"{step.name} · {uses}"
        elif isinstance(step, HitlStep):
            text = f"{step.name} · ask a person"
        elif isinstance(step, CacheStep):
            text = f"{step.name} · cached {step.wrapped_step.uses or step.wrapped_step.name}"
        elif isinstance(step, AgenticLoopStep):
            tools = ", ".join(step.tools) or "no tools"
            text = f"{step.name} · planner {step.planner.uses} with {tools}"
        self.node(ident, f"[{label(text)}]", indent, mark)
        exits = [(ident, None)]
        if isinstance(step, CacheStep):  # a miss runs the wrapped step
            entry, wrapped_exits = self.step(step.wrapped_step, indent)
            self.connect([(ident, "miss")], entry)
            return ident, [(ident, "hit"), *wrapped_exits]
        if isinstance(step, AgenticLoopStep):  # the planner, then a tool, turn by turn
            planner, planner_exits = self.step(step.planner, indent)
            self.connect([(ident, None)], planner)
            for name, tool in step.tools.items():
                entry, tool_exits = self.step(tool, indent)
                self.connect([(p, name) for p, _ in planner_exits], entry)
                for source, _ in tool_exits:
                    self.edge(f"{source} -.->|{label('result', 10)}| {planner}")
            return ident, [(p, "finish") for p, _ in planner_exits]
        if isinstance(step, AgentStep) and step.fallback is not None:
            entry, fallback_exits = self.step(step.fallback, indent)
            self.edge(f"{ident} -.->|{label('on failure', 12)}| {entry}")
            exits += fallback_exits
        return ident, exits

    def _machine(
        self, step: StateMachineStep, ident: str, mark: str | None, indent: str
    ) -> tuple[str, list[tuple[str, str | None]]]:
        """A state machine: a node per state (its steps after it), transitions between
        states as labelled arrows, and one exit from the end states."""
        self.node(ident, "{{" + label(step.name + " · state machine") + "}}", indent, mark)
        done = node_id(step.name, "e_")
        states = {name: node_id(f"{step.name}.{name}", "st_") for name in step.states}
        for name in step.end_states:
            states.setdefault(name, node_id(f"{step.name}.{name}", "st_"))
        leaving: dict[str, list[tuple[str, str | None]]] = {}
        for name, state in states.items():
            self.subgraph(f"state {name}", indent)
            self.node(state, f"([{label(name)}])", indent + "  ", None)
            steps = step.states[name].steps if name in step.states else []
            leaving[name] = self.sequence(steps, [(state, None)], indent + "  ")
            self.line("end", indent)
        self.connect([(ident, "start")], states[step.start_state])
        for rule in step.transitions:
            sources = list(states) if rule.from_ == "*" else [rule.from_]
            target = states.get(rule.to)
            if target is None:
                continue
            text = rule.on if rule.when is None else f"{rule.on} if {rule.when}"
            for source in sources:
                for node, _ in leaving.get(source, []):
                    self.edge(f"{node} -.->|{label(text, 30)}| {target}")
        self.node(done, f"(({label('end', 10)}))", indent, None)
        finals = step.end_states or list(states)
        self.connect([e for name in finals for e in leaving.get(name, [])], done)
        return ident, [(done, None)]

    def _branch(
        self, decision: str, key: str, steps: Sequence[StepBase], indent: str
    ) -> list[tuple[str, str | None]]:
        if not steps:
            return [(decision, key)]
        self.subgraph(f"when {key}", indent)
        exits = self.sequence(steps, [(decision, key)], indent + "  ")
        self.line("end", indent)
        return exits

    # -- output ----------------------------------------------------------------------

    def text(self, direction: str) -> str:
        out = [f"flowchart {direction}", *self.lines, *self.edges]
        used = [name for name in CLASS_STYLES if name in self.classes]
        if used:
            out.append(f"  subgraph legend [{label('Legend')}]")
            out.append("    direction LR")
            for name in used:
                out.append(f"    legend_{name}[{label(_LEGEND[name])}]")
            out.append("  end")
        for name in used:
            out.append(f"  classDef {name} {CLASS_STYLES[name]}")
            members = [*dict.fromkeys(self.classes[name]), f"legend_{name}"]
            out.append(f"  class {','.join(members)} {name}")
        return "\n".join(out) + "\n"


def _folded(run: list[StepBase]) -> Iterable[StepBase | list[StepBase]]:
    """A run of unchanged steps as one folded group; a lone plain step stays itself."""
    if len(run) == 1 and _size(run[0]) == 1:
        yield run[0]
    elif run:
        yield run


def _size(step: StepBase) -> int:
    return len(step.step_names())
