"""Wall time of `flujo validate` and `flujo run --fake` from a cold process, against
Python's own start-up and the imports of their dependencies.

Run from anywhere:

    .venv/bin/python benchmarks/cold_start.py [--runs 10]

Each measurement is a new process (`subprocess.run`), timed from spawn to exit:

* `flujo validate examples/support_triage.yaml` through the console script .venv/bin/flujo,
  answered from the validation cache (what a pre-commit hook sees from its second run on an
  unchanged file; the cache is a temporary folder, filled by the warm-up rounds), and the
  same with `FLUJO_NO_CACHE=1` (the file checked in full)
* `flujo run examples/support_triage.yaml --fake --input '{"ticket": …}'` (a small spec
  on the built-in fake model, answered in process; runs recorded in a temporary store)
* baseline: `python -c pass` in the same venv (the interpreter's start-up floor)
* baseline: `python -c "import pydantic, ruamel.yaml, click"` (the floor for any CLI built
  on the dependencies the validate path needs anyway)
* baseline: `python -c "import openai, aiohttp"` (what `flujo run --fake` imported before
  the fake answered in process: the client and the fake server's framework)

This machine sets PYTHONDONTWRITEBYTECODE=1, which would make every run recompile the
project's modules from source. So the project's packages are byte-compiled first
(`python -m compileall -q`), the children run with PYTHONDONTWRITEBYTECODE removed from
their environment, and two warm-up rounds are discarded (they also write any .pyc still
missing). "Cold" therefore means a new interpreter with .pyc files and the OS file cache
warm: what a user sees on the second and later runs. Commands are interleaved round by
round so that background load hits them alike.

Finally `python -X importtime` runs `flujo run --fake` once and the 10 imports with the
largest cumulative time are printed, so a new heavy import shows up at once.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
FLUJO = ROOT / ".venv" / "bin" / "flujo"
SPEC = "examples/support_triage.yaml"
PACKAGES = ("flujo", "spec", "engine", "learn", "bot", "templates")  # project sources
WARMUP_ROUNDS = 2
TEMP = Path(tempfile.mkdtemp(prefix="flujo-cold-start-"))
TICKET = '{"ticket": "The app crashes with error: E_SYNC_42 on v2.3.1."}'

# label -> (argv, environment changes)
COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "python -c pass": ([str(PYTHON), "-c", "pass"], {}),
    "python -c 'import pydantic, ruamel.yaml, click'": (
        [str(PYTHON), "-c", "import pydantic, ruamel.yaml, click"],
        {},
    ),
    "python -c 'import openai, aiohttp'": ([str(PYTHON), "-c", "import openai, aiohttp"], {}),
    f"flujo validate {SPEC} (cache hit)": (
        [str(FLUJO), "validate", SPEC],
        {"FLUJO_CACHE_DIR": str(TEMP / "cache")},
    ),
    f"flujo validate {SPEC} (no cache)": ([str(FLUJO), "validate", SPEC], {"FLUJO_NO_CACHE": "1"}),
    f"flujo run {SPEC} --fake": (
        [str(FLUJO), "run", SPEC, "--fake", "--input", TICKET, "--store", str(TEMP / "runs.db")],
        {},
    ),
}
VALIDATE = f"flujo validate {SPEC} (cache hit)"
RUN = f"flujo run {SPEC} --fake"
BUDGETS_MS = {VALIDATE: 150.0, RUN: 1000.0}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


def compile_sources(env: dict[str, str]) -> list[str]:
    folders = [name for name in PACKAGES if (ROOT / name).is_dir()]
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", *folders], cwd=ROOT, env=env, check=True)
    return folders


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds from spawn to exit of one process, and the CPU seconds (user + system)
    it used; fails on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return elapsed, cpu


def import_times(env: dict[str, str]) -> tuple[list[tuple[int, int, int, str]], float]:
    """(cumulative µs, self µs, depth, module) of every import of one `flujo run --fake`, and
    that run's wall time."""
    argv = [str(PYTHON), "-X", "importtime", *COMMANDS[RUN][0]]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((int(cumulative), int(own), depth, name.strip()))
    return rows, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    args = parser.parse_args()
    for path in (PYTHON, FLUJO, ROOT / SPEC):
        if not path.exists():
            raise SystemExit(f"missing {path}; run from a checkout with its .venv")

    env = child_env()
    folders = compile_sources(env)
    version = subprocess.run(
        [str(PYTHON), "-c", "import sys; print(sys.version.split()[0])"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"Python {version} at {PYTHON}")
    print(
        f"Byte-compiled {', '.join(folders)} with `python -m compileall -q`; children run "
        "with PYTHONDONTWRITEBYTECODE unset (it is set on this machine: "
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')!r}); "
        f"{WARMUP_ROUNDS} warm-up rounds discarded; {args.runs} timed runs per command, "
        "interleaved.",
        flush=True,
    )

    times: dict[str, list[float]] = {label: [] for label in COMMANDS}
    cpu: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for round_ in range(WARMUP_ROUNDS + args.runs):
        for label, (argv, changes) in COMMANDS.items():
            elapsed, used = run_once(argv, env | changes)
            if round_ >= WARMUP_ROUNDS:
                times[label].append(elapsed * 1000)
                cpu[label].append(used * 1000)

    best = {label: min(values) for label, values in times.items()}
    median = {label: statistics.median(values) for label, values in times.items()}
    python_label, deps_label = list(COMMANDS)[:2]
    print()
    print(
        f"Cold-process wall time (ms; {args.runs} runs each; ratios of medians; CPU med = "
        "median user+system CPU ms of the child, less sensitive to other load)"
    )
    headers = ["command", "best", "median", "worst", "CPU med", "vs python", "vs deps import"]
    rows = [
        [
            label,
            f"{best[label]:.0f}",
            f"{median[label]:.0f}",
            f"{max(times[label]):.0f}",
            f"{statistics.median(cpu[label]):.0f}",
            f"{median[label] / median[python_label]:.1f}x",
            f"{median[label] / median[deps_label]:.2f}x",
        ]
        for label in COMMANDS
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for label, budget in BUDGETS_MS.items():
        over_python = median[label] - median[python_label]
        over_deps = median[label] - median[deps_label]
        print(
            f"{label}: {over_python:.0f} ms over bare Python, {over_deps:+.0f} ms over "
            "importing pydantic + ruamel.yaml + click (medians)"
        )
        met = median[label] <= budget
        print(
            f"  budget: {budget:.0f} ms (median) -> "
            + ("MET" if met else f"NOT MET ({median[label] - budget:+.0f} ms)")
            + f"; best run {best[label]:.0f} ms"
        )
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")

    imports, elapsed = import_times(env)
    top_level = sum(cum for cum, _, depth, _ in imports if depth == 0) / 1000
    print()
    print(
        f"Largest cumulative imports of `{RUN}` (python -X importtime, one run of "
        f"{elapsed * 1000:.0f} ms wall with the tracing overhead; all imports: "
        f"{top_level:.0f} ms, {len(imports)} modules)"
    )
    print(f"{'cumulative ms':>13}  {'self ms':>7}  module (indented by import depth)")
    for cumulative, own, depth, name in sorted(imports, reverse=True)[:10]:
        print(f"{cumulative / 1000:13.1f}  {own / 1000:7.1f}  {'  ' * depth}{name}")
    import shutil

    shutil.rmtree(TEMP, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
