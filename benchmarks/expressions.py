"""Flujo's expression evaluator against simpleeval and cel-python, in one run.

Run from the repository root (the comparison libraries are the optional `bench` group):

    .tools/bin/uv sync --group bench
    .venv/bin/python benchmarks/expressions.py [--quick]

The same 10 representative expressions (written in CEL syntax for cel-python) are
compiled or parsed once by each library, then evaluated against the same data; the
table gives µs per evaluation (best of several repetitions) and how many times slower
than Flujo each library is. Every library must agree on every result. Then three
expressions that simpleeval evaluates but Flujo refuses are run through both, with the
time and peak memory simpleeval spent on them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

import celpy
import simpleeval

from flujo.spec.expressions import ExpressionError, compile_expression

DATA: dict[str, Any] = {
    "result": {
        "output": "Roses are red, violets are blue.",
        "total_cost_usd": 0.0132,
        "total_tokens": 1234,
        "score": 0.95,
        "citations": ["p1", "p2"],
        "steps": {"classify": {"attempts": 3, "output": {"category": "billing"}}},
    },
    "steps": {"classify": {"attempts": 3, "output": {"category": "billing"}}},
}

# (Python syntax for Flujo and simpleeval, CEL syntax for cel-python)
EXPRESSIONS: list[tuple[str, str]] = [
    ("result.total_cost_usd < 0.01", "result.total_cost_usd < 0.01"),
    (
        "result.score >= 0.9 and result.steps.classify.attempts <= 2",
        "result.score >= 0.9 && result.steps.classify.attempts <= 2",
    ),
    ("steps.classify.output.category == 'billing'", "steps.classify.output.category == 'billing'"),
    ("'violets' in result.output", "result.output.contains('violets')"),
    ("len(result.output) > 10", "size(result.output) > 10"),
    ("result.output.startswith('Roses')", "result.output.startsWith('Roses')"),
    ("'p1' in result.citations", "'p1' in result.citations"),
    (
        "result.total_tokens * 0.000002 + result.total_cost_usd <= 0.25",
        "double(result.total_tokens) * 0.000002 + result.total_cost_usd <= 0.25",
    ),
    ("0 < result.score < 1", "0.0 < result.score && result.score < 1.0"),
    (
        "steps.classify.output.category == 'billing' if steps.classify.attempts > 1 else True",
        "steps.classify.attempts > 1 ? steps.classify.output.category == 'billing' : true",
    ),
]

LET_THROUGH = ["'a'.ljust(10**8)", "'%099999999d' % 1", "9 ** 999999"]
"""Expressions simpleeval evaluates (spending memory or CPU) and Flujo refuses."""

Evaluator = Callable[[], Any]


def flujo_evaluator(source: str) -> Evaluator:
    compiled = compile_expression(source, DATA.keys())
    return lambda: compiled.evaluate(DATA)


def simpleeval_evaluator(source: str) -> Evaluator:
    evaluator = simpleeval.EvalWithCompoundTypes(names=DATA, functions={"len": len})
    parsed = evaluator.parse(source)
    return lambda: evaluator.eval(source, previously_parsed=parsed)


def cel_evaluator(source: str) -> Evaluator:
    environment = celpy.Environment()
    program = environment.program(environment.compile(source))
    activation = {name: celpy.json_to_cel(value) for name, value in DATA.items()}
    return lambda: program.evaluate(activation)


def microseconds(evaluate: Evaluator, budget_s: float) -> float:
    """Best µs per call over five repetitions of a batch lasting about budget_s / 5."""
    calls = 1
    while timeit.timeit(evaluate, number=calls) < budget_s / 50:
        calls *= 2
    batch = max(calls * 10, 1)
    return min(timeit.repeat(evaluate, number=batch, repeat=5)) / batch * 1e6


def compare(budget_s: float) -> None:
    rows = []
    for python_source, cel_source in EXPRESSIONS:
        evaluators = {
            "flujo": flujo_evaluator(python_source),
            "simpleeval": simpleeval_evaluator(python_source),
            "cel-python": cel_evaluator(cel_source),
        }
        answers = {name: bool(evaluate()) for name, evaluate in evaluators.items()}
        if len(set(answers.values())) != 1:
            raise SystemExit(f"libraries disagree on {python_source!r}: {answers}")
        times = {name: microseconds(evaluate, budget_s) for name, evaluate in evaluators.items()}
        rows.append((python_source, times))
    print_table(rows)


def print_table(rows: list[tuple[str, dict[str, float]]]) -> None:
    print(
        "| expression | Flujo µs | simpleeval µs | cel-python µs | simpleeval/Flujo | cel/Flujo |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for source, t in rows:
        print(
            f"| `{source}` | {t['flujo']:.2f} | {t['simpleeval']:.2f} | {t['cel-python']:.1f} "
            f"| {t['simpleeval'] / t['flujo']:.1f}× | {t['cel-python'] / t['flujo']:.0f}× |"
        )
    totals = {name: sum(t[name] for _, t in rows) for name in rows[0][1]}
    print(
        f"| **all 10** | {totals['flujo']:.2f} | {totals['simpleeval']:.2f} "
        f"| {totals['cel-python']:.1f} | {totals['simpleeval'] / totals['flujo']:.1f}× "
        f"| {totals['cel-python'] / totals['flujo']:.0f}× |"
    )


def let_through() -> None:
    print("\nsimpleeval evaluates these; Flujo refuses them before they allocate:\n")
    for source in LET_THROUGH:
        evaluator = simpleeval.EvalWithCompoundTypes(names=DATA)
        tracemalloc.start()
        start = time.perf_counter()
        value = evaluator.eval(source)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        size = f"{len(value):,} characters" if isinstance(value, str) else f"{type(value).__name__}"
        if isinstance(value, int):
            size = f"a {value.bit_length():,}-bit integer"
        del value
        try:
            compile_expression(source, DATA.keys())
            verdict = "ALLOWED (unexpected)"
        except ExpressionError as exc:
            verdict = f"refused at offset {exc.offset}: {exc.message}"
        print(f"  {source}")
        print(f"    simpleeval: {size} in {elapsed * 1000:,.0f} ms, peak {peak / 1e6:,.0f} MB")
        print(f"    Flujo:      {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]} on {platform.machine()} ({platform.system()}); "
        f"simpleeval {importlib.metadata.version('simpleeval')}, "
        f"cel-python {importlib.metadata.version('cel-python')}\n"
    )
    compare(0.2 if args.quick else 1.0)
    let_through()


if __name__ == "__main__":
    main()
