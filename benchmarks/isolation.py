"""The cost of checking strangers' specs in a confined child process, per commit.

The same small commit (one spec with one embedded test and three policies, as in the
bot's tests) is evaluated in this process (`InProcess`, what `flujo bot local` does) and
isolated (`Isolated`, what the App does: a child forked from the warm fork server per
spec, plus one for the config), alternating, after a warm-up. Prints the median of each,
the difference (aim: at most 50 ms per commit) and the checks per minute one worker
reaches with isolation on.

Run: .venv/bin/python benchmarks/isolation.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flujo.bot.evaluate import InProcess
from flujo.bot.isolation import Isolated
from flujo.spec.registry import StepRegistry
from tests.support.bot import GOOD

SPEC = GOOD  # the bot tests' spec: one embedded test, three policies


async def once(evaluator: InProcess | Isolated, root: Path, files: list[str]) -> float:
    started = time.perf_counter()
    plan = await evaluator.plan(root, [], files)
    await evaluator.references(root, plan.wanted)
    report = await evaluator.evaluate(root, files, {})
    elapsed = time.perf_counter() - started
    assert report.specs and report.specs[0].valid, report
    return elapsed


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "flujo").mkdir()
        (root / "flujo" / "greeter.yml").write_text(SPEC, encoding="utf-8")
        files = ["flujo/greeter.yml"]
        local, isolated = InProcess(StepRegistry()), Isolated()
        for evaluator in (local, isolated):  # warm-up: imports, the fork server
            await once(evaluator, root, files)
        times: dict[str, list[float]] = {"in process": [], "isolated": []}
        for _ in range(rounds):
            times["in process"].append(await once(local, root, files))
            times["isolated"].append(await once(isolated, root, files))
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {rounds} rounds")
    for name, value in medians.items():
        print(f"{name:>11}: {value:7.1f} ms per commit (median)")
    extra = medians["isolated"] - medians["in process"]
    print(f"  isolation: +{extra:.1f} ms per commit (aim: at most 50 ms)")
    print(f" throughput: {60_000 / medians['isolated']:.0f} commits per minute per worker")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
