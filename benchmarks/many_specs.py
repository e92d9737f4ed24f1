"""Many specs' tests: one `flujo test` process (`--jobs 1`, then `--jobs 4`) against one
`flujo test` process per spec.

Run: .venv/bin/python benchmarks/many_specs.py [--rounds 3] [--specs 20]

The specs are copies of the examples (examples/*.yaml, with their cassettes, so each
test replays its recorded model calls), 20 by default, in a temporary folder. Baseline in
the same run: `python -c pass` (the interpreter's start-up, paid once by one process and
once per spec by the loop). Rounds are interleaved so that background load hits all
alike; medians are printed with the machine's load, and every contender must report the
same number of passed tests.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
FLUJO = ROOT / ".venv" / "bin" / "flujo"
EXAMPLES = ROOT / "examples"


def copies(folder: Path, count: int) -> list[Path]:
    """`count` specs in `folder`, copied round-robin from the examples with their cassettes."""
    originals = sorted(EXAMPLES.glob("*.yaml"))
    specs = []
    for n in range(count):
        original = originals[n % len(originals)]
        spec = folder / f"{original.stem}_{n:02d}.yaml"
        shutil.copy(original, spec)
        shutil.copytree(EXAMPLES / "cassettes" / original.stem, folder / "cassettes" / spec.stem)
        specs.append(spec)
    return specs


def timed(argvs: list[list[str]], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds for the commands one after the other, and the tests they passed."""
    passed = 0
    started = time.perf_counter()
    for argv in argvs:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0 and argv[0] != str(PYTHON):
            raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        found = re.search(r"^(\d+) passed, 0 failed$", done.stdout, re.MULTILINE)
        passed += int(found.group(1)) if found else 0
    return time.perf_counter() - started, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--specs", type=int, default=20)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    temp = Path(tempfile.mkdtemp(prefix="flujo-specs-"))
    specs = copies(temp, args.specs)
    test = [str(FLUJO), "test"]
    contenders = {
        "python -c pass (once)": [[str(PYTHON), "-c", "pass"]],
        "flujo test DIR --jobs 1 (one process)": [[*test, str(temp), "--jobs", "1"]],
        "flujo test DIR --jobs 4 (one process)": [[*test, str(temp), "--jobs", "4"]],
        f"flujo test SPEC, {len(specs)} processes": [[*test, str(spec)] for spec in specs],
    }
    for argvs in contenders.values():  # warm-up (and .pyc files)
        timed(argvs[:1], env)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    passed: dict[str, int] = {}
    loads = []
    for _ in range(args.rounds):
        for name, argvs in contenders.items():
            seconds, passed[name] = timed(argvs, env)
            samples[name].append(seconds)
        loads.append(os.getloadavg()[0])
    shutil.rmtree(temp, ignore_errors=True)
    tested = {count for name, count in passed.items() if name.startswith("flujo")}
    if len(tested) != 1:
        raise SystemExit(f"the contenders passed different numbers of tests: {passed}")
    print(f"{len(specs)} specs ({tested.pop()} tests, replayed); medians of {args.rounds} rounds")
    for name, values in samples.items():
        print(f"  {name:<44} {statistics.median(values):7.2f} s")
    one, four, loop = (statistics.median(samples[name]) for name in list(contenders)[1:])
    print(f"--jobs 4 vs --jobs 1: {one / four:.2f}x; one process (--jobs 4) vs a process per")
    print(f"spec: {loop / four:.1f}x faster")
    print(f"load average (1 min) during the rounds: {', '.join(f'{x:.1f}' for x in loads)}")
    print(f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
