"""The fork server that isolated checks start from (`flujo.bot.isolated`, `flujo.bot.isolation`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flujo.bot.commit_report import CommitReport
from tests.support.bot import GOOD

FORK_SERVER = """
import gc, json
import flujo.bot.isolated  # what the fork server preloads
print(json.dumps({"walked": len(gc.get_objects()), "frozen": gc.get_freeze_count()}))
"""


def test_a_child_never_walks_the_objects_it_inherits_from_the_fork_server() -> None:
    # Were they visible, a child whose inherited collection counters call for a full
    # collection would walk (and copy the pages of) the whole warm heap: 20-30 ms of CPU
    # per child, on some checkouts and not others.
    done = subprocess.run(
        [sys.executable, "-c", FORK_SERVER], capture_output=True, text=True, check=True
    )
    heap = json.loads(done.stdout)
    assert heap["frozen"] > 20_000  # the modules and the warm-up's caches
    assert heap["walked"] < 1_000  # what a child's collection still walks


async def checked(
    root: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], CommitReport, CommitReport]:
    """The isolated tasks that checking a commit of `files` runs, its report isolated, and
    its report in this process."""
    import flujo.bot.isolation as isolation
    from flujo.bot.evaluate import CONFIG_PATHS, InProcess
    from flujo.spec.registry import StepRegistry

    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    tasks: list[str] = []
    original = isolation.run_isolated

    async def spy(task: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        tasks.append(task)
        return await original(task, payload, **kwargs)

    monkeypatch.setattr(isolation, "run_isolated", spy)
    listing = sorted(files)
    reports = []
    for evaluator in (isolation.Isolated(), InProcess(StepRegistry())):
        plan = await evaluator.plan(root, [p for p in listing if p in CONFIG_PATHS], listing)
        await evaluator.references(root, plan.wanted)
        reports.append(await evaluator.evaluate(root, listing, {}))
    return tasks, reports[0], reports[1]


def summary(report: CommitReport) -> tuple[object, ...]:
    return (
        report.config_path,
        [d.message for d in report.config_problems],
        report.patterns,
        report.lookalikes,
        report.code_scanning,
        [(s.path, s.valid) for s in report.specs],
    )


async def test_a_commit_without_a_config_starts_one_child_per_spec_and_no_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its config is the defaults, found from file names: no file of the repository is
    # read outside a child, and each child costs the commit milliseconds.
    tasks, isolated, local = await checked(
        tmp_path, {"flujo/greeter.yml": GOOD, "README.md": "hi\n"}, monkeypatch
    )
    assert tasks == ["evaluate_spec"]
    assert summary(isolated) == summary(local)
    assert isolated.specs[0].valid and isolated.patterns


async def test_a_config_or_a_lookalike_is_read_in_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {".github/flujo.yml": "specs: ['flows/*.yml']\ncode_scanning: true\n"}
    tasks, isolated, local = await checked(
        tmp_path / "config", {**config, "flows/greeter.yml": GOOD}, monkeypatch
    )
    assert tasks == ["plan", "config", "evaluate_spec"]
    assert summary(isolated) == summary(local) and isolated.code_scanning
    tasks, isolated, local = await checked(
        tmp_path / "lookalike", {"pipelines/greeter.yml": GOOD}, monkeypatch
    )
    assert tasks == ["config"]  # no spec by the default globs: are there specs elsewhere?
    assert summary(isolated) == summary(local)
    assert isolated.lookalikes == ["pipelines/greeter.yml"]
