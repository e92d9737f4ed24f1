"""Each typed skill with figures a planner can trust, and a badge that says where they
come from.

Figures come from the characterisation manifest (`flujo registry characterize`, shipped
as `skill_figures.json`: "baseline only") until a repository's own live runs of a skill
reach `MIN_RUNS`; then from those runs, blended with a live baseline by sample size
("measured on N runs"). A baseline measured on the fake model server is never blended
with production figures, and its badge says it was measured on the fake: there only the
cost is a measurement (of the prompt's tokens); success and latency are "not measured".
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flujo.spec.marketplace import Offer
from flujo.spec.registry import StepRegistry
from flujo.spec.skill_types import plannable
from flujo.spec.stats import wilson

SHIPPED = Path(__file__).parent / "skill_figures.json"
MANIFEST_VERSION = 1
MIN_RUNS = 20


@dataclass(frozen=True, slots=True)
class Figures:
    """What was measured of one skill: per call, over `samples` calls."""

    samples: int
    successes: int | None
    """None: not measured (answers of the fake model are placeholders, right or wrong
    by construction)."""
    cost_usd: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    """None: not measured (the fake model answers at once)."""
    mode: str
    """How the calls reached models: live, replay, fake (or `none`: no model)."""

    @property
    def success(self) -> float | None:
        if self.successes is None or not self.samples:
            return None
        return self.successes / self.samples

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.successes is None else wilson(self.successes, self.samples)


@dataclass(frozen=True, slots=True)
class Listing:
    """A skill as the marketplace shows it."""

    name: str
    kind: str
    origin: str
    input_type: str
    output_type: str
    summary: str
    figures: Figures | None
    badge: str
    plannable: bool

    def offer(self) -> Offer | None:
        if not self.plannable or self.figures is None or self.figures.samples == 0:
            return None
        f = self.figures
        return Offer(
            self.name,
            self.input_type,
            self.output_type,
            f.cost_usd,
            f.latency_p95_s,
            f.success,
            self.badge,
            adapter=self.origin == "builtin" and f.cost_usd == 0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.figures is not None:
            interval = self.figures.interval
            data["figures"]["success"] = self.figures.success
            data["figures"]["success_interval_95"] = list(interval) if interval else None
        return data


@dataclass
class Manifest:
    """Characterisation results: figures per skill, and how they were measured."""

    measured_at: str
    provider: str
    figures: dict[str, Figures] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Manifest:
        data = json.loads((path or SHIPPED).read_text(encoding="utf-8"))
        if data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"{path or SHIPPED}: manifest version {data.get('version')!r}")
        return cls(
            data["measured_at"],
            data["provider"],
            {name: Figures(**f) for name, f in data["skills"].items()},
        )

    def dump(self, path: Path) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "measured_at": self.measured_at,
            "provider": self.provider,
            "skills": {name: asdict(f) for name, f in sorted(self.figures.items())},
        }
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def listings(
    registry: StepRegistry,
    manifest: Manifest,
    observed: dict[str, Figures] | None = None,
) -> list[Listing]:
    """Every registry entry with its figures and badge (model-backed skills included)."""
    from flujo.spec.skill_packs import model_skills

    infos = [*registry.manifest(), *(s.info() for s in model_skills().values())]
    found = []
    for info in infos:
        if info.kind == "validator":
            continue
        figures, badge = blend(manifest.figures.get(info.name), (observed or {}).get(info.name))
        found.append(
            Listing(
                info.name,
                info.kind,
                info.origin,
                info.input_type,
                info.output_type,
                info.summary,
                figures,
                badge,
                plannable(info.input_type, registry.types)
                and plannable(info.output_type, registry.types),
            )
        )
    return found


def offers(found: list[Listing]) -> list[Offer]:
    return [o for o in (listing.offer() for listing in found) if o is not None]


def blend(baseline: Figures | None, observed: Figures | None) -> tuple[Figures | None, str]:
    """The figures to plan with and their badge (see the module)."""
    if observed is not None and observed.samples >= MIN_RUNS:
        if baseline is None or baseline.mode not in ("live", "none"):
            return observed, f"measured on {observed.samples:,} runs"
        merged = _merge(baseline, observed)
        return merged, (
            f"measured on {observed.samples:,} runs + {baseline.samples:,} baseline samples"
        )
    if baseline is None:
        return None, "not characterised"
    if baseline.mode == "fake":
        return baseline, (
            f"baseline only ({baseline.samples:,} samples on the fake model: cost from "
            "their tokens; success and latency not measured)"
        )
    return baseline, f"baseline only ({baseline.samples:,} samples)"


def _merge(a: Figures, b: Figures) -> Figures:
    n = a.samples + b.samples

    def mean(x: float, y: float) -> float:
        return (x * a.samples + y * b.samples) / n

    def known(x: float | None, y: float | None) -> float | None:
        return mean(x, y) if x is not None and y is not None else (y if x is None else x)

    successes = None if a.successes is None or b.successes is None else a.successes + b.successes
    p95 = [x for x in (a.latency_p95_s, b.latency_p95_s) if x is not None]
    return Figures(
        n,
        successes,
        mean(a.cost_usd, b.cost_usd),
        known(a.latency_p50_s, b.latency_p50_s),
        max(p95) if p95 else None,
        "live",
    )


def figures_of(outcomes: list[tuple[bool, float | None, float]], mode: str) -> Figures:
    """Figures of calls given as (succeeded, cost or None, latency in seconds); on the
    fake model only the cost is a measurement."""
    latencies = sorted(latency for _, _, latency in outcomes)
    costs = [cost for _, cost, _ in outcomes if cost is not None]
    fake = mode == "fake"
    return Figures(
        len(outcomes),
        None if fake else sum(ok for ok, _, _ in outcomes),
        statistics.fmean(costs) if costs else 0.0,
        None if fake else _quantile(latencies, 0.5),
        None if fake else _quantile(latencies, 0.95),
        mode,
    )


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
