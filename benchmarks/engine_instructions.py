"""Engine overhead in instructions (valgrind's callgrind), not time: steady on a loaded
machine, where wall and even CPU times of a run move with other people's work.

Run: .venv/bin/python benchmarks/engine_instructions.py   (needs valgrind; takes minutes)

Each figure is a new process under callgrind with instrumentation off while Python starts
and imports; after two warm-up runs it is switched on (callgrind_control), N runs of an
S-step chain execute (the agent answers instantly, in process, as in engine_overhead.py),
and it is switched off. The same process with N = 0 is subtracted, so what remains is the
runs alone. Printed: instructions per step for flujo with spans and the SQLite store, and
as a ratio to flujo without spans or store measured in the same run; by pipeline size; and
a run's cost apart from its steps (a 1-step run less one step).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
# (steps, runs) per measurement: about the same number of steps each
PLAN = ((1, 20), (50, 10), (200, 3), (1_000, 1), (10_000, 1))


def child(steps: int, runs: int, mode: str) -> None:
    """The measured process: warm up, then `runs` runs with instrumentation on."""
    sys.path.insert(0, str(Path(__file__).parent))
    from engine_overhead import InstantModels, chain_spec

    from flujo.engine.runner import Runner
    from flujo.engine.store import RunStore

    def instrument(state: str) -> None:
        subprocess.run(
            ["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True
        )

    async def main() -> None:
        with tempfile.TemporaryDirectory() as folder:
            store = RunStore(Path(folder) / "b.db") if mode == "store" else None
            trace = mode != "bare"
            runner = Runner(chain_spec(steps), models=InstantModels(), store=store, trace=trace)
            for _ in range(2):
                await runner.run("x")
            gc.collect()
            await asyncio.to_thread(instrument, "on")
            for _ in range(runs):
                await runner.run("x")
            await asyncio.to_thread(instrument, "off")
            if store is not None:
                store.close()

    asyncio.run(main())


def count(steps: int, runs: int, mode: str) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--callgrind-out-file=/dev/null",
            str(PYTHON),
            __file__,
            "--child",
            str(steps),
            str(runs),
            mode,
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONHASHSEED": "0"},
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found, done.stderr[-2000:]
    return int(found.group(1))


def per_step(steps: int, runs: int, mode: str) -> float:
    return (count(steps, runs, mode) - count(steps, 0, mode)) / (steps * runs)


def measure() -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed: nothing measured")
        return
    bare = per_step(200, 3, "bare")
    spans = per_step(200, 3, "spans")
    print("instructions per step, 200-step chain (callgrind; instant in-process agent)")
    print(f"  flujo, no spans, no store (baseline): {bare:10,.0f}")
    print(f"  flujo, spans, no store:               {spans:10,.0f}  {spans / bare:.2f}x")
    by_size = {size: per_step(size, runs, "store") for size, runs in PLAN}
    print(
        f"  flujo, spans + SQLite store:          {by_size[200]:10,.0f}  {by_size[200] / bare:.2f}x"
    )
    marginal = (by_size[1_000] * 1_000 - by_size[50] * 50) / 950
    run_cost = max(0.0, by_size[1] - marginal)
    print("\nflujo, spans + SQLite store, by pipeline size (instructions per step)")
    print(f"{'steps':>7} {'all':>10} {'less the run cost':>18} {'vs baseline':>12}")
    for size, value in by_size.items():
        if size == 1:
            continue
        steps_only = value - run_cost / size
        print(f"{size:>7,} {value:10,.0f} {steps_only:18,.0f} {steps_only / bare:11.2f}x")
    print(
        f"a run's cost apart from its steps: {run_cost:,.0f} instructions (a 1-step run less"
        f" one step at the 50..1,000-step marginal of {marginal:,.0f})"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        measure()
