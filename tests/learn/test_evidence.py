"""The rule of evidence in the learning loop: only live runs that no test started count;
failures of the harness, the input, a usage limit or a permanent 4xx never ask for
retries; evidence at a yaml_path comes from spec versions where it is as now; confidence
grows with events, not runs; a finding must be worth something."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flujo.cli import cli
from flujo.engine.store import RunStore
from flujo.learn.opportunities import find_opportunities
from flujo.learn.roi import HIGH_CONFIDENCE, confidence, estimate
from flujo.learn.suggest import suggest
from flujo.learn.telemetry_view import load_view
from flujo.spec.model import Pipeline
from tests.support.learn import PLANTED, SEEDS, Profile, Telemetry, record
from tests.support.specs import spec

RETRY_TIMEOUT_KINDS = {"frequent_retries", "frequent_timeouts", "flaky_validator", "loose_timeout"}
CASSETTE_MISS = "no recording of POST /v1/chat/completions for model gpt-4o in cassette"
MISSING_KEY = "input template: UndefinedError: 'dict object' has no attribute 'text'"
NOT_FOUND = "NotFoundError: Error code: 404 - {'error': {'message': 'model not found'}}"
LIMIT = "usage limit total_tokens = 500 crossed at step 'fetch' (reached 620)"
CONNECTION = "APIConnectionError: Connection error."

RETRIES = spec(
    """
    version: "1"
    name: fetching
    agents:
      fetcher: {model: "openai:gpt-4o-mini"}
    steps:
      - name: fetch
        uses: agents.fetcher
        input: "{{ input.url }}"
        config: {max_retries: 2}
    """
)


def found(store: RunStore, pipeline: Pipeline, **options: object) -> set[tuple[str, str]]:
    view = load_view(store, pipeline, **options)  # type: ignore[arg-type]
    return {(o.kind, o.yaml_path) for o in find_opportunities(pipeline, view)}


def suggested_by(path: Path, store: RunStore) -> set[tuple[str, str]]:
    report = asyncio.run(suggest(path, store, verify_tests=False))
    return {(s.kind, s.yaml_path) for s in report.suggestions}


def retry_timeout(found_set: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {f for f in found_set if f[0] in RETRY_TIMEOUT_KINDS}


def failing_at(pipeline: Pipeline, step: int, cause: str) -> Telemetry:
    """One run whose steps before `step` succeed and `step` fails at once for `cause`."""
    names = [s.name for _, s in pipeline.walk()]
    error = CASSETTE_MISS if cause == "harness" else MISSING_KEY
    profiles = {name: Profile(0.3) for name in names[:step]}
    profiles[names[step]] = Profile(
        0.01, fail_for_good_every=1, attempts=1, error=error, cause=cause
    )
    return Telemetry(runs=1, profiles=profiles)


# -- which runs count ---------------------------------------------------------------------


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(
        ["retries", "timeouts", "flaky_validator", "cheaper_model", "clean", "fallback"]
    ),
    added=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["harness", "input"]), st.booleans()),
        min_size=1,
        max_size=6,
    ),
)
def test_harness_and_input_failures_never_change_retry_or_timeout_findings(
    seed: str, added: list[tuple[int, str, bool]]
) -> None:
    telemetry, _ = PLANTED[seed]
    path = SEEDS / f"{seed}.yaml"
    pipeline = Pipeline.from_yaml(path)
    store = RunStore(":memory:")
    record(store, pipeline, telemetry)
    before = retry_timeout(found(store, pipeline))
    suggested = retry_timeout(suggested_by(path, store))
    steps = len(list(pipeline.walk()))
    for n, (step, cause, recorded_cause) in enumerate(added):
        extra = failing_at(pipeline, step % steps, cause)
        if not recorded_cause:  # as in a store of schema 2: inferred from the error text
            extra.profiles = {k: replace(p, cause=None) for k, p in extra.profiles.items()}
        record(store, pipeline, extra, seed=100 + n, end=1_000_000.0 + n)
    assert retry_timeout(found(store, pipeline)) == before
    assert retry_timeout(suggested_by(path, store)) == suggested
    store.close()


def test_a_cassette_miss_neither_removes_a_cheaper_model_nor_asks_for_retries(
    tmp_path: Path,
) -> None:
    telemetry, planted = PLANTED["cheaper_model"]
    pipeline = Pipeline.from_yaml(SEEDS / "cheaper_model.yaml")
    store = RunStore(tmp_path / "runs.db")
    record(store, pipeline, replace(telemetry, runs=57))
    record(store, pipeline, failing_at(pipeline, 0, "harness"), seed=9)
    assert found(store, pipeline) == planted
    assert load_view(store, pipeline).not_evidence_runs == 1


@pytest.mark.parametrize(
    ("error", "what"),
    [(LIMIT, "a usage-limit stop"), (NOT_FOUND, "a model the provider does not have")],
)
def test_limits_and_permanent_4xx_answers_ask_for_no_retry(
    tmp_path: Path, error: str, what: str
) -> None:
    pipeline = Pipeline.from_yaml(RETRIES)
    store = RunStore(tmp_path / "runs.db")
    always = error == NOT_FOUND
    profile = Profile(
        0.3, 0.0001, 20, 200, "gpt-4o-mini", error=error,
        fail_for_good_every=1 if always else 3, attempts=3 if always else 1,
    )  # fmt: skip
    usage = Telemetry(runs=40, usage_limit_every=0 if always else 3, profiles={"fetch": profile})
    record(store, pipeline, usage)
    assert not {k for k, _ in found(store, pipeline)} & {"frequent_retries"}, what
    stats = load_view(store, pipeline).steps["fetch"]
    assert stats.causes["limit" if error == LIMIT else "provider"] > 0
    assert stats.transient_errors == 0


def test_transient_provider_failures_still_ask_for_a_retry(tmp_path: Path) -> None:
    pipeline = Pipeline.from_yaml(RETRIES)
    store = RunStore(tmp_path / "runs.db")
    profile = Profile(0.3, 0.0001, 20, 200, "gpt-4o-mini", 4, CONNECTION, fail_for_good_every=10)
    record(store, pipeline, Telemetry(profiles={"fetch": profile}))
    assert ("frequent_retries", "steps[0]") in found(store, pipeline)


# -- windows and confidence ---------------------------------------------------------------


def one_failure_in(runs: int, attempts: int) -> Telemetry:
    profile = Profile(
        0.3, 0.0001, 20, 200, "gpt-4o-mini", error=CONNECTION,
        fail_for_good_every=runs, attempts=attempts,
    )  # fmt: skip
    return Telemetry(runs=runs, profiles={"fetch": profile})


def test_one_failure_in_59_runs_is_never_high_confidence(tmp_path: Path) -> None:
    pipeline = Pipeline.from_yaml(RETRIES)
    store = RunStore(tmp_path / "runs.db")
    record(store, pipeline, one_failure_in(59, attempts=1))
    view = load_view(store, pipeline)
    (finding,) = find_opportunities(pipeline, view)
    assert finding.kind == "frequent_retries"
    assert "1 failure in 59 runs" in finding.why and "after 1 attempt" in finding.why
    assert "2 retries" not in finding.why  # what the runs did, not what the spec says now
    assert (finding.evidence["events"], finding.evidence["sample_size"]) == (1, 59)
    roi = estimate(finding, view)
    assert roi.confidence_label != "high" and roi.confidence < 0.2
    for runs in (1, 2, 10, 59, 1000, 100_000):
        assert confidence(1, runs)[1] != "high"
    assert confidence(40, 40)[1] == "high" and confidence(40, 40)[0] >= HIGH_CONFIDENCE


async def test_a_merged_retry_change_starts_the_count_again(tmp_path: Path) -> None:
    """retries 2 -> 3 merged: the old failure, recorded at 2, asks for no 3 -> 4."""
    old = Pipeline.from_yaml(RETRIES)
    store = RunStore(tmp_path / "runs.db")
    record(store, old, one_failure_in(20, attempts=3), end=1_000_000.0)
    assert ("frequent_retries", "steps[0]") in found(store, old)
    path = tmp_path / "fetching.yaml"
    path.write_text(RETRIES.replace("max_retries: 2", "max_retries: 3"))
    new = Pipeline.from_yaml(path)
    assert new.spec_sha256 != old.spec_sha256
    clean = Profile(0.3, 0.0001, 20, 200, "gpt-4o-mini")
    record(store, new, Telemetry(runs=10, profiles={"fetch": clean}), seed=8)
    assert found(store, new) == set()
    view = load_view(store, new)
    assert view.runs == 30 and view.window("steps[0]") == [new.spec_sha256]
    assert view.window_stats("fetch", "steps[0]").runs == 10  # type: ignore[union-attr]
    report = await suggest(path, store)
    assert [s.kind for s in report.suggestions] == []


def test_a_change_elsewhere_keeps_the_evidence(tmp_path: Path) -> None:
    old = Pipeline.from_yaml(RETRIES)
    store = RunStore(tmp_path / "runs.db")
    profile = Profile(0.3, 0.0001, 20, 200, "gpt-4o-mini", 4, CONNECTION, fail_for_good_every=10)
    record(store, old, Telemetry(profiles={"fetch": profile}))
    renamed = Pipeline.from_yaml(
        RETRIES.replace("name: fetching", "name: fetching\ndescription: x")
    )
    record(store, renamed, Telemetry(runs=5, profiles={"fetch": Profile(0.3)}), seed=3)
    view = load_view(store, renamed)
    assert sorted(view.window("steps[0]")) == sorted({old.spec_sha256, renamed.spec_sha256})
    assert ("frequent_retries", "steps[0]") in found(store, renamed)


# -- worth something ------------------------------------------------------------------------


def test_no_max_tokens_without_a_reply_above_the_cap(tmp_path: Path) -> None:
    telemetry, planted = PLANTED["expensive"]
    pipeline = Pipeline.from_yaml(SEEDS / "expensive.yaml")
    store = RunStore(tmp_path / "runs.db")
    steady = {k: replace(p, long_every=0) for k, p in telemetry.profiles.items()}
    record(store, pipeline, replace(telemetry, profiles=steady))
    assert found(store, pipeline) == set()
    store = RunStore(tmp_path / "runaway.db")
    record(store, pipeline, telemetry)
    view = load_view(store, pipeline)
    (finding,) = find_opportunities(pipeline, view)
    assert (finding.kind, finding.yaml_path) in planted
    assert finding.facts["usd_per_run"] > 0 and estimate(finding, view).usd_per_run > 0


# -- the command line: which runs count -----------------------------------------------------


def suggest_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["suggest", *args])
    return result.exit_code, result.stdout


@pytest.mark.parametrize(("mode", "origin"), [("fake", "cli"), ("replay", "cli"), ("live", "test")])
def test_fake_replay_and_test_runs_count_only_when_included(
    tmp_path: Path, mode: str, origin: str
) -> None:
    telemetry, planted = PLANTED["cheaper_model"]
    seed = str(SEEDS / "cheaper_model.yaml")
    db = tmp_path / "runs.db"
    store = RunStore(db)
    record(store, Pipeline.from_yaml(seed), replace(telemetry, mode=mode, origin=origin))
    store.close()
    why = f"mode {mode}" if origin == "cli" else f"origin {origin}"
    code, out = suggest_cli(seed, "--store", str(db))
    assert code == 0 and ": 0 runs" in out
    assert "Evidence: live runs" in out and f"not counted: 40 {why}" in out
    assert "no recorded run counts as evidence" in out
    code, out = suggest_cli(seed, "--store", str(db), "--json")
    report = json.loads(out)
    assert report["evidence_modes"] == ["live"] and report["suggestions"] == []
    assert report["telemetry"]["excluded_runs"] == {why: 40}
    widen = mode if origin == "cli" else origin
    code, out = suggest_cli(seed, "--store", str(db), "--json", "--include", widen)
    report = json.loads(out)
    assert {(s["kind"], s["yaml_path"]) for s in report["suggestions"]} == planted
    assert report["telemetry"]["runs"] == 40 and report["telemetry"]["excluded_runs"] == {}
    assert set(report["evidence_modes"]) == ({"live", mode} if origin == "cli" else {"live"})


def test_an_unknown_include_is_a_usage_error(tmp_path: Path) -> None:
    code, _ = suggest_cli(str(SEEDS / "clean.yaml"), "--include", "prod")
    assert code == 2


def test_policy_check_judges_live_runs_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(RETRIES + "policies:\n  - {id: cheap, assert: 'result.total_cost_usd < 1'}\n")
    db = tmp_path / "runs.db"
    store = RunStore(db)
    fake = Telemetry(runs=3, mode="fake", profiles={"fetch": Profile(0.3)})
    record(store, Pipeline.from_yaml(path), fake)
    store.close()
    runner = CliRunner()
    judged = runner.invoke(cli, ["policy", "check", str(path), "--store", str(db)])
    assert judged.exit_code == 2 and "no recorded live runs" in judged.stderr
    judged = runner.invoke(
        cli, ["policy", "check", str(path), "--store", str(db), "--include", "fake"]
    )
    assert judged.exit_code == 0 and judged.stdout.startswith("3 recorded runs")
