"""The figures behind a finding as labelled rows, each label saying what it counts.

"Attempts of the step: 99 over 25 runs", never "Attempts 99". Used by `flujo suggest`'s
report and by the pull request body and page (`flujo.learn.proposal`), so a figure reads
the same everywhere. Money goes through `flujo.spec.figures.money`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flujo.spec.figures import count, money

Row = tuple[str, str]


def evidence_rows(evidence: dict[str, Any]) -> list[Row]:
    """(label, value) for each figure of a finding's `evidence`, in its order."""
    runs = int(evidence.get("runs", 0) or 0)
    attempts = int(evidence.get("attempts", 0) or 0)
    sample = int(evidence.get("sample_size", 0) or 0)
    unit = str(evidence.get("sample_unit", "runs"))
    rows: list[Row] = []
    if "events" in evidence and sample:
        rows.append(
            ("Events behind the finding", f"{int(evidence['events']):,} of {sample:,} {unit}")
        )

    def of_runs(n: Any) -> str:
        return f"{int(n):,} of {count(runs, 'run')}"

    def share_of(total: int, what: str) -> Callable[[Any], str]:
        return lambda rate: f"{float(rate):.0%} of {count(total, what)}"

    known: dict[str, tuple[str, Callable[[Any], str]]] = {
        "attempts": ("Attempts of the step", lambda n: f"{int(n):,} over {count(runs, 'run')}"),
        "cost_share": ("Share of the spec's cost", lambda v: f"{float(v):.0%}"),
        "cost_usd_per_run": ("Cost of the step per run", money),
        "latency_p50_s": ("Latency of the step, median", _seconds),
        "latency_p99_s": ("Latency of the step, p99", _seconds),
        "output_tokens_p95": ("Output tokens per reply, p95", lambda v: f"{float(v):,.0f}"),
        "replies_over_cap": (
            "Replies longer than the cap",
            lambda n: f"{int(n):,} of {count(sample, 'reply', 'replies')}",
        ),
        "validator_failure_rate": (
            "Attempts rejected by validators",
            share_of(attempts, "attempt"),
        ),
        "failed_runs": ("Runs that failed at the step", of_runs),
        "timeout_rate": ("Attempts that timed out", share_of(attempts, "attempt")),
        "retry_rate": ("Runs with a failure another attempt may fix", share_of(runs, "run")),
        "hits": ("Runs stopped at the limit", of_runs),
        "run_cost_p95_usd": ("Cost per run, p95", money),
        "other_step": ("Step it could run beside", str),
        "other_latency_p50_s": ("Latency of that step, median", _seconds),
        "prompt_tokens_estimated": (
            "System prompt, tokens (estimated: 4 characters each)",
            lambda v: f"~{int(v):,}",
        ),
        "input_tokens_mean": ("Input tokens per call, mean", lambda v: f"{float(v):,.0f}"),
        "rescued_runs": ("Runs its fallback had to answer", of_runs),
        "rescue_wait_s": ("Wait before the fallback, mean", _seconds),
        "first": ("The same call made first by", str),
        "steps": ("Steps", lambda v: ", ".join(map(str, v))),
        "plan": ("Plan the runs ran", str),
        "plan_sha256": ("Plan sha256", lambda v: str(v)[:12]),
        "builder": ("Builder of the plan", str),
        "runs_by_mode": ("Runs by mode (only live runs are production evidence)", str),
        "builder_cost_usd_per_run": ("What building the plan cost per run", _money_or_word),
        "builder_latency_s_per_run": ("What building the plan took per run", _seconds_or_word),
        "builder_runs_measured": ("Runs that built the plan (measured)", of_runs),
    }
    skip = {"runs", "events", "sample_size", "sample_unit", "hit_rate"}
    for key, value in evidence.items():
        if key in skip or value is None:
            continue
        if key in known:
            label, shown = known[key]
            rows.append((label, shown(value)))
        elif not isinstance(value, (dict, list)):
            rows.append((_words(key), _generic(key, value)))
    return rows


def _money_or_word(value: Any) -> str:
    return money(value) if isinstance(value, int | float) else str(value)


def _seconds_or_word(value: Any) -> str:
    return _seconds(value) if isinstance(value, int | float) else str(value)


def _seconds(value: Any) -> str:
    return f"{float(value):.3g} s"


def _words(key: str) -> str:
    words = key.removesuffix("_s").replace("_usd", "").replace("_", " ")
    return words[:1].upper() + words[1:]


def _generic(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if "usd" in key:
        return money(value)
    if "share" in key or key.endswith("_rate"):
        return f"{value:.0%}"
    if key.endswith("_s"):
        return _seconds(value)
    return f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
