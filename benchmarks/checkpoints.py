"""What checkpoints cost a run: the same chain with a SQLite store, with and without them.

Run: .venv/bin/python benchmarks/checkpoints.py [STEPS]   (default 1,000 steps)

Both runners share one store and one process; they alternate, and the best of several
runs is kept, as wall time and CPU time (the CPU time of every thread: checkpoints are
written on a thread of their own). The agent answers instantly, so the figures are the
engine's own cost per step; a real model call takes 10^4-10^6 times longer. Runs of
`flujo run` keep checkpoints; from Python they are asked for (`checkpoints=True`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from engine_overhead import InstantModels, chain_spec, flujo_runs

from flujo.engine.runner import Runner
from flujo.engine.store import RunStore

REPEATS = 7


async def measure(steps: int) -> None:
    spec = chain_spec(steps)
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "bench.db")
        contenders = {
            "store + checkpoints": Runner(
                spec, models=InstantModels(), store=store, checkpoints=True
            ),
            "store, no checkpoints": Runner(
                spec, models=InstantModels(), store=store, checkpoints=False
            ),
        }
        walls: dict[str, list[float]] = {name: [] for name in contenders}
        cpus: dict[str, list[float]] = {name: [] for name in contenders}
        for runner in contenders.values():  # warm up
            await flujo_runs(runner)
        for _ in range(REPEATS):
            for name, runner in contenders.items():
                cpu = time.process_time()
                walls[name].append(await flujo_runs(runner))
                cpus[name].append(time.process_time() - cpu)
        store.close()
    print(f"{steps:,}-step chain, instant agent, SQLite store; best of {REPEATS} runs each")
    print(f"{'contender':<38} {'wall µs/step':>13} {'CPU µs/step':>12}")
    for name in contenders:
        wall, cpu = min(walls[name]) / steps * 1e6, min(cpus[name]) / steps * 1e6
        print(f"{name:<38} {wall:13.1f} {cpu:12.1f}")
    with_, without = contenders
    print(
        f"ratio with/without: wall {min(walls[with_]) / min(walls[without]):.2f}, "
        f"CPU {min(cpus[with_]) / min(cpus[without]):.2f}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the end: {load}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="?", type=int, default=1_000)
    asyncio.run(measure(parser.parse_args().steps))
