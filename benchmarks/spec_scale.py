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
load+dump of that file.

Times are the best of a few repetitions (fewer for 10,000 steps), taken in one warm
process (imports and first-call costs are excluded; see cold_start.py for those). The
garbage collector stays enabled, as it would be in real use, and is run before each
repetition.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML

from flujo.spec.edit import apply_patch, patch_text
from flujo.spec.load import attach_locations, check
from flujo.spec.model import Pipeline
from flujo.spec.source import parse

SIZES = (100, 1_000, 10_000)
REPEATS = {100: 7, 1_000: 5, 10_000: 2}
PATCH_SIZE = 1_000
PATCH_REPEATS = 5

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
                f"    Ticket: {{{{ input.ticket }}}}",
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


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Shortest wall time of `repeats` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ruamel_load(text: str) -> Any:
    return YAML(typ="rt").load(text)


def ruamel_load_dump(text: str) -> str:
    yaml = YAML(typ="rt")
    stream = io.StringIO()
    yaml.dump(yaml.load(text), stream)
    return stream.getvalue()


def validated(text: str) -> Pipeline:
    """The pipeline of `text`, asserting that check() finds no error (warnings listed)."""
    pipeline, diagnostics = check(text)
    errors = [d for d in diagnostics if d.severity == "error"]
    assert pipeline is not None and not errors, "\n".join(map(str, errors[:10]))
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


def scale(sizes: tuple[int, ...]) -> dict[int, str]:
    texts = {n: generate(n) for n in sizes}
    pipelines = {n: validated(texts[n]) for n in sizes}
    for n, pipeline in pipelines.items():
        assert sum(1 for _ in pipeline.walk()) == n
        assert Pipeline.from_yaml(pipeline.to_yaml()) == pipeline

    # Warm up every code path (lazy imports, pydantic and regex caches) on the smallest.
    small = texts[sizes[0]]
    check(small)
    Pipeline.from_yaml(pipelines[sizes[0]].to_yaml())
    ruamel_load(small)

    rows, phase_rows = [], []
    base_check_per_step = None
    for n in sizes:
        text, pipeline, repeats = texts[n], pipelines[n], REPEATS.get(n, 3)
        data_json = json.dumps(parse(text).data)
        t_json = best_of(lambda d=data_json: json.loads(d), repeats)
        t_ruamel = best_of(lambda t=text: ruamel_load(t), repeats)
        t_check = best_of(lambda t=text: check(t), repeats)
        t_dump = best_of(pipeline.to_yaml, repeats)
        dumped = pipeline.to_yaml()
        t_round = best_of(lambda p=pipeline: Pipeline.from_yaml(p.to_yaml()), repeats)

        per_step = t_check / n * 1e6
        base_check_per_step = base_check_per_step or per_step
        rows.append(
            [
                f"{n:,}",
                f"{len(text.encode()) / 1024:,.0f}",
                f"{text.count(chr(10)):,}",
                str(repeats),
                fmt_ms(t_json),
                fmt_ms(t_ruamel),
                fmt_ms(t_check),
                f"{per_step:,.0f}",
                f"{per_step / base_check_per_step:.2f}",
                f"{t_check / t_ruamel:.2f}x",
                fmt_ms(t_dump),
                f"{t_dump / n * 1e6:,.0f}",
                fmt_ms(t_round),
                f"{t_round / n * 1e6:,.0f}",
            ]
        )

        # Where load+validate spends its time (same phases check() runs, timed apart).
        document = parse(text)
        from flujo.spec.checks import check_pipeline
        from flujo.spec.registry import StepRegistry

        model = Pipeline.model_validate(document.data)
        model._source = document
        t_parse = best_of(lambda t=text: parse(t), repeats)
        t_model = best_of(lambda d=document.data: Pipeline.model_validate(d), repeats)
        t_attach = best_of(lambda m=model, d=document: attach_locations(m, d), repeats)
        t_checks = best_of(lambda m=model: check_pipeline(m, StepRegistry()), repeats)
        phase_rows.append(
            [
                f"{n:,}",
                fmt_ms(t_parse),
                f"{t_parse / t_ruamel:.2f}x",
                fmt_ms(t_model),
                fmt_ms(t_attach),
                fmt_ms(t_checks),
                f"{t_checks / n * 1e6:,.0f}",
                fmt_ms(t_check),
            ]
        )
        print(f"  measured {n:,} steps ({len(dumped) / 1024:,.0f} KiB when written back)")

    print()
    print("Load, validate, write and round-trip (ms, best of N; µs/step = time / steps)")
    table(
        [
            "steps",
            "KiB",
            "lines",
            "N",
            "json.loads",
            "ruamel rt load",
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
        "growth: check µs/step relative to the smallest size (1.00 = linear); "
        "round trip = from_yaml(to_yaml(p))."
    )
    print()
    print("check() by phase (ms, best of N, each timed on its own)")
    table(
        [
            "steps",
            "parse",
            "parse/ruamel",
            "model_validate",
            "attach_locations",
            "check_pipeline",
            "µs/step",
            "check() total",
        ],
        phase_rows,
    )
    print("parse = ruamel rt load + conversion to plain data with positions (source.parse).")
    return texts


PATCH = [
    # Top level, a scalar.
    {"op": "replace", "path": "/description", "value": "Patched by the benchmark."},
    # Depth 4: a step's config value.
    {"op": "replace", "path": "/steps/5/config/max_retries", "value": 4},
    # Depth 3: a new validator appended to a step deep in the file.
    {"op": "add", "path": "/steps/700/validators", "value": ["non_empty"]},
    # Depth 3: remove a key near the end.
    {"op": "remove", "path": "/steps/900/uses"},
    # Depth 2: move a whole step from the middle to near the top.
    {"op": "move", "from": "/steps/400", "path": "/steps/2"},
]


def patching(text: str) -> None:
    document = parse(text)
    steps = document.data["steps"]
    for index in (5, 700, 900, 400):
        assert steps[index].get("kind", "step") == "step", (index, steps[index])
    assert "validators" not in steps[700], "pick a step without validators for the add"

    patched = apply_patch(text, PATCH)
    result = patch_text(text, PATCH)
    validated(patched)
    changed = sum(a != b for a, b in zip(text.splitlines(), patched.splitlines(), strict=False))

    t_patch = best_of(lambda: apply_patch(text, PATCH), PATCH_REPEATS)
    t_ruamel = best_of(lambda: ruamel_load_dump(text), PATCH_REPEATS)
    t_check = best_of(lambda: check(text), PATCH_REPEATS)
    print()
    print(
        f"JSON Patch of 5 operations on the {PATCH_SIZE:,}-step file "
        f"({len(text.encode()) / 1024:,.0f} KiB; ms, best of {PATCH_REPEATS})"
    )
    table(
        ["operation", "ms", "vs ruamel load+dump"],
        [
            ["ruamel rt load+dump (baseline)", fmt_ms(t_ruamel), "1.00x"],
            ["flujo apply_patch", fmt_ms(t_patch), f"{t_patch / t_ruamel:.2f}x"],
            ["flujo check (for scale)", fmt_ms(t_check), f"{t_check / t_ruamel:.2f}x"],
        ],
    )
    print(
        f"ops: {', '.join(op['op'] for op in PATCH)}; exact merge: {result.exact}; "
        f"lines differing position-by-position: {changed}; patched file validates."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only 100 and 1,000 steps")
    args = parser.parse_args()
    sizes = SIZES[:2] if args.quick else SIZES
    print(
        f"Python {platform.python_version()} ({sys.executable}); "
        f"ruamel.yaml {__import__('ruamel.yaml').yaml.__version__}; "
        f"pydantic {__import__('pydantic').VERSION}; gc enabled, collected before each run"
    )
    started = time.perf_counter()
    texts = scale(sizes)
    patching(texts[PATCH_SIZE] if PATCH_SIZE in texts else generate(PATCH_SIZE))
    print(f"\ntotal benchmark time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
