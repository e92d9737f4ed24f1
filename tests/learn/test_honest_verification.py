"""Verification says, per embedded test, how the changed step ran: replayed from a
recording of the new configuration (exercised), answered by the fake server because the
recording lacks the new call, or mocked (wiring only)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flujo.engine.cassette import cassette_folder
from flujo.engine.embedded_tests import run_tests
from flujo.engine.fake_openai import FakeBehaviour, FakeOpenAI
from flujo.engine.session import SessionOptions, session
from flujo.learn.suggest import TestEvidence as Evidence
from flujo.learn.suggest import _Verifier
from flujo.spec.model import Pipeline

SPEC = """\
version: "1"
agents:
  classifier:
    model: openai:gpt-4o
    output_schema:
      type: object
      required: [label]
      properties:
        label: {type: string}
steps:
  - name: classify
    uses: agents.classifier
    input: "{{ input.ticket }}"
tests:
  - name: live answer
    input: {ticket: "ticket 1"}
    assertions: ["result.output.label != ''"]
  - name: mocked
    input: {ticket: "ticket 2"}
    mocks: {classify: {label: billing}}
    assertions: ["result.output.label == 'billing'"]
"""
MINI = SPEC.replace("openai:gpt-4o\n", "openai:gpt-4o-mini\n")
NANO = SPEC.replace("openai:gpt-4o\n", "openai:gpt-4.1-nano\n")


def test_replayed_fake_and_mocked_steps_are_told_apart(tmp_path: Path) -> None:
    spec = tmp_path / "triage.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    folder = cassette_folder(spec)

    async def record(text: str) -> None:
        pipeline = Pipeline.from_yaml(text)
        async with FakeOpenAI(FakeBehaviour()) as server:
            options = SessionOptions(
                base_url=server.base_url, record=folder, use_store=False, export=False
            )
            async with session(pipeline, options) as runner:
                await run_tests(pipeline, runner, spec="triage.yaml")

    asyncio.run(record(SPEC))
    asyncio.run(record(MINI))  # a recording of the new configuration
    verifier = _Verifier(spec, Pipeline.from_yaml(spec), None)

    mini = asyncio.run(verifier.verify(MINI))
    assert mini.changed_steps == ("classify",)
    by_name = {t.name: t for t in mini.tests}
    assert by_name["live answer"].changed_steps == (("classify", "replay"),)
    assert by_name["live answer"].evidence == "exercised"
    assert by_name["mocked"].evidence == "wiring only"
    assert mini.exercised == 1

    nano = asyncio.run(verifier.verify(NANO))  # never recorded: the fake server answers
    by_name = {t.name: t for t in nano.tests}
    assert by_name["live answer"].changed_steps == (("classify", "fake"),)
    assert nano.exercised == 0
    assert nano.to_dict()["tests"][0]["evidence"] == "wiring only"


def test_evidence_labels() -> None:
    assert Evidence("t", True, (("a", "not reached"),)).evidence == "not reached"
    assert Evidence("t", True, ()).evidence == "unchanged steps only"
    assert Evidence("t", True, (("a", "mocked"), ("b", "ran"))).evidence == "exercised"
