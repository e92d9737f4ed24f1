"""`flujo suggest` over 10,000 recorded runs, against reading those runs' rows.

Run from the repository root:

    .venv/bin/python benchmarks/suggest.py

Writes 10,000 synthetic runs (two model steps each, with retries and timeouts mixed in)
of tests/learn_seeds/timeouts.yaml into a temporary run store, then times, best of 3:

* baseline: one SQL read of every span row of those runs (what any analysis must pay);
* suggest: the whole `suggest()` (telemetry view, opportunities, Prompt Guard, patching,
  validation and the spec's embedded tests) with the offline agent.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flujo.engine.store import RunStore  # noqa: E402
from flujo.learn.suggest import suggest  # noqa: E402
from flujo.spec.model import Pipeline  # noqa: E402
from tests.support.learn import (  # noqa: E402
    PLANTED,
    SEEDS,
    Telemetry,
    record,
)

RUNS = 10_000


def best(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    spec = SEEDS / "timeouts.yaml"
    pipeline = Pipeline.from_yaml(spec)
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "runs.db")
        profiles = PLANTED["timeouts"][0].profiles
        started = time.perf_counter()
        record(store, pipeline, Telemetry(runs=RUNS, every_s=60, profiles=profiles))
        print(f"recorded {RUNS} runs in {time.perf_counter() - started:.1f}s")
        spans = store.query("SELECT count(*) AS n FROM spans", ())[0]["n"]

        def read_rows() -> None:
            store.query("SELECT * FROM spans", ())

        def run_suggest() -> None:
            report = asyncio.run(suggest(spec, store))
            assert len(report.suggestions) == 2, report.to_dict()

        baseline = best(read_rows)
        total = best(run_suggest)
        print(f"{spans} spans")
        print(f"baseline (read every span row): {baseline * 1000:8.1f} ms")
        print(f"flujo suggest (end to end):     {total * 1000:8.1f} ms  ({total / baseline:.2f}x)")
        store.close()


if __name__ == "__main__":
    main()
