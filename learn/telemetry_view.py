"""Recorded telemetry of one spec, as per-step statistics on the current spec.

Runs of every version of the spec are read (matched by pipeline name, file or
spec_sha256). A span recorded against an older version is mapped to the current spec by
its step name, or failing that through its yaml_path when the step there is of the same
kind; spans of steps that no longer exist are counted but not attributed.

Only evidence counts (docs/evidence.md): by default runs of mode `live` that no test,
check, verification or evaluation started (`include` widens that); runs that failed
because of the harness or their input say nothing about the steps and are left out of
step statistics; statistics are kept per spec version, so that a finding at a yaml_path
can use only the versions in which that path had its current value (`window_stats`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flujo.engine.pricing import Price
    from flujo.engine.store import RunStore
    from flujo.spec.model import Pipeline, StepBase

DAY_S = 86_400.0
MOCKED = '"flujo.step.mocked":true'
_LIMIT = re.compile(r"usage limit (\w+) ")
_STATUS = re.compile(r"Error code: (\d{3})\b")

EVIDENCE_MODES: tuple[str, ...] = ("live",)
"""Modes counted by default: runs against a real model server."""
KNOWN_MODES = ("live", "replay", "fake", "mock", "unknown")
NOT_PRODUCTION_ORIGINS: tuple[str, ...] = ("test", "check", "verification", "eval")
"""Origins never counted unless named in `include`: their runs are checks, not traffic."""
RETRYABLE_CAUSES = frozenset({"model", "provider"})
"""The only causes of failure that count as evidence for retry, timeout or repair findings."""
NOT_EVIDENCE_CAUSES = frozenset({"harness", "input"})
"""A run that failed so is left out of every step's statistics."""
TRANSIENT_STATUS = frozenset({408, 409, 429})
"""4xx answers that another attempt may not get; any other 4xx is permanent."""


def evidence_filter(include: Iterable[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(modes counted, origins left out) once `include` (modes or origins) is added to the
    defaults; ValueError for a word that is neither."""
    modes = list(EVIDENCE_MODES)
    excluded = list(NOT_PRODUCTION_ORIGINS)
    for word in include:
        word = word.strip().lower()
        if not word:
            continue
        if word in KNOWN_MODES:
            modes += [word] if word not in modes else []
        elif word in excluded:
            excluded.remove(word)
        elif word not in ("cli", "sdk", "shadow"):
            known = ", ".join((*KNOWN_MODES, *NOT_PRODUCTION_ORIGINS))
            raise ValueError(f"cannot include '{word}': name modes or origins ({known})")
    return tuple(sorted(modes)), tuple(excluded)


def cause_of(row: dict[str, Any]) -> str:
    """A failed span's cause (inferred from its error text when it was not recorded)."""
    from flujo.engine.store import infer_cause

    cause = row.get("cause")
    return cause if isinstance(cause, str) else infer_cause(row.get("error"))


def status_of(row: dict[str, Any]) -> int | None:
    status = row.get("status_code")
    if isinstance(status, int):
        return status
    found = _STATUS.search(row.get("error") or "")
    return int(found.group(1)) if found else None


def wilson_lower(events: int, trials: int, z: float = 1.96) -> float:
    """Lower bound of the Wilson score interval (95% by default) of events/trials."""
    if trials <= 0:
        return 0.0
    p = events / trials
    denominator = 1 + z * z / trials
    centre = p + z * z / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, (centre - margin) / denominator)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of `values`; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class JitRun:
    """The plan one run of a `jit` step ran (its span's `flujo.jit.*` attributes)."""

    started_ns: int
    sha256: str
    skills: tuple[str, ...]
    builder: str
    mode: str
    """The run's mode (live, fake, replay…)."""
    source: str
    """`built` in this run, `reused` (built earlier by the same process), `replayed`, or
    `unknown` (a span from before sources were recorded)."""
    builder_cost_usd: float | None = None
    """What building it cost in this run (None: not built here, or not measured)."""
    builder_latency_s: float | None = None


@dataclass
class StepStats:
    """What the runs say about one step of the current spec."""

    name: str
    yaml_path: str
    runs: int = 0
    """Runs in which the step ran at least once."""
    attempts: int = 0
    failed_runs: int = 0
    """Runs in which every attempt of the step failed."""
    retried_runs: int = 0
    timeouts: int = 0
    validator_failures: int = 0
    errors: int = 0
    """Failed attempts of cause model or provider (timeouts and validator failures
    included)."""
    transient_errors: int = 0
    """Failed attempts another attempt may fix: model or provider failures other than
    timeouts, validator failures and permanent 4xx answers."""
    permanent_errors: int = 0
    """Provider answers of a 4xx status no retry changes (404, 401, 400…)."""
    transient_runs: int = 0
    """Runs with at least one transient failure."""
    transient_failed_runs: int = 0
    """Runs in which every attempt failed, at least one of them transiently."""
    failed_run_attempts: list[int] = field(default_factory=list)
    """Attempts made in each run in which the step failed."""
    causes: Counter[str] = field(default_factory=Counter)
    """Failed attempts by cause (every cause, evidence or not)."""
    cost_usd: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    """Duration of each successful attempt."""
    output_tokens: list[int] = field(default_factory=list)
    input_tokens: list[int] = field(default_factory=list)
    models: Counter[str] = field(default_factory=Counter)
    failed_cost_usd: float = 0.0
    """What the failed attempts cost."""
    loops_at_max: int = 0
    """Runs in which this loop ran to `max_loops` (its exit never held)."""
    rescued_runs: int = 0
    """Runs in which every attempt failed and the step's fallback ran."""
    fallback_answered: int = 0
    """Of those, runs in which the fallback answered."""
    rescue_wait_s: list[float] = field(default_factory=list)
    """Per rescued run: seconds from the first attempt to the fallback's start."""
    plans: list[JitRun] = field(default_factory=list)
    """Per run of a `jit` step: the plan it ran and how the run got it."""

    @property
    def cost_per_run(self) -> float:
        return self.cost_usd / self.runs if self.runs else 0.0

    @property
    def validator_failure_rate(self) -> float:
        return self.validator_failures / self.attempts if self.attempts else 0.0

    @property
    def timeout_rate(self) -> float:
        return self.timeouts / self.attempts if self.attempts else 0.0

    @property
    def retry_rate(self) -> float:
        return self.retried_runs / self.runs if self.runs else 0.0

    @property
    def success_rate(self) -> float:
        return 1 - self.failed_runs / self.runs if self.runs else 0.0

    def latency(self, q: float) -> float:
        return percentile(self.latencies_s, q)

    def tokens_out(self, q: float) -> float:
        return percentile([float(t) for t in self.output_tokens], q)

    def mean(self, values: list[int]) -> float:
        return sum(values) / len(values) if values else 0.0

    def merge(self, other: StepStats) -> None:
        """Add `other`'s counts (of another spec version) to these."""
        for f in fields(self):
            if f.name in ("name", "yaml_path"):
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, list):
                mine.extend(theirs)
            else:
                setattr(self, f.name, mine + theirs)


@dataclass
class SpecTelemetry:
    """Runs and per-step statistics of a spec over a window."""

    runs: int = 0
    succeeded: int = 0
    versions: int = 0
    usage_limit_hits: int = 0
    usage_limits_crossed: Counter[str] = field(default_factory=Counter)
    """Which limit (`total_cost_usd`, `total_tokens`) stopped how many runs."""
    run_costs: list[float] = field(default_factory=list)
    run_latencies_s: list[float] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    unmapped_spans: int = 0
    steps: dict[str, StepStats] = field(default_factory=dict)
    """By step name (of the current spec), over every version."""
    modes: tuple[str, ...] = EVIDENCE_MODES
    """The run modes counted."""
    excluded_origins: tuple[str, ...] = NOT_PRODUCTION_ORIGINS
    excluded: Counter[str] = field(default_factory=Counter)
    """Runs of the spec not counted, by why (`mode fake`, `origin test`)."""
    counted_by_mode: Counter[str] = field(default_factory=Counter)
    """Runs counted, by mode (`live`, and what `include` added: `fake`, `replay`, …)."""
    not_evidence_runs: int = 0
    """Counted runs that failed because of the harness or their input (no step statistics)."""
    by_version: dict[str, dict[str, StepStats]] = field(default_factory=dict)
    """Step statistics per spec_sha256."""
    runs_by_version: Counter[str] = field(default_factory=Counter)
    limit_hits_by_version: dict[str, Counter[str]] = field(default_factory=dict)
    current: Any = None
    """The current spec's document (plain data), for windows."""
    documents: dict[str, Any] = field(default_factory=dict)
    """Each version's document (None when its text is unknown or unreadable)."""
    price_overrides: dict[str, Any] = field(default_factory=dict)
    """The repository's `prices:` (as `flujo.engine.pricing.to_price` reads them): the
    estimates price models as the repository does, not only by the built-in table."""

    def price(self, model: str) -> Price | None:
        """The `Price` of `model` with the repository's overrides, or None when unknown."""
        from flujo.engine.pricing import price_for

        return price_for(model, overrides=self.price_overrides or None)

    @property
    def total_cost_usd(self) -> float:
        return sum(self.run_costs)

    @property
    def runs_per_day(self) -> float:
        """Observed run rate; a window shorter than a day counts as one day."""
        if not self.runs or self.first_at is None or self.last_at is None:
            return 0.0
        return self.runs / max((self.last_at - self.first_at) / DAY_S, 1.0)

    @property
    def runs_per_month(self) -> float:
        return self.runs_per_day * 30

    def cost_share(self, step: str) -> float:
        total = sum(s.cost_usd for s in self.steps.values())
        stats = self.steps.get(step)
        return stats.cost_usd / total if stats and total > 0 else 0.0

    def window(self, yaml_path: str) -> list[str]:
        """The spec versions in which `yaml_path` has its current value (or is absent, as
        now); versions whose text is unknown are never in a window."""
        want = value_at(self.current, yaml_path)
        return [
            sha
            for sha in self.runs_by_version
            if self.documents.get(sha) is not None
            and value_at(self.documents[sha], yaml_path) == want
        ]

    def window_stats(self, step: str, yaml_path: str) -> StepStats | None:
        """`step`'s statistics over the versions in which `yaml_path` is as now."""
        merged: StepStats | None = None
        for sha in self.window(yaml_path):
            stats = self.by_version.get(sha, {}).get(step)
            if stats is None:
                continue
            if merged is None:
                merged = StepStats(stats.name, stats.yaml_path)
            merged.merge(stats)
        return merged

    def window_limits(self, yaml_path: str) -> tuple[int, Counter[str]]:
        """Runs and usage-limit stops over the versions in which `yaml_path` is as now."""
        runs, hits = 0, Counter[str]()
        for sha in self.window(yaml_path):
            runs += self.runs_by_version[sha]
            hits.update(self.limit_hits_by_version.get(sha, Counter()))
        return runs, hits


_ABSENT = object()


def value_at(document: Any, yaml_path: str) -> Any:
    """The value at `yaml_path` in spec data (a unique marker when there is none)."""
    from flujo.spec import paths

    node = document
    for segment in paths.split(yaml_path):
        index = isinstance(segment, int) and isinstance(node, list) and segment < len(node)
        key = isinstance(segment, str) and isinstance(node, dict) and segment in node
        if not (index or key):
            return _ABSENT
        node = node[segment]
    return node


def spec_document(text: str | None) -> Any:
    """A stored spec's text as data (None when absent or not YAML)."""
    if not text:
        return None
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        return None


def load_view(
    store: RunStore,
    pipeline: Pipeline,
    *,
    since_s: float | None = None,
    now: float | None = None,
    include: Iterable[str] = (),
) -> SpecTelemetry:
    """Telemetry of `pipeline` (all its versions) from `store`, optionally only the runs
    that started in the last `since_s` seconds. Only live runs that no test, check,
    verification or evaluation started count, plus the modes and origins in `include`
    (ValueError for an unknown one)."""
    modes, excluded_origins = evidence_filter(include)
    where, args = _run_filter(pipeline, since_s, now)
    view = SpecTelemetry(modes=modes, excluded_origins=excluded_origins)
    for row in store.query(
        f"SELECT r.mode, r.origin, count(*) AS n FROM runs r WHERE {where}"
        " GROUP BY r.mode, r.origin",
        args,
    ):
        if row["mode"] not in modes:
            view.excluded[f"mode {row['mode']}"] += row["n"]
        elif row["origin"] in excluded_origins:
            view.excluded[f"origin {row['origin']}"] += row["n"]
        else:
            view.counted_by_mode[row["mode"]] += row["n"]
    marks = ", ".join("?" * len(modes))
    where += f" AND r.mode IN ({marks})"
    args = (*args, *modes)
    if excluded_origins:
        where += f" AND r.origin NOT IN ({', '.join('?' * len(excluded_origins))})"
        args = (*args, *excluded_origins)
    runs = store.query(
        f"SELECT run_id, spec_sha256, status, started_at, latency_s, total_cost_usd, error,"
        f" error_path FROM runs r WHERE {where}",
        args,
    )
    if not runs:
        return view
    view.runs = len(runs)
    view.versions = len({r["spec_sha256"] for r in runs})
    for run in runs:
        sha = run["spec_sha256"]
        view.runs_by_version[sha] += 1
        view.succeeded += run["status"] == "succeeded"
        view.run_costs.append(run["total_cost_usd"] or 0.0)
        view.run_latencies_s.append(run["latency_s"] or 0.0)
        crossed = _LIMIT.match(run["error"] or "")
        if crossed:
            view.usage_limit_hits += 1
            view.usage_limits_crossed[crossed.group(1)] += 1
            view.limit_hits_by_version.setdefault(sha, Counter())[crossed.group(1)] += 1
    started = [r["started_at"] for r in runs]
    view.first_at, view.last_at = min(started), max(started)
    view.current = spec_document(
        pipeline.source.text if pipeline.source is not None else pipeline.to_yaml()
    )
    for sha in view.runs_by_version:
        text = store.spec_text(sha)
        view.documents[sha] = view.current if sha == pipeline.spec_sha256 else spec_document(text)
    _add_spans(view, store, pipeline, where, args)
    return view


def _run_filter(
    pipeline: Pipeline, since_s: float | None, now: float | None
) -> tuple[str, tuple[Any, ...]]:
    """SQL condition on `runs r` selecting the finished runs of every version of the spec."""
    clauses = ["r.spec_sha256 = ?"]
    args: list[Any] = [pipeline.spec_sha256]
    if pipeline.name:
        clauses.append("r.pipeline = ?")
        args.append(pipeline.name)
    if pipeline.file and pipeline.file != "<string>":
        clauses.append("r.spec_path = ?")
        args.append(pipeline.file)
    where = f"({' OR '.join(clauses)}) AND r.status != 'running'"
    if since_s is not None:
        where += " AND r.started_at >= ?"
        args.append((now if now is not None else time.time()) - since_s)
    return where, tuple(args)


def _add_spans(
    view: SpecTelemetry, store: RunStore, pipeline: Pipeline, where: str, args: tuple[Any, ...]
) -> None:
    current = {step.name: (path, step) for path, step in pipeline.walk()}
    by_path = {path: step for path, step in current.values()}
    rows = store.query(
        "SELECT r.spec_sha256 AS sha, s.run_id, s.step_name, s.kind, s.yaml_path, s.attempt,"
        " s.status, s.error, s.start_ns, s.end_ns, s.cost_usd, s.input_tokens,"
        " s.output_tokens, s.model, s.cause, s.events,"
        " s.attributes, r.mode AS run_mode"
        " FROM spans s JOIN runs r ON r.run_id = s.run_id"
        f" WHERE {where}"
        "   AND s.step_name IS NOT NULL AND s.attributes NOT LIKE ?"
        " ORDER BY s.run_id, s.start_ns",
        (*args, f"%{MOCKED}%"),
    )
    for row in rows:  # the HTTP status of a failed call (only failed spans are read)
        attributes = row.pop("attributes")
        if row["status"] != "OK" and "http.response.status_code" in attributes:
            row["status_code"] = json.loads(attributes).get("http.response.status_code")
        if row["kind"] == "jit" and '"flujo.jit.plan_sha256"' in (attributes or ""):
            row["jit"] = _jit_run(row, json.loads(attributes))
    names_by_version: dict[str, set[str]] = {}
    not_evidence: set[str] = set()
    for row in rows:
        names_by_version.setdefault(row["sha"], set()).add(row["step_name"])
        if row["status"] == "ERROR" and cause_of(row) in NOT_EVIDENCE_CAUSES:
            not_evidence.add(row["run_id"])
    view.not_evidence_runs = len(not_evidence)
    per_run: dict[tuple[str, str, str], list[tuple[bool, bool]]] = {}
    started: dict[tuple[str, str, str], int] = {}
    for row in rows:
        if row["run_id"] in not_evidence:
            continue
        name = _current_name(row, current, by_path, names_by_version[row["sha"]])
        if name is None:
            view.unmapped_spans += 1
            continue
        path, _ = current[name]
        stats = view.by_version.setdefault(row["sha"], {}).get(name)
        if stats is None:
            stats = view.by_version[row["sha"]][name] = StepStats(name, path)
        ok = row["status"] == "OK"
        error = row["error"] or ""
        cause = cause_of(row) if not ok else ""
        started.setdefault((row["sha"], row["run_id"], name), row["start_ns"])
        if row.get("jit") is not None:
            stats.plans.append(row["jit"])
        if row["kind"] == "loop" and '"flujo.loop.max_loops"' in (row["events"] or ""):
            stats.loops_at_max += 1
        if not ok:
            stats.causes[cause] += 1
            if cause not in RETRYABLE_CAUSES:  # a usage limit or cancellation: no evidence
                continue
        stats.attempts += 1
        transient = False
        if not ok:
            stats.errors += 1
            timeout = error.startswith("timed out")
            validator = error.startswith("validator failed")
            status = status_of(row) if cause == "provider" else None
            permanent = status is not None and 400 <= status < 500
            permanent = permanent and status not in TRANSIENT_STATUS
            stats.timeouts += timeout
            stats.validator_failures += validator
            stats.permanent_errors += permanent
            transient = not (timeout or validator or permanent)
            stats.transient_errors += transient
        per_run.setdefault((row["sha"], row["run_id"], name), []).append((ok, transient))
        if ok and row["end_ns"]:
            stats.latencies_s.append((row["end_ns"] - row["start_ns"]) / 1e9)
        stats.cost_usd += row["cost_usd"] or 0.0
        if not ok:
            stats.failed_cost_usd += row["cost_usd"] or 0.0
        if row["output_tokens"] is not None:
            stats.output_tokens.append(row["output_tokens"])
        if row["input_tokens"] is not None:
            stats.input_tokens.append(row["input_tokens"])
        if row["model"]:
            stats.models[row["model"]] += 1
    for (sha, _, name), outcomes in per_run.items():
        stats = view.by_version[sha][name]
        stats.runs += 1
        stats.retried_runs += len(outcomes) > 1
        failed = not any(ok for ok, _ in outcomes)
        stats.failed_runs += failed
        transient = any(t for _, t in outcomes)
        stats.transient_runs += transient
        stats.transient_failed_runs += failed and transient
        if failed:
            stats.failed_run_attempts.append(len(outcomes))
    _add_rescues(view, pipeline, per_run, started)
    for versions in view.by_version.values():
        for name, stats in versions.items():
            total = view.steps.get(name)
            if total is None:
                total = view.steps[name] = StepStats(name, stats.yaml_path)
            total.merge(stats)


def _jit_run(row: dict[str, Any], attributes: dict[str, Any]) -> JitRun:
    from flujo.engine.jit import (
        BUILDER_COST,
        BUILDER_LATENCY,
        PLAN_BUILDER,
        PLAN_SHA,
        PLAN_SKILLS,
        PLAN_SOURCE,
    )

    def number(key: str) -> float | None:
        value = attributes.get(key)
        return float(value) if isinstance(value, int | float) else None

    return JitRun(
        int(row["start_ns"] or 0),
        str(attributes.get(PLAN_SHA)),
        tuple(s.strip() for s in str(attributes.get(PLAN_SKILLS, "")).split("→") if s.strip()),
        str(attributes.get(PLAN_BUILDER, "")),
        str(row.get("run_mode") or "unknown"),
        str(attributes.get(PLAN_SOURCE, "unknown")),
        number(BUILDER_COST),
        number(BUILDER_LATENCY),
    )


def _add_rescues(
    view: SpecTelemetry,
    pipeline: Pipeline,
    per_run: dict[tuple[str, str, str], list[tuple[bool, bool]]],
    started: dict[tuple[str, str, str], int],
) -> None:
    """Count, per step with a fallback, the runs its fallback had to answer."""
    from flujo.spec.model import AgentStep

    fallbacks = {
        step.name: step.fallback.name
        for _, step in pipeline.walk()
        if isinstance(step, AgentStep) and step.fallback is not None
    }
    for (sha, run_id, name), outcomes in per_run.items():
        fallback = fallbacks.get(name)
        if fallback is None or any(ok for ok, _ in outcomes):
            continue
        answers = per_run.get((sha, run_id, fallback))
        if answers is None:
            continue
        stats = view.by_version[sha][name]
        stats.rescued_runs += 1
        stats.fallback_answered += any(ok for ok, _ in answers)
        wait = started[(sha, run_id, fallback)] - started[(sha, run_id, name)]
        stats.rescue_wait_s.append(max(wait, 0) / 1e9)


def _current_name(
    row: dict[str, Any],
    current: dict[str, tuple[str, StepBase]],
    by_path: dict[str, StepBase],
    old_names: set[str],
) -> str | None:
    """The current step a span belongs to: the same name, or a renamed step at the same
    yaml_path (same kind, and a name the span's version did not have)."""
    name: str = row["step_name"]
    if name in current:
        return name
    step = by_path.get(row["yaml_path"] or "")
    if step is not None and step.kind == row["kind"] and step.name not in old_names:
        return step.name
    return None
