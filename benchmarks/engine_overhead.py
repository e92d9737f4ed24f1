"""Engine overhead per step: Flujo (spans + SQLite store on / off) vs plain asyncio vs
LangGraph, on the same 200-step chain whose agent answers instantly (in-process).

Run: .venv/bin/python benchmarks/engine_overhead.py   (LangGraph comes from the `bench`
dependency group: .tools/bin/uv sync --group bench). Prints µs per step and ratios, then
the overhead with spans and the store at 50, 1,000 and 10,000 steps in CPU time (wall
times on a shared machine follow its load), with and without the cost every run has apart
from its steps (measured on a 1-step run), and the load average.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flujo.engine.runner import Completion, Runner
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline

STEPS = 200
REPEATS = 15
SIZES = (50, 1_000, 10_000)


async def agent(value: Any) -> Any:
    """The work every contender does per step: an instant async 'model call'."""
    return value


class InstantModels:
    async def complete(self, agent_: Any, step: Any, prompt: Any, feedback: Any) -> Completion:
        return Completion(await agent(prompt), "fake-model", 10, 5, 0.000_01)


def chain_spec(steps: int) -> Pipeline:
    lines = ["name: chain", "agents:", "  fast: {model: 'openai:gpt-4o-mini'}", "steps:"]
    lines += [f"  - {{name: s{i}, uses: agents.fast}}" for i in range(steps)]
    return Pipeline.from_yaml("\n".join(lines) + "\n")


async def plain_asyncio(steps: int) -> float:
    started = time.perf_counter()
    value: Any = "x"
    for _ in range(steps):
        value = await agent(value)
    return time.perf_counter() - started


def best(samples: list[float]) -> float:
    return min(samples)


async def flujo_runs(runner: Runner) -> float:
    started = time.perf_counter()
    result = await runner.run("x")
    assert result.success, result.error
    return time.perf_counter() - started


def langgraph_app(steps: int) -> Any:
    try:
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None
    from typing import TypedDict

    class State(TypedDict):
        value: Any

    graph = StateGraph(State)

    async def node(state: State) -> State:
        return {"value": await agent(state["value"])}

    for i in range(steps):
        graph.add_node(f"s{i}", node)
    graph.add_edge(START, "s0")
    for i in range(steps - 1):
        graph.add_edge(f"s{i}", f"s{i + 1}")
    graph.add_edge(f"s{steps - 1}", END)
    return graph.compile()


async def measure() -> None:
    spec = chain_spec(STEPS)
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "bench.db")
        contenders = {
            "flujo, spans + SQLite store": Runner(spec, models=InstantModels(), store=store),
            "flujo, spans, no store": Runner(spec, models=InstantModels()),
            "flujo, no spans, no store": Runner(spec, models=InstantModels(), trace=False),
        }
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        samples["plain asyncio"] = []
        app = langgraph_app(STEPS)
        if app is not None:
            samples["langgraph (no tracing, no store)"] = []
        for _ in range(3):  # warm up
            for runner in contenders.values():
                await flujo_runs(runner)
        gc.collect()
        for _ in range(REPEATS):
            for name, runner in contenders.items():
                samples[name].append(await flujo_runs(runner))
            samples["plain asyncio"].append(await plain_asyncio(STEPS))
            if app is not None:
                started = time.perf_counter()
                await app.ainvoke({"value": "x"}, {"recursion_limit": STEPS + 10})
                samples["langgraph (no tracing, no store)"].append(time.perf_counter() - started)
        store.close()

    baseline = best(samples["plain asyncio"]) / STEPS
    print(f"{STEPS}-step chain, instant in-process agent; best of {REPEATS} runs")
    print(f"{'contender':<36} {'µs/step':>9} {'overhead µs/step':>17} {'median µs/step':>15}")
    for name, values in samples.items():
        per_step = best(values) / STEPS
        median = statistics.median(values) / STEPS
        print(
            f"{name:<36} {per_step * 1e6:9.1f} {(per_step - baseline) * 1e6:17.1f} "
            f"{median * 1e6:15.1f}"
        )
    flujo = best(samples["flujo, spans + SQLite store"]) / STEPS - baseline
    print(
        f"\nbudget: ≤ 10 µs/step overhead with spans and store: {flujo * 1e6:.1f} µs "
        f"({'met' if flujo * 1e6 <= 10 else 'NOT met'})"
    )
    if app is not None:
        lang = best(samples["langgraph (no tracing, no store)"]) / STEPS - baseline
        print(f"flujo (spans + store) / langgraph (neither): {flujo / lang:.2f}x")

    # flat as pipelines grow: CPU time of both threads (the store writes on a worker
    # thread; wall times on a shared machine follow its load), best of several runs, less
    # plain asyncio's. A run also has costs that do not grow with its steps (its rows in
    # the store, two transactions, the hand-over to the writer thread): they are measured
    # apart, as the CPU time of a 1-step run less one step, and shown beside the per-step
    # figures, so that small pipelines are not judged on them nor large ones flattered.
    print("\nflujo, spans + store, by pipeline size (CPU µs; overhead over plain asyncio):")
    print(
        f"{'steps':>7} {'CPU µs/step':>12} {'less the run cost':>18} {'wall best µs/step':>18}"
        f" {'runs':>5}"
    )
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "grow.db")
        cpu_per_run: dict[int, float] = {}
        rows = []
        for size in (1, *SIZES):
            runner = Runner(chain_spec(size), models=InstantModels(), store=store)
            await flujo_runs(runner)
            repeats = max(3, min(REPEATS if size > 1 else 200, 20_000 // size))
            walls, cpus, plains = [], [], []
            for _ in range(repeats):
                gc.collect()
                cpu = time.process_time()
                walls.append(await flujo_runs(runner))
                cpus.append(time.process_time() - cpu)
                plains.append(await plain_asyncio(size))
            plain = best(plains)
            cpu_per_run[size] = best(cpus) - plain
            rows.append((size, (best(walls) - plain) / size, repeats))
        store.close()
    per_step = (cpu_per_run[SIZES[1]] - cpu_per_run[SIZES[0]]) / (SIZES[1] - SIZES[0])
    run_cost = max(0.0, cpu_per_run[1] - per_step)
    for size, wall, repeats in rows:
        if size == 1:
            continue
        cpu = cpu_per_run[size] / size
        steps_only = (cpu_per_run[size] - run_cost) / size
        print(
            f"{size:>7,} {cpu * 1e6:12.1f} {steps_only * 1e6:18.1f} {wall * 1e6:18.1f} {repeats:>5}"
        )
    print(
        f"cost of a run apart from its steps: {run_cost * 1e6:.0f} µs CPU (a 1-step run less"
        f" one step at the {SIZES[0]}..{SIZES[1]:,}-step marginal of {per_step * 1e6:.1f} µs)"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average (1, 5, 15 min) at the end: {load}")


if __name__ == "__main__":
    asyncio.run(measure())
