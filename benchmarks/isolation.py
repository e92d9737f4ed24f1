"""The cost of checking strangers' specs in a confined child process, per commit.

The same small commit (one spec with one embedded test and three policies, as in the
bot's tests) is evaluated in this process (`InProcess`, what `flujo bot local` does) and
isolated (`Isolated`, what the App does: a child forked from the warm fork server per
spec, plus one for the config), alternating, after a warm-up. Prints the median of each,
the difference (aim: at most 50 ms per commit) and the checks per minute one worker
reaches with isolation on. Wall times follow the machine's load; the CPU time per commit
(this process, plus the fork server and its children, read from /proc) does not.

A commit without `.github/flujo.yml` needs one child (the spec's); `--config` adds one,
as most repositories have: then a child reads it to plan the fetch and one to check it.

Run: .venv/bin/python benchmarks/isolation.py [--rounds N] [--config]
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


def fork_server_cpu() -> float | None:
    """CPU seconds of the fork server and of its children it has reaped (Linux only)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


CONFIG = ".github/flujo.yml"


async def once(evaluator: InProcess | Isolated, root: Path, files: list[str]) -> float:
    started = time.perf_counter()
    plan = await evaluator.plan(root, [f for f in files if f == CONFIG], files)
    await evaluator.references(root, plan.wanted)
    report = await evaluator.evaluate(root, files, {})
    elapsed = time.perf_counter() - started
    assert report.specs and report.specs[0].valid, report
    return elapsed


async def main(rounds: int, config: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "flujo").mkdir()
        (root / "flujo" / "greeter.yml").write_text(SPEC, encoding="utf-8")
        files = ["flujo/greeter.yml"]
        if config:
            (root / ".github").mkdir()
            (root / CONFIG).write_text('specs: ["flujo/*.yml"]\n', encoding="utf-8")
            files.append(CONFIG)
        local, isolated = InProcess(StepRegistry()), Isolated()
        for evaluator in (local, isolated):  # warm-up: imports, the fork server
            await once(evaluator, root, files)
        times: dict[str, list[float]] = {"in process": [], "isolated": []}
        cpu = {"in process": 0.0, "isolated": 0.0}
        server_before = fork_server_cpu()
        for _ in range(rounds):
            for name, evaluator in (("in process", local), ("isolated", isolated)):
                started = time.process_time()
                times[name].append(await once(evaluator, root, files))
                cpu[name] += time.process_time() - started
        server_after = fork_server_cpu()
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    kind = "with .github/flujo.yml" if config else "without a config"
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {rounds} rounds")
    print(f"     commit: one small spec, {kind}")
    for name, value in medians.items():
        print(f"{name:>11}: {value:7.1f} ms per commit (median)")
    extra = medians["isolated"] - medians["in process"]
    print(f"  isolation: +{extra:.1f} ms per commit (aim: at most 50 ms)")
    print(f" throughput: {60_000 / medians['isolated']:.0f} commits per minute per worker")
    if server_before is None or server_after is None:
        print("        cpu: not measured (no /proc to read the fork server's children from)")
        return
    cpu["isolated"] += server_after - server_before
    for name, seconds in cpu.items():
        print(f"{name:>11}: {seconds / rounds * 1000:7.1f} ms of CPU per commit (mean)")
    extra = (cpu["isolated"] - cpu["in process"]) / rounds * 1000
    print(f"  isolation: +{extra:.1f} ms of CPU per commit (this process, fork server, children)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--config", action="store_true", help="the commit has a config")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.config))
