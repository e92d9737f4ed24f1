"""Plans over typed skills: which chain of skills turns one type into another, cheapest
(or fastest) under a success floor and a latency ceiling.

A skill is an edge from its input type to its output type, with estimates per call: cost,
p95 latency and the probability that it succeeds. Along a plan costs and latencies add
up (the sum of p95s bounds the plan's p95 from above) and successes multiply. The search
is exact: an A* search over Pareto labels (cost, latency, -log success, steps) per type,
so a plan is dropped only when another one is at least as good in every respect (and no
longer), and
branch-and-bound stops once the `limit` best plans are known. Estimates never go down
along a path, so the plans come out in order of the objective.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import le
from typing import Literal

Objective = Literal["cost", "latency"]
MAX_STEPS = 6


@dataclass(frozen=True, slots=True)
class Offer:
    """One skill as the planner sees it: a typed edge with its estimates per call."""

    name: str
    source: str
    target: str
    cost_usd: float
    latency_p95_s: float | None
    """None: not measured (only a query that neither limits nor minimises latency uses it)."""
    success: float | None
    """None: not measured (only a query without a success floor uses it)."""
    badge: str = "no figures"
    """Where the figures come from ("baseline only", "measured on 40 runs")."""
    adapter: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """A chain of skills from the query's source type to its target type."""

    steps: tuple[Offer, ...]

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.steps)

    @property
    def latency_p95_s(self) -> float | None:
        """The sum of the steps' p95s (None when one was not measured)."""
        found = [s.latency_p95_s for s in self.steps]
        return None if None in found else sum(x for x in found if x is not None)

    @property
    def success(self) -> float | None:
        """The product of the steps' success rates (None when one was not measured)."""
        found = [s.success for s in self.steps]
        return None if None in found else math.prod(x for x in found if x is not None)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def to_dict(self) -> dict[str, object]:
        return {
            "skills": self.names,
            "types": [self.steps[0].source, *(s.target for s in self.steps)] if self.steps else [],
            "cost_usd": self.cost_usd,
            "latency_p95_s": self.latency_p95_s,
            "success": self.success,
            "badges": {s.name: s.badge for s in self.steps},
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """Ranked plans, best first; when there is none, why."""

    plans: list[Plan]
    explanation: str | None = None

    @property
    def feasible(self) -> bool:
        return bool(self.plans)


class Market:
    """Offers prepared for many queries: edges by type both ways, weights computed once,
    and the least cost, latency, failure and steps to each target type, cached."""

    def __init__(self, offers: Iterable[Offer]) -> None:
        self.offers = [o for o in offers if o.success is None or o.success > 0.0]
        self.out: dict[str, list[tuple[Offer, _Weights]]] = {}
        self.back: dict[str, list[tuple[str, _Weights]]] = {}
        for o in self.offers:
            success = 1.0 if o.success is None else o.success  # used only when not limited
            weights = (o.cost_usd, o.latency_p95_s or 0.0, -math.log(success), 1.0)
            self.out.setdefault(o.source, []).append((o, weights))
            self.back.setdefault(o.target, []).append((o.source, weights))
        self._to_go: dict[str, list[dict[str, float]]] = {}

    def to_go(self, target: str) -> list[dict[str, float]]:
        found = self._to_go.get(target)
        if found is None:
            found = self._to_go[target] = [_backward(self.back, target, k) for k in range(4)]
        return found

    def only(self, keep: Callable[[Offer], bool]) -> Market:
        return Market(o for o in self.offers if keep(o))


@dataclass(frozen=True)
class MarketplaceQuery:
    """What a caller wants: `source` → `target` minimising `minimize`, under constraints.

    `allow` limits the skills to those names (None: every offer); `max_steps` bounds the
    length of a plan; `limit` is how many plans to return."""

    source: str
    target: str
    minimize: Objective = "cost"
    min_success: float = 0.0
    max_latency_p95: float | None = None
    allow: Sequence[str] | None = None
    max_steps: int = MAX_STEPS
    max_cost_usd: float | None = None
    limit: int = 3
    _allowed: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.minimize not in ("cost", "latency"):
            raise ValueError(f"minimize must be 'cost' or 'latency', not {self.minimize!r}")
        if not 0.0 <= self.min_success <= 1.0:
            raise ValueError("min_success must be between 0 and 1")
        allowed = None if self.allow is None else frozenset(self.allow)
        object.__setattr__(self, "_allowed", allowed)

    def run(self, offers: Iterable[Offer] | Market) -> Answer:
        market = offers if isinstance(offers, Market) else Market(offers)
        allowed = self._allowed
        if allowed is not None:
            market = market.only(lambda o: o.name in allowed)
        unmeasured = [o.name for o in market.offers if self._needs_unmeasured(o)]
        if unmeasured:
            market = market.only(lambda o: not self._needs_unmeasured(o))
        if self.source == self.target:
            return Answer([Plan(())])
        plans = _search(market, self, self.limit)
        if plans:
            return Answer(plans)
        why = explain(market, self)
        if unmeasured:
            what = "success rate" if self.min_success > 0.0 else "latency"
            names = ", ".join(sorted(unmeasured)[:8])
            why += f" (left out, their {what} was not measured: {names})"
        return Answer([], why)

    def _needs_unmeasured(self, offer: Offer) -> bool:
        """Whether the query depends on a figure `offer` does not have."""
        latency_matters = self.max_latency_p95 is not None or self.minimize == "latency"
        return (offer.success is None and self.min_success > 0.0) or (
            offer.latency_p95_s is None and latency_matters
        )


# -- the search ---------------------------------------------------------------------------

_Label = tuple[float, float, float, int]  # cost, latency, -log(success), steps
_Weights = tuple[float, float, float, float]


def _search(
    market: Market, query: MarketplaceQuery, limit: int, goal: int | None = None
) -> list[Plan]:
    """The `limit` best plans that meet the query's constraints, best first.

    A*: labels are ordered by objective so far plus the least objective still needed to
    reach the target (exact, from a backward Dijkstra), and a label is pruned as soon
    as even the least cost, latency, failure or number of steps still needed breaks a
    constraint. Labels at a type are compared on the objective and the constrained
    criteria only: one that is no better in any of them can never lead to a better plan."""
    to_go = market.to_go(query.target)
    limits = (
        math.inf if query.max_cost_usd is None else query.max_cost_usd,
        math.inf if query.max_latency_p95 is None else query.max_latency_p95,
        -math.log(query.min_success) + 1e-12 if query.min_success > 0.0 else math.inf,
        float(query.max_steps),
    )
    if goal is None:  # what to minimise: 0 cost, 1 latency, 2 -log(success)
        goal = 1 if query.minimize == "latency" else 0
    checked = tuple(k for k in range(4) if limits[k] < math.inf)
    compared = tuple(sorted({goal, *checked}))
    start: _Label = (0.0, 0.0, 0.0, 0)
    if not _within(start, query.source, to_go, limits, (goal, *checked)):
        return []
    kept: dict[str, dict[_Label, tuple[float, ...]]] = {query.source: {start: ()}}
    counter = 0
    heap: list[tuple[float, int, str, _Label, tuple[Offer, ...]]] = [
        (to_go[goal][query.source], 0, query.source, start, ())
    ]
    plans: list[Plan] = []
    while heap and len(plans) < limit:
        _, _, here, label, path = heapq.heappop(heap)
        if here == query.target:
            plans.append(Plan(path))
            continue
        if label not in kept[here]:  # beaten after it was queued
            continue
        visited = {query.source, *(s.target for s in path)}
        goal_to_go = to_go[goal]
        for offer, w in market.out.get(here, ()):
            there = offer.target
            if there in visited or there not in goal_to_go:
                continue  # a cycle never makes a plan better; a dead end never arrives
            new = (label[0] + w[0], label[1] + w[1], label[2] + w[2], label[3] + 1)
            if not _within(new, there, to_go, limits, checked):
                continue
            if not _admit(kept.setdefault(there, {}), new, compared):
                continue
            counter += 1
            heapq.heappush(
                heap, (new[goal] + goal_to_go[there], counter, there, new, (*path, offer))
            )
    return plans


def _within(
    label: _Label,
    here: str,
    to_go: list[dict[str, float]],
    limits: tuple[float, ...],
    keys: tuple[int, ...],
) -> bool:
    """Whether a plan through `label` at `here` can still meet the limits of `keys`."""
    for key in keys:
        rest = to_go[key].get(here)
        if rest is None or label[key] + rest > limits[key]:
            return False
    return True


def _backward(
    back: dict[str, list[tuple[str, _Weights]]], target: str, key: int
) -> dict[str, float]:
    """The least of criterion `key` (0 cost, 1 latency, 2 -log success, 3 steps) from
    each type to `target` (Dijkstra on the reversed edges; absent: unreachable)."""
    best = {target: 0.0}
    heap = [(0.0, target)]
    while heap:
        dist, here = heapq.heappop(heap)
        if dist > best[here]:
            continue
        for source, weights in back.get(here, ()):
            reached = dist + weights[key]
            if reached < best.get(source, math.inf):
                best[source] = reached
                heapq.heappush(heap, (reached, source))
    return best


def _admit(labels: dict[_Label, tuple[float, ...]], new: _Label, keys: tuple[int, ...]) -> bool:
    """Keep `new` unless a label there is as good in every criterion of `keys`; drop the
    labels it beats. Labels are kept with their criteria of `keys` (compared in C)."""
    mine = tuple(new[k] for k in keys)
    for theirs in labels.values():
        if all(map(le, theirs, mine)):
            return False
    beaten = [old for old, theirs in labels.items() if all(map(le, mine, theirs))]
    for old in beaten:
        del labels[old]
    labels[new] = mine
    return True


# -- why nothing fits ------------------------------------------------------------------------


def explain(market: Market, query: MarketplaceQuery) -> str:
    """Which constraint makes the query infeasible, with the closest plan it rules out."""
    free = MarketplaceQuery(
        query.source, query.target, query.minimize, max_steps=query.max_steps, limit=1
    )
    if not _search(market, free, 1):
        reachable = sorted(_reachable(market, query.source, query.max_steps) - {query.source})
        within = f" in at most {query.max_steps} steps" if query.max_steps < MAX_STEPS else ""
        scope = " allowed" if query.allow is not None else ""
        seen = ", ".join(f"`{t}`" for t in reachable[:12]) or "nothing"
        return (
            f"no chain of{scope} skills turns `{query.source}` into `{query.target}`{within}; "
            f"from `{query.source}` they reach: {seen}"
        )
    reasons = []
    if query.min_success > 0.0:
        best = _best(market, query, "success")
        if best is None or (best.success or 0.0) < query.min_success:
            reasons.append(_closest("success", best, f"min_success {query.min_success:g}"))
    if query.max_latency_p95 is not None:
        best = _best(market, query, "latency")
        if best is None or (best.latency_p95_s or 0.0) > query.max_latency_p95:
            reasons.append(
                _closest("latency", best, f"max_latency_p95 {query.max_latency_p95:g} s")
            )
    if query.max_cost_usd is not None:
        best = _best(market, query, "cost")
        if best is None or best.cost_usd > query.max_cost_usd:
            reasons.append(_closest("cost", best, f"max_cost_usd {query.max_cost_usd:g}"))
    if reasons:
        return "; ".join(reasons)
    return (
        "each constraint can be met on its own, but no plan meets all of them at once "
        f"(min_success {query.min_success:g}, max_latency_p95 {query.max_latency_p95}, "
        f"max_cost_usd {query.max_cost_usd})"
    )


def _best(market: Market, query: MarketplaceQuery, what: str) -> Plan | None:
    """The plan best in `what` alone (other constraints ignored)."""
    free = MarketplaceQuery(query.source, query.target, max_steps=query.max_steps)
    found = _search(market, free, 1, goal={"cost": 0, "latency": 1, "success": 2}[what])
    return found[0] if found else None


def _closest(what: str, plan: Plan | None, limit: str) -> str:
    from flujo.spec.figures import money

    if plan is None:
        return f"no plan satisfies {limit}"
    chain = " → ".join(plan.names)
    value = {
        "success": f"succeeds {plan.success or 0.0:.3f}",
        "latency": f"has p95 {plan.latency_p95_s or 0.0:.2f} s",
        "cost": f"costs {money(plan.cost_usd)}",
    }[what]
    best = {"success": "most reliable", "latency": "fastest", "cost": "cheapest"}[what]
    return f"the {best} plan ({chain}) {value}, outside {limit}"


def _reachable(market: Market, source: str, max_steps: int) -> set[str]:
    seen, frontier = {source}, {source}
    for _ in range(max_steps):
        frontier = {o.target for t in frontier for o, _ in market.out.get(t, ())} - seen
        if not frontier:
            break
        seen |= frontier
    return seen
