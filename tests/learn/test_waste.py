"""Findings the per-step rules missed, on planted telemetry: a long system prompt for
tiny answers, a loop whose exit never holds, the same agent asked the same thing twice, a
primary its fallback keeps rescuing; and money and counts that read like a person wrote
them, everywhere they are shown."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.store import RunStore
from flujo.learn.opportunities import find_opportunities
from flujo.learn.proposal import proposal_for
from flujo.learn.roi import estimate
from flujo.learn.suggest import SuggestReport, suggest
from flujo.learn.telemetry_view import load_view
from flujo.spec.edit import apply_patch
from flujo.spec.model import Pipeline
from tests.support.learn import PLANTED, SEEDS, Profile, Telemetry, record

SCIENTIFIC = re.compile(r"\d(\.\d+)?e[-+]\d", re.IGNORECASE)


def planted(name: str, tmp_path: Path, telemetry: Telemetry | None = None) -> tuple[Path, RunStore]:
    path = SEEDS / f"{name}.yaml"
    store = RunStore(tmp_path / f"{name}.db")
    record(store, Pipeline.from_yaml(path), telemetry or PLANTED[name][0])
    return path, store


def kinds(path: Path, store: RunStore) -> set[str]:
    pipeline = Pipeline.from_yaml(path)
    return {o.kind for o in find_opportunities(pipeline, load_view(store, pipeline))}


def report(path: Path, store: RunStore) -> SuggestReport:
    return asyncio.run(suggest(path, store))


# -- a long system prompt for tiny answers ----------------------------------------------------


def test_a_long_prompt_for_tiny_answers_is_worth_a_look(tmp_path: Path) -> None:
    path, store = planted("long_prompt", tmp_path)
    pipeline = Pipeline.from_yaml(path)
    view = load_view(store, pipeline)
    (finding,) = find_opportunities(pipeline, view)
    assert finding.kind == "long_prompt" and finding.yaml_path == "agents.tagger.system_prompt"
    assert "~1,310 tokens (estimated from its 5,242 characters)" in finding.why
    assert "p95 3 tokens over 40 replies" in finding.why and "prompt caching" in finding.why
    assert (finding.evidence["events"], finding.evidence["sample_size"]) == (40, 40)
    assert estimate(finding, view).usd_per_run > 0
    (dropped,) = report(path, store).dropped  # the offline agent writes no prose
    assert dropped.reason == "needs_writer" and "--agent openai:MODEL" in dropped.detail
    result = CliRunner().invoke(cli, ["suggest", str(path), "--store", str(store.path)])
    assert "Worth a look (no rule-based patch):" in result.stdout
    assert "long_prompt at agents.tagger.system_prompt: agent 'tagger' sends" in result.stdout


@pytest.mark.parametrize("change", ["long answers", "short prompt"])
def test_no_long_prompt_finding_when_answers_are_long_or_the_prompt_short(
    tmp_path: Path, change: str
) -> None:
    telemetry, _ = PLANTED["long_prompt"]
    if change == "long answers":
        profiles = {"tag": replace(telemetry.profiles["tag"], output_tokens=300)}
        path, store = planted("long_prompt", tmp_path, replace(telemetry, profiles=profiles))
    else:
        text = (SEEDS / "long_prompt.yaml").read_text(encoding="utf-8")
        path = tmp_path / "short.yaml"
        path.write_text(re.sub(r"(?m)^      \d+\..*\n", "", text), encoding="utf-8")
        store = RunStore(tmp_path / "short.db")
        record(store, Pipeline.from_yaml(path), telemetry)
    assert "long_prompt" not in kinds(path, store)


# -- a loop that always runs to max_loops ---------------------------------------------------


def test_a_loop_that_always_runs_to_max_loops(tmp_path: Path) -> None:
    path, store = planted("loop_max", tmp_path)
    pipeline = Pipeline.from_yaml(path)
    (finding,) = find_opportunities(pipeline, load_view(store, pipeline))
    assert finding.kind == "loop_at_max" and finding.yaml_path == "steps[0]"
    assert "ran to max_loops (4) in all 40 runs" in finding.why
    assert "its exit (output == 'done') never held" in finding.why
    assert (finding.evidence["events"], finding.evidence["sample_size"]) == (40, 40)
    assert [d.reason for d in report(path, store).dropped] == ["needs_writer"]


def test_a_loop_that_exits_early_in_some_runs_is_fine(tmp_path: Path) -> None:
    telemetry, _ = PLANTED["loop_max"]
    path, store = planted("loop_max", tmp_path)
    early = {**telemetry.profiles, "refine": Profile(0.5, kind="loop")}
    record(store, Pipeline.from_yaml(path), replace(telemetry, runs=5, profiles=early), seed=3)
    assert "loop_at_max" not in kinds(path, store)


def test_a_changed_loop_starts_its_count_again(tmp_path: Path) -> None:
    _, store = planted("loop_max", tmp_path)
    changed = tmp_path / "loop.yaml"
    text = (SEEDS / "loop_max.yaml").read_text(encoding="utf-8")
    changed.write_text(text.replace("output == 'done'", "output == 'DONE'"), encoding="utf-8")
    assert "loop_at_max" not in kinds(changed, store)  # no run of the new exit yet


# -- the same agent asked the same thing twice ------------------------------------------------


def test_the_same_agent_asked_the_same_thing_twice_reuses_the_first_answer(
    tmp_path: Path,
) -> None:
    path, store = planted("repeated_call", tmp_path)
    (item,) = report(path, store).suggestions
    assert (item.kind, item.yaml_path) == ("repeated_call", "steps[2]")
    assert "'summary_again' asks agent 'summarizer' the same as 'summary'" in item.why
    assert item.patch == [
        {
            "op": "replace",
            "path": "/steps/2",
            "value": {
                "name": "summary_again",
                "uses": "passthrough",
                "input": "{{ steps.summary.output }}",
            },
        }
    ]
    assert item.verification.tests_passed == 1 and item.estimate.usd_per_run > 0


def test_the_same_agent_on_another_input_is_not_a_repeat(tmp_path: Path) -> None:
    text = (SEEDS / "repeated_call.yaml").read_text(encoding="utf-8")
    path = tmp_path / "other.yaml"
    path.write_text(
        text.replace(
            '  - name: summary_again\n    uses: agents.summarizer\n    input: "{{ input.text }}"',
            '  - name: summary_again\n    uses: agents.summarizer\n    input: "{{ input.other }}"',
        ),
        encoding="utf-8",
    )
    store = RunStore(tmp_path / "other.db")
    record(store, Pipeline.from_yaml(path), PLANTED["repeated_call"][0])
    assert "repeated_call" not in kinds(path, store)


# -- a primary that keeps failing while its fallback answers ----------------------------------


def test_a_primary_its_fallback_keeps_rescuing_is_replaced_by_it_never_retried(
    tmp_path: Path,
) -> None:
    path, store = planted("fallback", tmp_path)
    found = report(path, store)
    (item,) = found.suggestions
    assert (item.kind, item.yaml_path) == ("fallback_rescues", "steps[0]")
    assert "failed for good in 40 of 40 runs (120 failed attempts: provider 120; 120 were " in (
        item.why
    )
    assert "4xx answers no retry changes" in item.why
    assert "fallback 'answer_backup' answered in 40 of them" in item.why
    assert item.patch == [
        {"op": "replace", "path": "/steps/0/uses", "value": "agents.backup"},
        {"op": "remove", "path": "/steps/0/fallback"},
    ]
    assert item.estimate.latency_s_per_run < 0  # the wait for the failing attempts goes
    assert "frequent_retries" not in {d.kind for d in found.dropped}  # a 404: never retried
    assert item.evidence["latency_p50_s"] is None  # no attempt succeeded: not measured, not 0
    before = path.read_text(encoding="utf-8")
    body = proposal_for(item, before, apply_patch(before, item.patch)).body
    assert "| Attempts of the step | 120 over 40 runs |" in body
    assert "Latency of the step" not in body


def test_a_fallback_that_rarely_answers_for_its_primary_is_fine(tmp_path: Path) -> None:
    telemetry, _ = PLANTED["fallback"]
    profiles = dict(telemetry.profiles)
    profiles["answer"] = replace(profiles["answer"], fail_for_good_every=4)  # 10 of 40 runs
    path, store = planted("fallback", tmp_path, replace(telemetry, profiles=profiles))
    assert kinds(path, store) == set()


# -- figures that read like a person wrote them ----------------------------------------------


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_money_and_counts_read_plainly_in_every_report_and_body(tmp_path: Path, name: str) -> None:
    path, store = planted(name, tmp_path)
    runner = CliRunner()
    shown = runner.invoke(cli, ["suggest", str(path), "--store", str(store.path)]).stdout
    found = report(path, store)
    before = path.read_text(encoding="utf-8")
    bodies = [proposal_for(s, before, apply_patch(before, s.patch)).body for s in found.suggestions]
    for text in (shown, *bodies):
        assert not SCIENTIFIC.search(text), text
        assert "$0.0000" not in text and "\\$0.0000" not in text
    for item, body in zip(found.suggestions, bodies, strict=True):  # labels say what they count
        assert not re.search(r"^\| Attempts \| \d+ \|$", body, re.MULTILINE)
        if "attempts" in item.evidence:
            row = r"^\| Attempts of the step \| [\d,]+ over [\d,]+ runs? \|$"
            assert re.search(row, body, re.M)
        assert re.search(r"^\| Events behind the finding \| [\d,]+ of [\d,]+ \w+ \|$", body, re.M)


def test_the_json_report_keeps_numbers_as_numbers(tmp_path: Path) -> None:
    path, store = planted("repeated_call", tmp_path)
    out = CliRunner().invoke(cli, ["suggest", str(path), "--store", str(store.path), "--json"])
    (item,) = json.loads(out.stdout)["suggestions"]
    assert isinstance(item["savings"]["usd_per_run"], float)
    assert item["evidence"]["sample_unit"] == "runs"
