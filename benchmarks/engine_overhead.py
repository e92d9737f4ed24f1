"""Engine overhead per step: Flujo (spans + SQLite store on / off) vs plain asyncio vs
LangGraph, on the same 200-step chain whose agent answers instantly (in-process).

Run: .venv/bin/python benchmarks/engine_overhead.py [--rounds N]   (LangGraph comes from
the `bench` dependency group: .tools/bin/uv sync --group bench). Each contender runs in a
process of its own (one contender's garbage, caches and writer thread would slow the
next), N times interleaved, with plain asyncio measured beside it in that same process.
Prints wall and CPU µs per step (CPU of all threads: a long run's spans are written on a
worker thread) and the overhead over plain asyncio, then the overhead with spans and the
store at 50, 1,000 and 10,000 steps, with and without the cost every run has apart from its steps
(measured on a 1-step run), and the load average."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
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


CONTENDERS = {
    "flujo, spans + SQLite store": {"store": True, "trace": True},
    "flujo, spans, no store": {"store": False, "trace": True},
    "flujo, no spans, no store": {"store": False, "trace": False},
    "langgraph (no tracing, no store)": None,
}
STORE = "flujo, spans + SQLite store"


async def contender(name: str) -> dict[str, Any]:
    """One contender, REPEATS runs of the STEPS-step chain, each followed by plain asyncio
    in this same process: best and median wall, best CPU (both threads), per step."""
    settings = CONTENDERS[name]
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "bench.db") if settings and settings["store"] else None
        if settings is None:
            app = langgraph_app(STEPS)
            if app is None:
                return {}

            async def once() -> None:
                await app.ainvoke({"value": "x"}, {"recursion_limit": STEPS + 10})
        else:
            runner = Runner(
                chain_spec(STEPS), models=InstantModels(), store=store, trace=settings["trace"]
            )

            async def once() -> None:
                await flujo_runs(runner)

        for _ in range(3):  # warm up
            await once()
        gc.collect()
        walls, cpus, plain_walls, plain_cpus = [], [], [], []
        for _ in range(REPEATS):
            cpu, started = time.process_time(), time.perf_counter()
            await once()
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            cpu, started = time.process_time(), time.perf_counter()
            await plain_asyncio(STEPS)
            plain_walls.append(time.perf_counter() - started)
            plain_cpus.append(time.process_time() - cpu)
        if store is not None:
            store.close()
    return {
        "wall": best(walls) / STEPS,
        "median": statistics.median(walls) / STEPS,
        "cpu": best(cpus) / STEPS,
        "plain_wall": best(plain_walls) / STEPS,
        "plain_cpu": best(plain_cpus) / STEPS,
    }


async def by_size() -> dict[str, Any]:
    """Spans + store at each size of SIZES (and 1 step) in this process: CPU time of both
    threads (the store writes on a worker thread) and wall time, best of several runs,
    each less plain asyncio's of the same size run just after it."""
    cpu_per_run: dict[int, float] = {}
    walls: dict[int, float] = {}
    repeats_of: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "grow.db")
        for size in (1, *SIZES):
            runner = Runner(chain_spec(size), models=InstantModels(), store=store)
            await flujo_runs(runner)
            repeats = max(3, min(REPEATS if size > 1 else 200, 20_000 // size))
            wall, cpus, plains, plain_cpus = [], [], [], []
            for _ in range(repeats):
                gc.collect()
                cpu = time.process_time()
                wall.append(await flujo_runs(runner))
                cpus.append(time.process_time() - cpu)
                cpu = time.process_time()
                plains.append(await plain_asyncio(size))
                plain_cpus.append(time.process_time() - cpu)
            cpu_per_run[size] = best(cpus) - best(plain_cpus)
            walls[size] = best(wall) - best(plains)
            repeats_of[size] = repeats
        store.close()
    return {"cpu": cpu_per_run, "wall": walls, "repeats": repeats_of}


def in_own_process(*args: str) -> Any:
    """Run this script with `args` in a new process (so one contender's garbage, caches
    and threads do not slow the next one's) and read the JSON it prints."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def measure(rounds: int) -> None:
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    for _ in range(rounds):  # interleaved: each round runs every contender once
        for name in CONTENDERS:
            found = in_own_process("--contender", name)
            if found:
                samples[name].append(found)
    samples = {name: found for name, found in samples.items() if found}

    def low(name: str, key: str) -> float:
        return min(s[key] for s in samples[name])

    def over(name: str, key: str) -> float:
        """The overhead per step over plain asyncio of the same process (best of rounds)."""
        return min(s[key] - s[f"plain_{key}"] for s in samples[name])

    print(
        f"{STEPS}-step chain, instant in-process agent; each contender in a process of its"
        f" own with plain asyncio beside it, best of {REPEATS} runs x {rounds} rounds"
    )
    print(
        f"{'contender':<34} {'wall µs/step':>12} {'overhead':>9} {'median':>8}"
        f" {'CPU µs/step':>12} {'overhead':>9}"
    )
    for name in samples:
        print(
            f"{name:<34} {low(name, 'wall') * 1e6:12.1f} {over(name, 'wall') * 1e6:9.1f}"
            f" {low(name, 'median') * 1e6:8.1f} {low(name, 'cpu') * 1e6:12.1f}"
            f" {over(name, 'cpu') * 1e6:9.1f}"
        )
    plain = min(s["plain_wall"] for found in samples.values() for s in found)
    print(f"{'plain asyncio':<34} {plain * 1e6:12.2f}")
    wall, cpu = over(STORE, "wall") * 1e6, over(STORE, "cpu") * 1e6
    print(
        f"\nbudget: ≤ 10 µs/step overhead with spans and store: {wall:.1f} µs wall, {cpu:.1f}"
        f" µs CPU ({'met' if max(wall, cpu) <= 10 else 'NOT met'})"
    )
    lang = "langgraph (no tracing, no store)"
    if lang in samples:
        ratio = wall / (over(lang, "wall") * 1e6)
        print(f"flujo (spans + store) / langgraph (neither): {ratio:.2f}x")

    # flat as pipelines grow. A run also has costs that do not grow with its steps (its
    # rows in the store, two transactions, the hand-over to the writer thread): they are
    # measured apart, as the CPU time of a 1-step run less one step, and shown beside the
    # per-step figures, so that small pipelines are not judged on them nor large ones
    # flattered. Best of the rounds, each in a process of its own.
    print("\nflujo, spans + store, by pipeline size (µs; overhead over plain asyncio):")
    print(
        f"{'steps':>7} {'CPU µs/step':>12} {'less the run cost':>18} {'wall best µs/step':>18}"
        f" {'runs':>5}"
    )
    sizes = [in_own_process("--sizes") for _ in range(rounds)]
    cpu_per_run = {size: min(s["cpu"][str(size)] for s in sizes) for size in (1, *SIZES)}
    wall_per_run = {size: min(s["wall"][str(size)] for s in sizes) for size in SIZES}
    per_step = (cpu_per_run[SIZES[1]] - cpu_per_run[SIZES[0]]) / (SIZES[1] - SIZES[0])
    run_cost = max(0.0, cpu_per_run[1] - per_step)
    for size in SIZES:
        runs = sizes[0]["repeats"][str(size)] * rounds
        steps_only = (cpu_per_run[size] - run_cost) / size
        print(
            f"{size:>7,} {cpu_per_run[size] / size * 1e6:12.1f} {steps_only * 1e6:18.1f}"
            f" {wall_per_run[size] / size * 1e6:18.1f} {runs:>5}"
        )
    print(
        f"cost of a run apart from its steps: {run_cost * 1e6:.0f} µs CPU (a 1-step run less"
        f" one step at the {SIZES[0]}..{SIZES[1]:,}-step marginal of {per_step * 1e6:.1f} µs)"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average (1, 5, 15 min) at the end: {load}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--contender"]:
        print(json.dumps(asyncio.run(contender(sys.argv[2]))))
    elif sys.argv[1:2] == ["--sizes"]:
        print(json.dumps(asyncio.run(by_size())))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rounds", type=int, default=3, help="processes per contender")
        measure(parser.parse_args().rounds)
