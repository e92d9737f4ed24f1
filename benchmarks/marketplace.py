"""`MarketplaceQuery` on a registry of 1,000 skills over 50 types (the aim: < 50 ms).

Run from the repository root:

    .venv/bin/python benchmarks/marketplace.py [--queries 200]

Generates a random registry (fixed seed): 1,000 typed skills between 50 types, with costs,
p95 latencies and success rates, then answers `--queries` random queries (source and
target types, both objectives, with and without a success floor and a latency ceiling),
and prints the median and worst time per query. The baseline is a breadth-first search
for *any* chain between the two types on the same graph, in the same run: the price of
the constraints and of exactness is the ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flujo.spec.marketplace import Market, MarketplaceQuery, Offer  # noqa: E402

SKILLS, TYPES, AIM_MS = 1_000, 50, 50.0


def registry(seed: int = 7) -> list[Offer]:
    rng = random.Random(seed)
    types = [f"T{i}" for i in range(TYPES)]
    return [
        Offer(
            f"skill{i}",
            rng.choice(types),
            rng.choice(types),
            rng.uniform(0.0, 0.02),
            rng.uniform(0.05, 5.0),
            rng.uniform(0.7, 1.0),
        )
        for i in range(SKILLS)
    ]


def any_chain(offers: list[Offer], source: str, target: str) -> bool:
    seen, frontier = {source}, [source]
    out: dict[str, list[str]] = {}
    for o in offers:
        out.setdefault(o.source, []).append(o.target)
    while frontier:
        nxt = []
        for here in frontier:
            for there in out.get(here, ()):
                if there == target:
                    return True
                if there not in seen:
                    seen.add(there)
                    nxt.append(there)
        frontier = nxt
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    offers = registry()
    rng = random.Random(11)
    queries = [
        MarketplaceQuery(
            f"T{rng.randrange(TYPES)}",
            f"T{rng.randrange(TYPES)}",
            rng.choice(["cost", "latency"]),  # type: ignore[arg-type]
            rng.choice([0.0, 0.6, 0.8, 0.9]),
            rng.choice([None, 3.0, 6.0]),
        )
        for _ in range(args.queries)
    ]
    start = time.perf_counter()
    market = Market(offers)  # once per registry: edges by type, weights
    prepare_ms = (time.perf_counter() - start) * 1000
    times, base, feasible = [], [], 0
    for q in queries:
        start = time.perf_counter()
        answer = q.run(market)
        times.append((time.perf_counter() - start) * 1000)
        feasible += answer.feasible
        start = time.perf_counter()
        any_chain(offers, q.source, q.target)
        base.append((time.perf_counter() - start) * 1000)
    median, worst = statistics.median(times), max(times)
    print(
        f"registry: {SKILLS:,} skills, {TYPES} types, prepared in {prepare_ms:.2f} ms; "
        f"{len(queries)} queries, {feasible} feasible"
    )
    print(
        f"MarketplaceQuery: median {median:.2f} ms, p95 "
        f"{statistics.quantiles(times, n=20)[-1]:.2f} ms, worst {worst:.2f} ms per query"
    )
    print(
        f"baseline (any chain, BFS): median {statistics.median(base):.3f} ms "
        f"({median / max(statistics.median(base), 1e-9):.0f}x)"
    )
    print(f"aim < {AIM_MS:.0f} ms per query: {'met' if worst < AIM_MS else 'NOT met'} (worst case)")


if __name__ == "__main__":
    main()
