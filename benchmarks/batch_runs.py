"""Many inputs: one `flujo run --inputs` process against one `flujo run` process per input.

Run: .venv/bin/python benchmarks/batch_runs.py [--rounds 3]

Both run examples/support_triage.yaml on the 20 inputs of
examples/inputs/support_triage.jsonl against the built-in fake model, recording to a
temporary store. Baseline in the same run: `python -c pass` (the interpreter's start-up,
paid once by the batch and once per input by the loop). Rounds are interleaved so that
background load hits both alike; medians are printed with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
FLUJO = ROOT / ".venv" / "bin" / "flujo"
SPEC = "examples/support_triage.yaml"
INPUTS = "examples/inputs/support_triage.jsonl"


def timed(argvs: list[list[str]], env: dict[str, str]) -> float:
    started = time.perf_counter()
    for argv in argvs:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    temp = Path(tempfile.mkdtemp(prefix="flujo-batch-"))
    store = str(temp / "runs.db")
    lines = [line for line in (ROOT / INPUTS).read_text().splitlines() if line.strip()]
    contenders = {
        "python -c pass (once)": [[str(PYTHON), "-c", "pass"]],
        f"flujo run --inputs ({len(lines)} inputs, one process)": [
            [str(FLUJO), "run", SPEC, "--inputs", INPUTS, "--fake", "--store", store]
        ],
        f"flujo run --input, {len(lines)} processes": [
            [str(FLUJO), "run", SPEC, "--fake", "--store", store, "--input", line] for line in lines
        ],
    }
    timed(next(iter(contenders.values())), env)  # warm-up
    timed(list(contenders.values())[1], env)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, argvs in contenders.items():
            samples[name].append(timed(argvs, env))
    shutil.rmtree(temp, ignore_errors=True)
    print(f"{len(lines)} inputs of {SPEC} on the fake model; medians of {args.rounds} rounds")
    batch, loop = list(contenders)[1:]
    for name, values in samples.items():
        print(f"  {name:<48} {statistics.median(values):7.2f} s")
    ratio = statistics.median(samples[loop]) / statistics.median(samples[batch])
    print(f"one process is {ratio:.1f}x faster than a process per input")
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
