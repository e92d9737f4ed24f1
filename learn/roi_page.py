"""The realised-ROI page (`flujo roi --html`, and served by the bot): what suggestions did.

One self-contained HTML file (inline SVG charts, no script from elsewhere, no network):
suggestions proposed, merged, reverted and rejected; for each merged one its live
before/after figures (`realised.py`) beside what its pull request promised when it was
opened (`promises.py`); realised savings per month; spend per spec and step per month.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.learn.realised import EVIDENCE_ORIGINS, Realised
from flujo.learn.roi_figures import (
    SuggestionFigures,
    day,
    realised_by_month,
    suggestion_figures,
)
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


def roi_page(store: RunStore, title: str = "") -> str:
    """The page, rendered from the store's live runs, promises and suggestion feedback;
    `title` names whose it is (a repository)."""
    from flujo.engine.pricing import table_version
    from flujo.templates.environment import product_environment

    figures = suggestion_figures(store)
    merged = [_merged_row(f) for f in figures if f.state == "merged"]
    spend = _monthly_spend(store)
    by_month = realised_by_month(store, figures)
    counts = {
        state: sum(f.state == state for f in figures)
        for state in ("open", "merged", "reverted", "rejected")
    }
    template = product_environment(autoescape=True).get_template("roi_page.html.j2")
    return template.render(
        title=title,
        counts=counts,
        proposed=len(figures),
        promised_only=sum(f.promise is not None for f in figures),
        merged=merged,
        others=[_other_row(f) for f in figures if f.state != "merged"],
        spend=spend,
        spend_bars=_bars([(m, s) for m, s in _totals(spend)], "spend"),
        by_month=by_month,
        saving_bars=_bars([(row["month"], row["usd"]) for row in by_month], "saving"),
        prices_version=table_version(),
        width=_WIDTH,
        height=_HEIGHT,
    )


def _merged_row(f: SuggestionFigures) -> dict[str, Any]:
    found = f.realised
    assert found is not None
    return {
        "spec": f.spec,
        "id": f.suggestion,
        "pull": f.pull,
        "merged": day(f.decided_at),
        "patch": f.patch,
        "by": f.by,
        "found": found,
        "before": _side(found, "before"),
        "after": _side(found, "after"),
        "not_measured": f.not_measured,
        "realised": f.realised_text(),
        "promised": f.promised_text(),
        "chart": _pair_chart(found),
    }


def _other_row(f: SuggestionFigures) -> dict[str, Any]:
    return {
        "spec": f.spec,
        "id": f.suggestion,
        "pull": f.pull,
        "state": f.state,
        "when": day(f.decided_at),
        "promised": f.promised_text(),
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
    if found.promised_saving_per_run is not None and found.before.cost_per_run is not None:
        values.append(("promised", found.before.cost_per_run - found.promised_saving_per_run))
    return _bars([(k, v or 0.0) for k, v in values if v is not None], "pair")


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
    top = max(abs(v) for _, v in values) or 1.0
    slot = _WIDTH / len(values)
    width = min(slot * 0.7, 90)
    bars = []
    for i, (label, value) in enumerate(values):
        height = (_HEIGHT - 40) * max(value, 0.0) / top
        x = i * slot + (slot - width) / 2
        bars.append(Bar(x, _HEIGHT - 20 - height, width, height, label, money(value), tone))
    return bars
