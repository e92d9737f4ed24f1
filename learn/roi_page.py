"""The realised-ROI page (`flujo roi --html`): what merged suggestions did, from the store.

One self-contained HTML file (inline SVG charts, no script from elsewhere, no network):
monthly spend per spec from live runs, suggestions merged and rejected (from
`suggestion_feedback`), and for each merged one its live before/after figures
(`realised.py`) beside what it promised, with realised savings per month.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.learn.realised import EVIDENCE_ORIGINS, Realised, realised
from flujo.spec.figures import money

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

_WIDTH, _HEIGHT = 640, 180


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    tone: str


def roi_page(store: RunStore) -> str:
    """The page, rendered from the store's live runs and suggestion feedback."""
    from flujo.engine.pricing import table_version
    from flujo.templates.environment import product_environment

    merged = [_merged_row(store, row) for row in _feedback(store, "accepted")]
    spend = _monthly_spend(store)
    template = product_environment(autoescape=True).get_template("roi_page.html.j2")
    return template.render(
        merged=merged,
        rejected=len(_feedback(store, "rejected")),
        spend=spend,
        spend_bars=_bars([(m, s) for m, s in _totals(spend)], "spend"),
        saving_bars=_bars(
            [(r["spec"], r["realised_month"] or 0.0) for r in merged if r["realised_month"]],
            "saving",
        ),
        prices_version=table_version(),
        width=_WIDTH,
        height=_HEIGHT,
    )


def _feedback(store: RunStore, verdict: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT spec_path, patch, at, actor FROM suggestion_feedback WHERE verdict = ? ORDER BY at",
        (verdict,),
    )


def _merged_row(store: RunStore, row: dict[str, Any]) -> dict[str, Any]:
    found = realised(store, row["spec_path"], row["at"])
    per_month = _runs_per_month(store, row["spec_path"])
    saving = found.saving_per_run
    return {
        "spec": row["spec_path"],
        "merged": datetime.datetime.fromtimestamp(row["at"], datetime.UTC).strftime("%Y-%m-%d"),
        "patch": json.loads(row["patch"]),
        "by": row["actor"],
        "found": found,
        "before": _side(found, "before"),
        "after": _side(found, "after"),
        "saving": None if saving is None else money(saving),
        "realised_month": None if saving is None else saving * per_month,
        "runs_per_month": per_month,
        "not_measured": found.not_measured,
        "chart": _pair_chart(found),
    }


def _side(found: Realised, name: str) -> dict[str, str]:
    side = found.before if name == "before" else found.after
    if side.runs == 0:
        return {"runs": "0", "cost": "not measured", "latency": "—", "failures": "—"}
    low, high = side.cost_interval or (None, None)
    cost = money(side.cost_per_run)
    if low is not None and high is not None:
        cost += f" (95% {money(max(low, 0))}–{money(high)})"
    f_low, f_high = side.failure_interval
    return {
        "runs": str(side.runs),
        "cost": cost,
        "latency": "—" if side.latency_p50_s is None else f"{side.latency_p50_s:.2f} s",
        "failures": f"{side.failures}/{side.runs} (95% {f_low:.0%}–{f_high:.0%})",
    }


def _pair_chart(found: Realised) -> list[Bar]:
    values = [
        ("before", found.before.cost_per_run),
        ("after", found.after.cost_per_run),
    ]
    return _bars([(k, v or 0.0) for k, v in values if v is not None], "pair")


def _runs_per_month(store: RunStore, spec_path: str) -> float:
    marks = ", ".join("?" * len(EVIDENCE_ORIGINS))
    (row,) = store.query(
        "SELECT COUNT(*) AS n, MIN(started_at) AS first, MAX(started_at) AS last FROM runs"
        f" WHERE spec_path = ? AND mode = 'live' AND origin IN ({marks})",
        (spec_path, *EVIDENCE_ORIGINS),
    )
    if not row["n"] or row["last"] == row["first"]:
        return float(row["n"] or 0)
    days = max(float(row["last"] - row["first"]) / 86400, 1.0)
    return float(row["n"]) * 30 / days


def _monthly_spend(store: RunStore) -> list[dict[str, Any]]:
    """USD of live runs by month, spec and step."""
    marks = ", ".join("?" * len(EVIDENCE_ORIGINS))
    rows = store.query(
        "SELECT strftime('%Y-%m', r.started_at, 'unixepoch') AS month, r.spec_path AS spec,"
        " s.step_name AS step, SUM(s.cost_usd) AS usd, COUNT(DISTINCT r.run_id) AS runs"
        " FROM runs r JOIN spans s ON s.run_id = r.run_id"
        f" WHERE r.mode = 'live' AND r.origin IN ({marks}) AND s.cost_usd IS NOT NULL"
        " GROUP BY month, spec, step ORDER BY month, spec, step",
        EVIDENCE_ORIGINS,
    )
    return rows


def _totals(spend: list[dict[str, Any]]) -> list[tuple[str, float]]:
    months: dict[str, float] = {}
    for row in spend:
        months[row["month"]] = months.get(row["month"], 0.0) + (row["usd"] or 0.0)
    return sorted(months.items())


def _bars(values: list[tuple[str, float]], tone: str) -> list[Bar]:
    """Vertical bars scaled to the chart's height, labelled with their values."""
    if not values:
        return []
    top = max(v for _, v in values) or 1.0
    slot = _WIDTH / len(values)
    width = min(slot * 0.7, 90)
    bars = []
    for i, (label, value) in enumerate(values):
        height = (_HEIGHT - 40) * value / top
        x = i * slot + (slot - width) / 2
        bars.append(Bar(x, _HEIGHT - 20 - height, width, height, label, money(value), tone))
    return bars
