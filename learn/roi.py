"""ROI of a suggestion: savings, latency, risk, quality effect, confidence, and a rank.

Risk-adjusted value per month = (USD saved + failed runs avoided x FAILED_RUN_USD +
seconds saved x SECOND_USD) x confidence x the risk tier's weight. The constants are
deliberately simple and documented; the evidence behind each figure travels with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from flujo.spec.figures import money

if TYPE_CHECKING:
    from flujo.learn.opportunities import Opportunity
    from flujo.learn.telemetry_view import SpecTelemetry

Risk = Literal["low", "medium", "high"]
RISK_OF: dict[str, Risk] = {
    "flaky_validator": "low",
    "frequent_timeouts": "low",
    "frequent_retries": "low",
    "loose_timeout": "low",
    "cheaper_model": "medium",
    "expensive_step": "medium",
    "usage_limit_hits": "medium",
    "parallelizable": "high",
    "unused_output": "high",
    "long_prompt": "medium",
    "loop_at_max": "medium",
    "repeated_call": "medium",
    "fallback_rescues": "medium",
    "stable_jit_plan": "high",
}
"""low: retries, timeouts, docs; medium: model swaps, caps and limits; high: structure
(and steps written in place of a jit step)."""
RISK_WEIGHT: dict[Risk, float] = {"low": 1.0, "medium": 0.6, "high": 0.3}
FAILED_RUN_USD = 0.05
"""What a failed run is taken to cost (a retry by hand, an unhappy user)."""
SECOND_USD = 0.0005
"""What a second of latency saved per run is taken to be worth."""
CONFIDENCE_Z = 1.96
"""Confidence comes from the 95% Wilson score interval of the finding's events."""
HIGH_CONFIDENCE = 0.8
"""Confidence at or above which a finding is labelled `high`."""
MEDIUM_CONFIDENCE = 0.4
"""Confidence at or above which a finding is labelled `medium` (below: `low`)."""


@dataclass(frozen=True)
class Estimate:
    usd_per_run: float
    """Saved per run (negative: costs more)."""
    usd_per_month: float
    latency_s_per_run: float
    """Change in latency per run (negative: faster)."""
    failures_avoided_per_month: float
    risk: Risk
    quality: str
    confidence: float
    confidence_label: str
    value_per_month: float
    score: float
    headline: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("usd_per_run", "usd_per_month", "failures_avoided_per_month"):
            data[key] = round(data[key], 6)
        for key in ("latency_s_per_run", "confidence", "value_per_month", "score"):
            data[key] = round(data[key], 4)
        return data


def confidence(events: int, sample_size: int) -> tuple[float, str]:
    """How much of the observed rate (`events` in `sample_size`) is assured: the lower
    bound of its Wilson 95% interval over the rate itself, with its label.

    It grows with the number of events, not of runs: one failure in any number of runs
    gives 0.18 to 0.21 (never `high`), 8 in 48 about 0.52, a check that held in all of 40
    runs 0.91 (in all of 5: 0.57).
    """
    from flujo.learn.telemetry_view import wilson_lower

    if events <= 0 or sample_size <= 0:
        return 0.0, "low"
    events = min(events, sample_size)
    value = wilson_lower(events, sample_size, CONFIDENCE_Z) / (events / sample_size)
    label = (
        "high" if value >= HIGH_CONFIDENCE else "medium" if value >= MEDIUM_CONFIDENCE else "low"
    )
    return value, label


def estimate(opportunity: Opportunity, view: SpecTelemetry, risk: Risk | None = None) -> Estimate:
    """Savings, risk and rank of acting on `opportunity`, from the observed telemetry;
    `risk` overrides the kind's own (`flujo.learn.step_role.risk_for`: what the step's
    output decides)."""
    saved, latency, failure_drop, quality = _effect(opportunity, view)
    per_month = view.runs_per_month
    risk = risk or RISK_OF[opportunity.kind]
    evidence = opportunity.evidence
    sample = int(evidence.get("sample_size", 0))
    conf, label = confidence(int(evidence.get("events", sample)), sample)
    avoided = failure_drop * per_month
    value = saved * per_month + avoided * FAILED_RUN_USD - latency * per_month * SECOND_USD
    score = value * conf * RISK_WEIGHT[risk]
    return Estimate(
        usd_per_run=saved,
        usd_per_month=saved * per_month,
        latency_s_per_run=latency,
        failures_avoided_per_month=avoided,
        risk=risk,
        quality=quality,
        confidence=conf,
        confidence_label=label,
        value_per_month=value,
        score=score,
        headline=_freeze_headline(saved, latency, risk, opportunity)
        or headline(saved, saved * per_month, latency, avoided, risk),
    )


def _freeze_headline(saved: float, latency: float, risk: Risk, opportunity: Opportunity) -> str:
    """A frozen jit plan saves the builder's time, often milliseconds: said in them."""
    if opportunity.kind != "stable_jit_plan" or saved > 0:
        return ""
    tail = f"with {risk} risk to quality"
    if not opportunity.facts.get("measured"):
        return f"Plans once, in review, instead of at run time {tail}"
    return f"Cuts ~{-latency * 1000:.2g} ms of planning per run {tail}"


def _effect(opportunity: Opportunity, view: SpecTelemetry) -> tuple[float, float, float, str]:
    """(USD saved per run, latency change per run, failure-rate drop, quality note)."""

    facts, kind = opportunity.facts, opportunity.kind
    names = [n for n in opportunity.evidence.get("steps", [opportunity.step]) if n]
    steps = [view.window_stats(n, opportunity.yaml_path) or view.steps[n] for n in names]
    if kind == "cheaper_model":
        old, new = view.price(facts["model"]), view.price(facts["suggested"])
        saved = 0.0
        if old is not None and new is not None:
            for s in steps:
                tokens_in = s.mean(s.input_tokens) * s.attempts / max(s.runs, 1)
                tokens_out = s.mean(s.output_tokens) * s.attempts / max(s.runs, 1)
                saved += _cost(old, tokens_in, tokens_out) - _cost(new, tokens_in, tokens_out)
        runs = min(s.runs for s in steps)
        return saved, 0.0, 0.0, f"checks passed in {runs}/{runs} runs with the current model"
    step = steps[0] if steps else None
    rate = float(facts.get("failure_rate", 0.0))
    if kind in ("flaky_validator", "frequent_retries", "frequent_timeouts"):
        assert step is not None
        failed_runs = step.transient_failed_runs if kind == "frequent_retries" else step.failed_runs
        failed = failed_runs / step.runs
        extra = step.cost_per_run * rate  # the retries that now happen
        drop = failed * (1 - rate) if failed else rate * (1 - rate) * 0.5
        note = f"runs failing at this step: {failed:.0%} now, fewer expected with the change"
        return -extra, step.latency(50) * rate, drop, note
    if kind == "loose_timeout":
        return 0.0, 0.0, 0.0, "no change for calls that finish; hung calls fail sooner"
    if kind == "expensive_step":
        saved = float(facts.get("usd_per_run", 0.0))
        return saved, 0.0, 0.0, "typical replies are shorter than the cap; runaway replies are cut"
    if kind == "parallelizable":
        return 0.0, -float(facts["latency_saving_s"]), 0.0, "same outputs, computed concurrently"
    if kind == "unused_output":
        assert step is not None
        note = "no step, test or policy reads the output that goes away"
        return step.cost_per_run, -step.latency(50), 0.0, note
    if kind in ("long_prompt", "loop_at_max"):
        saved = float(facts.get("usd_per_run", 0.0))
        return saved, 0.0, 0.0, "what the step is told or how long the loop runs changes"
    if kind == "repeated_call":
        assert step is not None
        note = "the second call's answer becomes the first's (a second sample is lost)"
        return float(facts["usd_per_run"]), -step.latency(50), 0.0, note
    if kind == "fallback_rescues":
        note = "the answers that were the fallback's in most runs become the step's own"
        saved = float(facts.get("usd_per_run", 0.0))
        return saved, -float(facts.get("latency_saving_s", 0.0)), 0.0, note
    if kind == "stable_jit_plan":
        if not facts.get("measured"):
            return 0.0, 0.0, 0.0, "the same steps run; what building the plan saves: not measured"
        note = "the steps the plan ran now run as written; the plan is no longer re-made"
        return float(facts["usd_per_run"]), -float(facts["latency_saving_s"]), 0.0, note
    if kind == "usage_limit_hits":
        mean = sum(view.run_costs) / max(len(view.run_costs), 1)
        return -mean * rate * 0.5, 0.0, rate, f"{rate:.0%} of runs stop at the limit today"
    return 0.0, 0.0, 0.0, ""


def _cost(price: Any, tokens_in: float, tokens_out: float) -> float:
    return float(tokens_in * price.input + tokens_out * price.output) / 1_000_000


def headline(saved: float, monthly: float, latency: float, avoided: float, risk: Risk) -> str:
    """One line, e.g. 'Saves ~$0.10/run (~$300/month) with low risk to quality'."""
    tail = f"with {risk} risk to quality"
    if saved > 0 and monthly >= 0.01:
        return f"Saves ~{money(saved)}/run (~{money(monthly)}/month) {tail}"
    if avoided >= 0.5:
        cost = f", costs ~{money(-monthly)}/month more" if monthly <= -0.01 else ""
        return f"Avoids ~{avoided:.0f} failed runs/month{cost} {tail}"
    if latency < -0.01:
        return f"Cuts ~{-latency:.2f}s per run {tail}"
    if saved > 0:
        return f"Saves ~{money(saved)}/run {tail}"
    return f"Bounds worst-case cost and latency {tail}"
