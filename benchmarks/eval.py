"""`flujo eval` over 1,000 captured examples with an instant provider.

Run from the repository root:

    .venv/bin/python benchmarks/eval.py

Records 1,000 runs of a one-step spec with capture on (rate 1) into a temporary run store,
answered by an in-process model client that returns at once, then times, best of 3:

* plain: running the candidate (the same spec on a cheaper model) on those 1,000 inputs;
* eval: `flujo.learn.evaluate.evaluate` on the same inputs: reading the captured examples,
  running the candidate, comparing its outputs with the captured baseline's.

The overhead per example is (eval - plain) / 1,000: what `flujo eval` adds to the runs.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flujo.engine.runner import Completion, Runner  # noqa: E402
from flujo.engine.session import SessionOptions  # noqa: E402
from flujo.engine.store import RunStore  # noqa: E402
from flujo.learn.evaluate import evaluate  # noqa: E402
from flujo.spec.model import Pipeline  # noqa: E402

EXAMPLES = 1_000
SPEC = """\
version: "1"
name: bench
agents:
  classifier:
    model: openai:gpt-4o
    output_schema:
      type: object
      required: [label]
      properties:
        label: {type: string}
steps:
  - name: classify
    uses: agents.classifier
    input: "{{ input.ticket }}"
telemetry:
  capture: {rate: 1.0}
"""


class Instant:
    """A model client that answers at once: the label depends on the input's number."""

    async def complete(self, agent: Any, step: Any, value: Any, feedback: Any) -> Completion:
        number = int(str(value).split()[-1])
        label = "other" if agent.model.endswith("mini") and number % 10 == 0 else "billing"
        return Completion({"label": label}, agent.model.split(":")[1], 20, 5, 0.0001)


def best(fn: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "bench.yaml"
        spec.write_text(SPEC, encoding="utf-8")
        baseline = Pipeline.from_yaml(spec)
        candidate = Pipeline.from_yaml(SPEC.replace("gpt-4o\n", "gpt-4o-mini\n"))
        store = RunStore(Path(folder) / "flujo.db")
        inputs = [{"ticket": f"ticket {i}"} for i in range(EXAMPLES)]

        async def record() -> None:
            runner = Runner(baseline, models=Instant(), store=store, origin="cli")
            for value in inputs:
                await runner.run(value)

        asyncio.run(record())

        async def plain_runs() -> None:
            runner = Runner(candidate, models=Instant(), origin="eval")
            for value in inputs:
                await runner.run(value)

        report: dict[str, Any] = {}

        async def evaluation() -> None:
            result = await evaluate(
                baseline,
                candidate,
                store,
                SessionOptions(),
                spec_path=str(spec),
                models=Instant(),
            )
            report.update(result.to_dict())

        plain = best(lambda: asyncio.run(plain_runs()))
        full = best(lambda: asyncio.run(evaluation()))
        store.close()
    assert report["examples"] == EXAMPLES, report["examples"]
    print(f"examples: {EXAMPLES}; agreement {report['agreement']:.1%} {report['interval_95']}")
    print(f"plain candidate runs: {plain:.3f}s ({plain / EXAMPLES * 1000:.3f} ms/example)")
    print(f"flujo eval:           {full:.3f}s ({full / EXAMPLES * 1000:.3f} ms/example)")
    print(f"overhead per example: {(full - plain) / EXAMPLES * 1000:.3f} ms")


if __name__ == "__main__":
    main()
