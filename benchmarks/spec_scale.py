"""How spec loading, validation, writing and patching scale with pipeline size.

Run from the repository root:

    .venv/bin/python benchmarks/spec_scale.py [--quick]

Generates valid pipelines of 100, 1,000 and 10,000 steps (a realistic mix of agent and
skill steps with config and validators, nested parallel / conditional / loop / map steps,
an agents block, tests and policies), checks that `check()` reports no errors, then times:

* load+validate: `flujo.spec.load.check(text)` (YAML parse, schema, every check)
* `Pipeline.to_yaml()`
* round trip: `Pipeline.from_yaml(pipeline.to_yaml())`

against baselines measured in the same run on the same input: a plain `ruamel.yaml`
round-trip load of the text, and `json.loads` of the same data as JSON. Then a 5-operation
JSON Patch is applied to the 1,000-step file with `apply_patch`, beside a plain ruamel
load+dump and `check()` of that file (the bar: at most 1.2x check()), and, without
`--quick`, the same kind of patch to the 10,000-step file; both sizes are printed per
step (wall and CPU time), so linearity shows as an equal time per step.

Times are the best of a few repetitions (fewer for 10,000 steps), taken in one warm
process (imports and first-call costs are excluded; see cold_start.py for those). The
garbage collector runs before each repetition and is off while timing, as in `timeit`
(`--gc` leaves it on, as in real use: slower and noisier at 10,000 steps, for ruamel too).
A second table splits check() into the ruamel parse and Flujo's own phases.
About 2 minutes on a slow 2-core VM; `--quick` skips the 10,000-step size.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import gc
import io
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import VERSION as pydantic_version
from ruamel.yaml import YAML
from ruamel.yaml import __version__ as ruamel_version

from flujo.spec import source
from flujo.spec.edit import apply_patch
from flujo.spec.errors import Diagnostic
from flujo.spec.lint import check_pipeline
from flujo.spec.load import attach_locations, check
from flujo.spec.model import Pipeline
from flujo.spec.registry import StepRegistry
from flujo.spec.source import _compose, _Converter, parse

SIZES = (100, 1_000, 10_000)
REPEATS = {100: 5, 1_000: 3, 10_000: 1}
PATCH_SIZE = 1_000
PATCH_REPEATS = 2
LARGE_PATCH_REPEATS = 2
# The scan for hostile nesting that parse and load_tree run before ruamel (private; may go).
PRESCAN: Callable[[str, int], Any] | None = getattr(source, "_nesting_beyond", None)

# -- generating pipelines -----------------------------------------------------------------

AGENTS = """\
agents:
  classifier:
    model: openai:gpt-4o-mini
    system_prompt: |
      You triage incoming requests.
      Answer with JSON: {"category": "billing" | "technical" | "other", "urgency": 1-5}.
    output_schema:
      type: object
      required: [category, urgency]
      properties:
        category:
          enum: [billing, technical, other]
        urgency:
          type: integer
          minimum: 1
          maximum: 5
    temperature: 0
    max_tokens: 50
  writer:
    model: openai:gpt-4o
    system_prompt: |
      You write short, friendly replies. Never promise refunds.
    temperature: 0.4
    max_tokens: 400
  summarizer:
    model: anthropic:claude-3-5-haiku-latest
    system_prompt: Summarize the input in three sentences.
    max_tokens: 200
  critic:
    model: openai:gpt-4o-mini
    system_prompt: Score the draft from 0 to 1 and list what to fix.
    temperature: 0
"""


def _indent(lines: list[str], spaces: int) -> list[str]:
    pad = " " * spaces
    return [pad + line if line else line for line in lines]


class Generator:
    """Writes the YAML text of a pipeline with exactly `total` steps (fallbacks counted)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0  # steps emitted so far
        self.serial = 0  # numbers names; never reused, so names stay unique
        self.prev = "classify"  # a step that earlier steps' templates may refer to

    def _name(self, prefix: str) -> str:
        self.serial += 1
        self.count += 1
        return f"{prefix}_{self.serial:05d}"

    # Leaf steps: each returns the lines of one list item, at indent 0.

    def agent_step(self) -> list[str]:
        agent = ("writer", "summarizer", "classifier", "writer")[self.serial % 4]
        name = self._name(agent[:5])
        lines = [
            f"- name: {name}",
            f"  uses: agents.{agent}",
            f'  input: "{{{{ steps.{self.prev}.output }}}}"',
            "  config:",
            f"    max_retries: {self.serial % 3}",
            "    timeout_s: 30",
        ]
        if self.serial % 3 == 0:
            lines += ["    backoff:", "      initial_s: 0.5", "      max_s: 10"]
        lines += ["  validators:", "    - non_empty"]
        if self.serial % 2 == 0:
            lines += ["    - uses: max_length", "      with:", "        max: 2000"]
        if self.serial % 7 == 0:
            fallback = self._name("canned")
            lines += [
                "  fallback:",
                f"    name: {fallback}",
                "    uses: template_render",
                "    with:",
                '      template: "Thanks for writing in! We will reply within a day."',
            ]
        self.prev = name
        return lines

    def skill_step(self) -> list[str]:
        serial = self.serial
        choice = serial % 5
        if choice == 0:
            name = self._name("extract")
            lines = [
                f"- name: {name}",
                "  description: Pull the error code out of the ticket text.",
                "  uses: regex_extract",
                f'  input: "{{{{ steps.{self.prev}.output }}}}"',
                "  with:",
                '    pattern: "(?i)error[: ]+([A-Z0-9_]+)"',
                "    group: 1",
            ]
        elif choice == 1:
            name = self._name("parse")
            lines = [f"- name: {name}", "  uses: json_parse", "  config:", "    max_retries: 1"]
            if serial % 10 == 1:
                lines += [
                    "  validators:",
                    "    - uses: json_schema",
                    "      with:",
                    "        schema:",
                    "          type: object",
                    "          required: [items]",
                ]
        elif choice == 2:
            name = self._name("render")
            lines = [
                f"- name: {name}",
                "  uses: template_render",
                "  input: |",
                "    Ticket: {{ input.ticket }}",
                f"    Previous answer: {{{{ steps.{self.prev}.output }}}}",
                "  with:",
                '    template: "Summary: {{ input }}"',
            ]
        elif choice == 3:
            name = self._name("check")
            lines = [
                f"- name: {name}",
                "  uses: agents.critic",
                f'  input: "Draft to score: {{{{ steps.{self.prev}.output }}}}"',
                "  config:",
                "    temperature: 0.2",
                "    timeout_s: 15",
            ]
        else:
            name = self._name("copy")
            lines = [f"- name: {name}", "  uses: passthrough"]
        self.prev = name
        return lines

    def leaf(self) -> list[str]:
        return self.agent_step() if self.serial % 3 == 0 else self.skill_step()

    def steps_block(self, key: str, count: int) -> list[str]:
        body: list[str] = []
        for _ in range(count):
            body += self.leaf()
        return [f"{key}:", "  steps:", *_indent(body, 4)]

    # Composite steps.

    def parallel(self) -> list[str]:
        name = self._name("fanout")
        lines = [
            f"- name: {name}",
            "  kind: parallel",
            "  on_branch_failure: ignore",
            "  branches:",
        ]
        for branch in ("logs", "product", "history"):
            lines += _indent(self.steps_block(branch, 2), 4)
        return lines

    def conditional(self) -> list[str]:
        name = self._name("route")
        source = self.prev
        lines = [
            f"- name: {name}",
            "  kind: conditional",
            f"  condition_expression: steps.{source}.output.category",
            "  branches:",
            *_indent(self.steps_block("billing", 2), 4),
        ]
        technical = self.steps_block("technical", 1)
        technical += _indent(self.map_step(), 4)  # a nested composite, one level deeper
        lines += _indent(technical, 4)
        lines += _indent(self.steps_block("default", 1), 2)
        return lines

    def loop(self) -> list[str]:
        name = self._name("refine")
        body = self.steps_block("body", 3)
        return [
            f"- name: {name}",
            "  kind: loop",
            "  max_loops: 3",
            f'  exit_expression: "steps.{self.prev}.output.score >= 0.8"',
            *_indent(body, 2),
        ]

    def map_step(self) -> list[str]:
        name = self._name("each")
        source = self.prev
        return [
            f"- name: {name}",
            "  kind: map",
            f"  over: steps.{source}.output['items'][:20]",
            *_indent(self.steps_block("body", 2), 2),
        ]

    def top_level_steps(self) -> list[str]:
        composites = (self.parallel, self.conditional, self.loop, self.map_step)
        lines = [
            "- name: classify",
            "  uses: agents.classifier",
            '  input: "{{ input.ticket }}"',
            "  validators:",
            "    - non_empty",
        ]
        self.count += 1
        item = 0
        while self.count < self.total:
            item += 1
            if item % 12 == 0:
                state = (self.count, self.serial, self.prev)
                kind = composites[(item // 12) % len(composites)]
                block = [f"# {kind.__name__.strip('_')} step", *kind()]
                if self.count <= self.total:
                    lines += block
                    continue
                self.count, self.serial, self.prev = state  # too big for what is left
            lines += self.leaf()
        return lines

    def text(self) -> str:
        steps = self.top_level_steps()
        assert self.count == self.total, (self.count, self.total)
        parts = [
            "# yaml-language-server: $schema=../spec/flujo.schema.json",
            "# Generated by benchmarks/spec_scale.py.",
            'version: "1"',
            f"name: scale-{self.total}",
            f"description: A generated pipeline of {self.total} steps for benchmarks.",
            "",
            AGENTS,
            "steps:",
            *_indent(steps, 2),
            "",
            "tests:",
            "  - name: billing ticket is routed",
            "    input:",
            '      ticket: "I was charged twice this month."',
            "    mocks:",
            "      classify: {category: billing, urgency: 2}",
            "    tags: [smoke]",
            "    assertions:",
            "      - \"steps.classify.output.category == 'billing'\"",
            '      - "result.total_cost_usd < 0.05"',
            "  - name: every step ran",
            "    input: {ticket: hello}",
            "    assertions:",
            f'      - "steps.{self.prev}.output is not None"',
            "",
            "policies:",
            "  - id: cost_gate",
            "    description: Urgent tickets may cost more, never more than ten cents.",
            '    when: "steps.classify.output.urgency >= 4"',
            '    assert: "result.total_cost_usd <= 0.10"',
            "  - id: token_gate",
            '    assert: "result.total_tokens < 100000"',
            "    action: WARN",
            "",
            "usage_limits:",
            "  total_cost_usd: 5",
            "  total_tokens: 2000000",
        ]
        return "\n".join(parts) + "\n"


def generate(total: int) -> str:
    return Generator(total).text()


# -- timing -------------------------------------------------------------------------------


KEEP_GC = False
"""Leave the cyclic garbage collector on while timing (--gc); off by default, as in timeit."""


def measure(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Shortest wall time of `repeats` calls (seconds) and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None
        gc.collect()
        if not KEEP_GC:
            gc.disable()
        try:
            start = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best, result


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    return measure(fn, repeats)[0]


def best_wall_and_cpu(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Shortest wall time and shortest CPU time (this process) of `repeats` calls: on a
    shared machine the CPU time is what the code costs, the wall time what a user waits."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        gc.collect()
        if not KEEP_GC:
            gc.disable()
        try:
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            cpu = min(cpu, time.process_time() - cpu_start)
            wall = min(wall, time.perf_counter() - start)
        finally:
            gc.enable()
    return wall, cpu


def ruamel_load(text: str) -> Any:
    return YAML(typ="rt").load(text)


def ruamel_load_dump(text: str) -> str:
    yaml = YAML(typ="rt")
    stream = io.StringIO()
    yaml.dump(yaml.load(text), stream)
    return stream.getvalue()


def assert_valid(result: tuple[Pipeline | None, list[Diagnostic]]) -> Pipeline:
    """The pipeline of a check() result, asserting no error was found (warnings shown)."""
    pipeline, diagnostics = result
    errors = [d for d in diagnostics if d.severity == "error"]
    if pipeline is None or errors:
        raise AssertionError("generated spec is invalid:\n" + "\n".join(map(str, errors[:10])))
    for warning in diagnostics:
        print(f"  warning: {warning}")
    return pipeline


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


# -- the benchmarks -----------------------------------------------------------------------


def scale(sizes: tuple[int, ...], repeats: dict[int, int]) -> dict[int, str]:
    # Warm up every code path (lazy imports, pydantic and regex caches) on a small file.
    small = generate(100)
    Pipeline.from_yaml(assert_valid(check(small)).to_yaml())
    ruamel_load(small)

    texts: dict[int, str] = {}
    rows: list[list[str]] = []
    phase_rows: list[list[str]] = []
    first_per_step = first_ruamel = 0.0
    for n in sizes:
        text = texts[n] = generate(n)
        reps = repeats[n]
        # Timed first: its result also proves the generated file valid.
        t_check, result = measure(lambda t=text: check(t), reps)
        pipeline = assert_valid(result)
        if sum(1 for _ in pipeline.walk()) != n:
            raise AssertionError(f"expected {n} steps")
        del result

        data_json = json.dumps(pipeline.source.data)  # type: ignore[union-attr]
        t_json = best_of(lambda d=data_json: json.loads(d), reps)
        t_ruamel, tree = measure(lambda t=text: ruamel_load(t), reps)
        # check()'s own phases after the YAML parse, each timed apart (table 2).
        document = pipeline.source
        assert document is not None
        del tree
        t_compose, node = measure(lambda t=text: _compose(t, "bench"), reps)
        t_convert = best_of(lambda d=document, t=node: _Converter(d).convert(t), reps)
        del node
        t_model = best_of(lambda d=document.data: Pipeline.model_validate(d), reps)
        t_attach = best_of(lambda p=pipeline, d=document: attach_locations(p, d), reps)
        t_checks = best_of(lambda p=pipeline: check_pipeline(p, StepRegistry()), reps)
        t_prescan = best_of(lambda t=text: PRESCAN(t, source.MAX_DEPTH), reps) if PRESCAN else 0
        flujo_own = t_prescan + t_convert + t_model + t_attach + t_checks

        t_dump, dumped = measure(pipeline.to_yaml, reps)
        # Round trip = to_yaml + from_yaml of its text, timed as two parts (saves a dump).
        t_from, again = measure(lambda d=dumped: Pipeline.from_yaml(d), reps)
        t_round = t_dump + t_from
        if again != pipeline:
            raise AssertionError("round trip changed the pipeline")
        del again, dumped

        per_step = t_check / n * 1e6
        first_per_step = first_per_step or per_step
        first_ruamel = first_ruamel or t_ruamel / n
        rows.append(
            [
                f"{n:,}",
                f"{len(text.encode()) / 1024:,.0f}",
                f"{text.count(chr(10)):,}",
                str(reps),
                fmt_ms(t_json),
                fmt_ms(t_ruamel),
                f"{t_ruamel / n / first_ruamel:.2f}",
                fmt_ms(t_check),
                f"{per_step:,.0f}",
                f"{per_step / first_per_step:.2f}",
                f"{t_check / t_ruamel:.2f}x",
                fmt_ms(t_dump),
                f"{t_dump / n * 1e6:,.0f}",
                fmt_ms(t_round),
                f"{t_round / n * 1e6:,.0f}",
            ]
        )

        phase_rows.append(
            [
                f"{n:,}",
                fmt_ms(t_compose),
                fmt_ms(t_prescan) if PRESCAN else "-",
                fmt_ms(t_convert),
                fmt_ms(t_model),
                fmt_ms(t_attach),
                fmt_ms(t_checks),
                f"{t_checks / n * 1e6:,.1f}",
                fmt_ms(flujo_own),
                f"{flujo_own / n * 1e6:,.0f}",
                f"{flujo_own / t_compose:.2f}x",
            ]
        )
        print(f"  measured {n:,} steps", flush=True)

    print()
    print("Load+validate, write and round trip (ms, best of N; µs/step = time / steps)")
    table(
        [
            "steps",
            "KiB",
            "lines",
            "N",
            "json.loads",
            "ruamel rt load",
            "growth",
            "flujo check",
            "µs/step",
            "growth",
            "check/ruamel",
            "to_yaml",
            "µs/step",
            "round trip",
            "µs/step",
        ],
        rows,
    )
    print(
        "growth: time per step relative to the smallest size (1.00 = linear). round trip: "
        "from_yaml(to_yaml(p)) timed as to_yaml + from_yaml; the result equals p."
    )
    print()
    print("check() phase by phase (ms, best of N, each timed apart)")
    table(
        [
            "steps",
            "YAML compose (C)",
            "pre-scan",
            "to plain+positions",
            "model_validate",
            "attach_locations",
            "check_pipeline",
            "µs/step",
            "flujo's own",
            "µs/step",
            "own/compose",
        ],
        phase_rows,
    )
    print(
        "check() parses with ruamel's C composer (YAML 1.2, node positions); the round-trip "
        "loader (baseline above) is used only for edits. flujo's own = every phase but the "
        "compose: pre-scan, source._Converter, pydantic, locations, check_pipeline."
    )
    return texts


def _patch_for(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Five operations at different depths, on top-level steps chosen to keep it valid."""
    steps = data["steps"]
    count = len(steps)

    def plain_step(start: int, *, without: str = "", having: str = "") -> int:
        for index in range(start, count):
            step = steps[index]
            if "kind" not in step and without not in step and (not having or having in step):
                return index
        raise AssertionError(f"no plain step from {start}")

    route = next(i for i, s in enumerate(steps) if s.get("kind") == "conditional")
    assert steps[route]["branches"]["technical"]["steps"][1]["kind"] == "map"
    timed = plain_step(count * 9 // 10, having="config")
    while "timeout_s" not in steps[timed]["config"]:
        timed = plain_step(timed + 1, having="config")
    return [
        # Depth 1: a top-level scalar.
        {"op": "replace", "path": "/description", "value": "Patched by the benchmark."},
        # Depth 6: an expression inside a map step nested in a conditional branch.
        {
            "op": "replace",
            "path": f"/steps/{route}/branches/technical/steps/1/over",
            "value": "steps.classify.output['items']",
        },
        # Depth 3: validators added to a step about 70% into the file.
        {
            "op": "add",
            "path": f"/steps/{plain_step(count * 7 // 10, without='validators')}/validators",
            "value": ["non_empty", {"uses": "max_length", "with": {"max": 500}}],
        },
        # Depth 4: a config key removed near the end.
        {"op": "remove", "path": f"/steps/{timed}/config/timeout_s"},
        # Depth 2: a whole step moved from the middle to near the top.
        {"op": "move", "from": f"/steps/{plain_step(count * 4 // 10)}", "path": "/steps/2"},
    ]


def patching(text: str, size: int, repeats: int, larger: str | None = None) -> None:
    patch = _patch_for(parse(text).data)
    t_ruamel = best_of(lambda: ruamel_load_dump(text), repeats)
    t_check = best_of(lambda: check(text), repeats)
    t_patch, patched = measure(lambda: apply_patch(text, patch), repeats)
    assert_valid(check(patched))
    diff = list(difflib.unified_diff(text.splitlines(), patched.splitlines(), n=0))
    added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
    print()
    print(
        f"JSON Patch of {len(patch)} operations on the {size:,}-step file "
        f"({len(text.encode()) / 1024:,.0f} KiB; ms, best of {repeats})"
    )
    table(
        ["operation", "ms", "ratio"],
        [
            ["ruamel rt load+dump (baseline)", fmt_ms(t_ruamel), "1.00x"],
            ["flujo check() (the speed bar: 1.2x)", fmt_ms(t_check), f"{t_check / t_ruamel:.2f}x"],
            ["flujo apply_patch", fmt_ms(t_patch), f"{t_patch / t_ruamel:.2f}x"],
        ],
    )
    print(f"apply_patch / check(): {t_patch / t_check:.2f}x")
    sizes = [(size, text, patch, repeats)]
    if larger is not None:  # the same kind of patch, ten times the file: linear?
        sizes.append((size * 10, larger, _patch_for(parse(larger).data), LARGE_PATCH_REPEATS))
    rows, per_step = [], {}
    for steps, source_text, operations, times in sizes:
        check_wall, check_cpu = best_wall_and_cpu(functools.partial(check, source_text), times)
        patch_wall, patch_cpu = best_wall_and_cpu(
            functools.partial(apply_patch, source_text, operations), times
        )
        per_step[steps] = (patch_wall / steps, patch_cpu / steps)
        rows.append(
            [
                f"{steps:,}",
                fmt_ms(check_wall),
                f"{check_wall / steps * 1e6:,.0f}",
                f"{check_cpu / steps * 1e6:,.0f}",
                fmt_ms(patch_wall),
                f"{patch_wall / steps * 1e6:,.0f}",
                f"{patch_cpu / steps * 1e6:,.0f}",
                f"{patch_wall / check_wall:.2f}x",
                f"{patch_cpu / check_cpu:.2f}x",
            ]
        )
    print()
    print("Per step (us): linear growth keeps the time per step constant; CPU time is this")
    print(f"process's own, unaffected by other load (best of {repeats}, {LARGE_PATCH_REPEATS}).")
    table(
        [
            "steps",
            "check ms",
            "check us/step",
            "check CPU us/step",
            "patch ms",
            "patch us/step",
            "patch CPU us/step",
            "patch/check",
            "CPU patch/check",
        ],
        rows,
    )
    if larger is not None:
        wall_growth = per_step[size * 10][0] / per_step[size][0]
        cpu_growth = per_step[size * 10][1] / per_step[size][1]
        print(
            f"apply_patch per step at {size * 10:,} steps / at {size:,}: {wall_growth:.2f}x wall, "
            f"{cpu_growth:.2f}x CPU (1.00x is linear)"
        )
    for op in patch:
        where = f"{op['from']} -> {op['path']}" if op["op"] == "move" else op["path"]
        print(f"  {op['op']:8} {where}")
    print(f"diff against the input: +{added} -{removed} lines; the patched file validates.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 steps only")
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on")
    args = parser.parse_args()
    global KEEP_GC
    KEEP_GC = args.gc
    sizes = SIZES[:2] if args.quick else SIZES
    print(
        f"Python {platform.python_version()} ({sys.executable}); "
        f"ruamel.yaml {ruamel_version}; pydantic {pydantic_version}"
    )
    print(
        "One warm process; best of N wall times; gc.collect() before each repetition, "
        + ("gc left on while timing (--gc)." if KEEP_GC else "gc off while timing (as timeit).")
        + " ",
        flush=True,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    texts = scale(sizes, REPEATS)
    patch_text_source = texts.get(PATCH_SIZE) or generate(PATCH_SIZE)
    larger = None if args.quick else texts.get(PATCH_SIZE * 10)
    patching(patch_text_source, PATCH_SIZE, PATCH_REPEATS, larger)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"\ntotal benchmark time: {wall:.0f} s wall, {cpu:.0f} s CPU ({cpu / wall:.0%}"
        + (": other load on the machine inflated these times)" if cpu / wall < 0.9 else ")")
    )


if __name__ == "__main__":
    main()
