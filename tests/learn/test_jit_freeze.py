"""Learning from JIT: when a jit step keeps making the same plan, `flujo suggest` proposes
writing the plan into the spec as ordinary steps, with the runs it rests on."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.cassette import cassette_folder
from flujo.engine.session import SessionOptions, run_many
from flujo.engine.store import RunStore
from flujo.learn.jit_freeze import RECENT_RUNS, builder_savings, stable_plan
from flujo.learn.opportunities import find_opportunities
from flujo.learn.telemetry_view import JitRun, load_view
from flujo.spec.edit import apply_patch
from flujo.spec.load import check
from flujo.spec.model import Pipeline
from tests.support.specs import ROOT

SALES = ROOT / "examples" / "sales_question.yaml"
QUESTIONS = [
    {"question": q}
    for q in (
        "How many customers are there?",
        "Total order value per country.",
        "The ten largest orders.",
        "Customers in France.",
    )
]


def record_runs(spec: Path, store: Path, sessions: int, **options: Any) -> list[Any]:
    """`sessions` processes' worth of runs of `spec` (each builds its plan once)."""
    results = []
    for _ in range(sessions):
        settings = SessionOptions(store=store, export=False, **({"fake": True} | options))
        results += asyncio.run(run_many(Pipeline.from_yaml(spec), QUESTIONS, settings))
    return results


def suggest_json(spec: Path, store: Path, *include: str) -> dict[str, Any]:
    args = ["suggest", str(spec), "--store", str(store), "--json"]
    result = CliRunner().invoke(cli, args + [a for w in include for a in ("--include", w)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_stable_plan_is_proposed_as_steps_that_validate_run_and_answer_the_same(
    tmp_path: Path,
) -> None:
    spec, store = tmp_path / "sales_question.yaml", tmp_path / "runs.db"
    shutil.copy(SALES, spec)
    shutil.copytree(SALES.parent / "cassettes" / "sales_question", cassette_folder(spec))
    before = record_runs(spec, store, sessions=3)
    assert all(r.success for r in before)

    ignored = suggest_json(spec, store)  # fake runs are never production evidence...
    assert ignored["telemetry"]["runs"] == 0 and ignored["suggestions"] == []
    assert ignored["telemetry"]["excluded_runs"] == {"mode fake": 12}

    report = suggest_json(spec, store, "fake")  # ...unless asked for, and then it says so
    (suggestion,) = [s for s in report["suggestions"] if s["kind"] == "stable_jit_plan"]
    assert suggestion["yaml_path"] == "steps[2]" and suggestion["risk"] == "high"
    evidence = suggestion["evidence"]
    assert (evidence["events"], evidence["sample_size"]) == (12, 12)
    assert evidence["runs_by_mode"] == "12 fake" and evidence["builder"] == "offline"
    assert evidence["builder_runs_measured"] == 3  # one build per session, reused after
    assert evidence["builder_cost_usd_per_run"] == 0  # the offline builder calls no model
    assert evidence["builder_latency_s_per_run"] > 0
    assert (
        "ran the same plan (text_to_sql_mini → sql_validate) in 12 of its last 12 runs "
        "(runs: 12 on the fake model server, not production evidence)"
    ) in suggestion["why"]
    assert suggestion["savings"]["latency_s_per_run"] < 0
    verified = suggestion["verification"]  # the frozen steps make the calls the plan made:
    assert (verified["tests_mode"], verified["tests_passed"]) == ("replay", 1)
    assert verified["tests_exercising_change"] == 1  # answered by the plan's recordings

    text = spec.read_text()
    frozen = apply_patch(text, suggestion["patch"], file=spec.name)
    old, new = text.splitlines(), frozen.splitlines()
    start = old.index("  - name: query")
    assert new[:start] == old[:start]  # only the jit step's own lines change
    tail = old.index("  - name: explain")
    assert new[new.index("  - name: explain") :] == old[tail:]
    assert "    kind: jit" not in frozen and "uses: text_to_sql_mini" in frozen
    pipeline, diagnostics = check(frozen)
    assert pipeline is not None and diagnostics == []  # valid, not even a warning
    assert [s.name for s in pipeline.steps][2:4] == ["query-0-text_to_sql_mini", "query"]

    spec.write_text(frozen)
    after = record_runs(spec, tmp_path / "after.db", sessions=1)
    assert [r.output for r in after] == [r.output for r in before[: len(QUESTIONS)]]
    assert all(r.success for r in after) and "query" in after[0].steps


def test_replayed_plans_say_the_builders_cost_was_not_measured(tmp_path: Path) -> None:
    spec, store = tmp_path / "sales_question.yaml", tmp_path / "runs.db"
    shutil.copy(SALES, spec)
    cassette = tmp_path / "cassette"
    asyncio.run(
        run_many(
            Pipeline.from_yaml(spec),
            QUESTIONS,
            SessionOptions(fake=True, record=cassette, use_store=False, export=False),
        )
    )
    record_runs(spec, store, sessions=3, fake=False, replay=cassette)
    report = suggest_json(spec, store, "replay")
    (dropped,) = [d for d in report["dropped"] if d["kind"] == "stable_jit_plan"]
    assert dropped["reason"] == "no_value"  # nothing measured would get better
    runs = RunStore(store)
    pipeline = Pipeline.from_yaml(spec)
    (finding,) = find_opportunities(pipeline, load_view(runs, pipeline, include=("replay",)))
    runs.close()
    assert finding.evidence["runs_by_mode"] == "12 replay"
    assert finding.evidence["builder_cost_usd_per_run"] == "not measured"
    assert "replayed from recordings, not production evidence" in finding.why
    assert "what the builder spends per run was not measured" in finding.why


def plan(sha: str, at: int, source: str = "built", latency: float | None = 0.2) -> JitRun:
    return JitRun(at, sha, ("a", "b"), "offline", "live", source, 0.0, latency)


def test_a_plan_is_stable_only_in_most_of_the_latest_runs_and_the_last_one() -> None:
    assert stable_plan([plan("x", i) for i in range(9)]) is None  # too few runs
    mostly = [plan("x", i) for i in range(18)] + [plan("y", 18), plan("x", 19)]
    found = stable_plan(mostly)
    assert found is not None and (len(found[0]), found[1]) == (19, 20)
    assert stable_plan([*mostly, plan("y", 20)]) is None  # the latest run planned otherwise
    assert stable_plan([plan("y", i) for i in range(5)] + mostly[:17]) is None  # 17 of 22
    old = [plan("y", i) for i in range(30)]  # older runs than the latest 50 do not count
    latest = [plan("x", 100 + i) for i in range(RECENT_RUNS)]
    found = stable_plan(old + latest)
    assert found is not None and found[1] == RECENT_RUNS


def test_what_building_saves_is_spread_over_the_runs_that_shared_the_plan() -> None:
    runs = [plan("x", 0), plan("x", 1, "reused"), plan("x", 2, "reused"), plan("x", 3)]
    assert builder_savings(runs) == (0.0, 0.1, 2)
    assert builder_savings([plan("x", 0, "replayed")]) == (None, 0.0, 0)


def test_the_proposal_says_in_plain_words_what_is_frozen_and_its_tier_is_high(
    tmp_path: Path,
) -> None:
    from flujo.learn.proposal import proposal_for
    from flujo.learn.suggest import suggest
    from flujo.learn.tiers import decide_suggestion
    from flujo.spec.autoapply import AutoApply

    spec, store = tmp_path / "sales_question.yaml", tmp_path / "runs.db"
    shutil.copy(SALES, spec)
    record_runs(spec, store, sessions=3)
    runs = RunStore(store)
    report = asyncio.run(suggest(spec, runs, include=("fake",)))
    runs.close()
    (suggestion,) = [s for s in report.suggestions if s.kind == "stable_jit_plan"]
    before = spec.read_text()
    after = apply_patch(before, suggestion.patch)
    proposal = proposal_for(suggestion, before, after)
    assert proposal.title == (
        "flujo: Write the plan of jit step query into the spec as steps "
        "(text_to_sql_mini → sql_validate)"
    )
    assert "jit step `query` becomes 2 ordinary steps, in this order:" in proposal.body
    assert "**Turn** `query` from a jit step into an ordinary step" in proposal.body
    assert proposal.body.startswith("## Cuts \\~")
    assert " ms of planning per run with high risk to quality" in proposal.body
    decision = decide_suggestion(
        suggestion,
        before,
        after,
        settings=AutoApply(),
        spec_path=spec.name,
        default_branch_green=True,
    )
    assert decision.tier == "high" and not decision.automatic
    assert "writes a jit step's plan in as steps" in decision.reason
