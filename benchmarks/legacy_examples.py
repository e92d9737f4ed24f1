"""Load, validate and run every blueprint of flujo 0.x's examples/ folder here.

    python benchmarks/legacy_examples.py PATH/TO/flujo-0.6.11 [--verbose]

PATH is a checkout of the open-source flujo framework (0.6.11). Its examples/ folder is
copied into a scratch repository; nothing of it is kept. Files that are not blueprints
(no `steps:`, e.g. `skills.yaml` catalogs and context data) are skipped. Every callable
a blueprint names in user code is replaced by a stub (`fn(value, *args) -> value`),
generated in a scratch folder and allow-listed: the examples' own Python is never
imported. Models are the built-in fake server; hitl steps get a fixed answer.

Each file is reported as: `run` (validated and the run succeeded), `validated` (no
errors, but the run failed: the reason is printed), `invalid` (errors, printed) or
`unloadable`.

Every file that runs is then migrated, through `flujo migrate`'s code path
(`flujo.spec.legacy.migrate.migrate`), next to itself in the scratch copy; the migrated
file is validated and run on the same fake model server with the same stubs and hitl
answers, and its outcome compared with the original's: status, final output, the steps
that ran (names, order, outputs) and their yaml_paths (a step's path may differ only where
the migration changed the structure, e.g. 0.x's `loop: {body: …}` written `body: …`, as
the conversion maps it; those are listed). A line per file says `same`, `differs` (how),
`invalid`, `failed` (the migrated run failed) or `partial` (migrate kept steps in their
0.x form, exit 4).

The exit code is 0 when every blueprint validates and every migrated file behaves the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from flujo.engine.agents import OpenAIModels
from flujo.engine.fake_openai import FakeOpenAI
from flujo.engine.results import PipelineResult
from flujo.engine.runner import Runner
from flujo.spec.errors import SpecError
from flujo.spec.legacy.migrate import migrate
from flujo.spec.load import SKILLS_ALLOW_ENV, check, legacy_conversion
from flujo.spec.model import HitlStep
from flujo.spec.registry import StepRegistry
from flujo.spec.source import parse

NOT_ALLOWED = re.compile(r"'([A-Za-z_][\w.]*:[A-Za-z_][\w.]*)' is not in the skill allow-list")


class Approver:
    """A person who answers every hitl question the same way."""

    async def answer(self, step: HitlStep, question: str) -> Any:
        return instance(step.input_schema or {})


def instance(schema: dict[str, Any]) -> Any:
    """A small value that fits a (simple) JSON Schema."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: instance(properties.get(key, {})) for key in schema.get("required", [])}
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 1
    if kind == "array":
        return []
    return "yes"


def stub(root: Path, reference: str) -> None:
    module, _, attr = reference.partition(":")
    parts = module.split(".")
    folder = root.joinpath(*parts[:-1])
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(parts) - 1):
        init = root.joinpath(*parts[: i + 1], "__init__.py")
        if not init.exists():
            init.write_text("", encoding="utf-8")
    target = folder / f"{parts[-1]}.py"
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    name = attr.split(".")[0]
    if f"def {name}(" not in text:
        text += f"\n\ndef {name}(value=None, *args, **kwargs):\n    return value\n"
        target.write_text(text, encoding="utf-8")


def blueprints(examples: Path) -> list[Path]:
    found = []
    for path in sorted(examples.rglob("*.y*ml")):
        try:
            data = parse(path.read_bytes(), str(path)).data
        except Exception:
            found.append(path)  # reported as unloadable
            continue
        if isinstance(data, dict) and "steps" in data:
            found.append(path)
    return found


async def main(source: Path, verbose: bool) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="flujo-0x-examples-"))
    try:
        repo = scratch / "repo"
        shutil.copytree(source / "examples", repo / "examples")
        (repo / ".git").mkdir()
        stubs = scratch / "stubs"
        stubs.mkdir()
        sys.path.insert(0, str(stubs))
        files = blueprints(repo / "examples")
        allow: set[str] = set()
        for path in files:  # first pass: which user callables the blueprints name
            try:
                _, diagnostics = check(path, registry=StepRegistry(entry_points=False))
            except Exception:
                continue
            for d in diagnostics:
                match = NOT_ALLOWED.search(d.message)
                if match is not None:
                    allow.add(match.group(1))
        for reference in sorted(allow):
            stub(stubs, reference)
        registry = StepRegistry(allow=sorted(allow), entry_points=False)
        os.environ[SKILLS_ALLOW_ENV] = json.dumps(sorted(allow))  # what `flujo migrate` sees
        counts = {"run": 0, "validated": 0, "invalid": 0, "unloadable": 0}
        ran: list[tuple[Path, PipelineResult]] = []
        async with FakeOpenAI() as server:
            models = OpenAIModels(base_url=server.base_url, api_key="fake")
            for path in files:
                name = path.relative_to(repo / "examples")
                try:
                    pipeline, diagnostics = check(path, registry=registry)
                except Exception as exc:
                    counts["unloadable"] += 1
                    print(f"unloadable {name}: {exc}")
                    continue
                errors = [d for d in diagnostics if d.severity == "error"]
                if pipeline is None or errors:
                    counts["invalid"] += 1
                    print(f"invalid    {name}")
                    for d in errors:
                        print(f"    {d.line}: {d.message}")
                    continue
                runner = Runner(pipeline, models=models, registry=registry, human=Approver())
                result = await runner.run("Make a pipeline that says hello")
                if result.success:
                    counts["run"] += 1
                    ran.append((path, result))
                    if verbose:
                        print(f"run        {name}")
                else:
                    counts["validated"] += 1
                    print(f"validated  {name}: the run failed: {result.error}")
            print()
            outcomes = [  # the same server, stubs and answers as the originals had
                await migrated(path, result, repo / "examples", models, registry)
                for path, result in ran
            ]
        total = len(files)
        loaded = total - counts["unloadable"]
        valid = counts["run"] + counts["validated"]
        print(
            f"\n{total} blueprints: {loaded} load, {valid} validate, {counts['run']} run "
            f"({len(allow)} user callables stubbed)"
        )
        tally: dict[str, int] = {}
        for outcome in outcomes:
            tally[outcome] = tally.get(outcome, 0) + 1
        order = ("same", "differs", "invalid", "failed", "partial", "not migrated")
        parts = ", ".join(f"{tally[k]} {LABELS[k]}" for k in order if tally.get(k))
        print(f"{counts['run']} run; {len(outcomes)} migrated: {parts}")
        return 0 if valid == total and tally.get("same", 0) == len(outcomes) else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


LABELS = {
    "same": "same behaviour",
    "differs": "behave differently",
    "invalid": "do not validate",
    "failed": "fail to run",
    "partial": "kept partly in the 0.x form",
    "not migrated": "not migrated",
}


async def migrated(
    path: Path, original: PipelineResult, examples: Path, models: Any, registry: StepRegistry
) -> str:
    """Migrate `path` next to itself, run it as the original ran and print how it compares."""
    name = path.relative_to(examples)
    try:
        migration = migrate(path)
    except (SpecError, OSError) as exc:
        print(f"not migrated {name}: {exc}")
        return "not migrated"
    target = path.with_name(f"{path.stem}.migrated{path.suffix}")
    target.write_text(migration.text, encoding="utf-8")
    if migration.kept:
        print(f"partial  {name}: `# flujo migrate: kept` ({len(migration.kept)} steps, exit 4)")
        return "partial"
    pipeline, diagnostics = check(target, registry=registry)
    errors = [d for d in diagnostics if d.severity == "error"]
    if pipeline is None or errors:
        print(f"invalid  {name} (migrated)")
        for d in errors:
            print(f"    {d.line}: {d.message}")
        return "invalid"
    runner = Runner(pipeline, models=models, registry=registry, human=Approver())
    result = await runner.run("Make a pipeline that says hello")
    if not result.success:
        print(f"failed   {name} (migrated): {result.error}")
        return "failed"
    differences = compare(original, result)
    conversion = legacy_conversion(parse(path.read_bytes(), str(path)), path)
    step_paths = conversion.step_paths if conversion is not None else {}
    moved = []
    for step in original.steps.values():
        after = result.steps.get(step.name)
        if after is None or after.yaml_path == step.yaml_path:
            continue
        change = f"{step.name}: {step.yaml_path} -> {after.yaml_path}"
        if step_paths.get(after.yaml_path) == step.yaml_path:
            moved.append(change)  # where the migration changed the structure (`loop: body:`)
        else:
            differences.append(f"yaml_path {change}")
    note = f" (yaml_paths moved with the structure: {'; '.join(moved)})" if moved else ""
    if differences:
        print(f"differs  {name}: {'; '.join(differences)}{note}")
        return "differs"
    print(f"same     {name}{note}")
    return "same"


def compare(before: PipelineResult, after: PipelineResult) -> list[str]:
    """How two runs' outcomes differ (status, final output, steps and their outputs)."""
    found = []
    if before.status != after.status:
        found.append(f"status {before.status} -> {after.status}")
    if before.output != after.output:
        found.append(f"output {short(before.output)} -> {short(after.output)}")
    if list(before.steps) != list(after.steps):
        found.append(f"steps {list(before.steps)} -> {list(after.steps)}")
    for step in before.steps.values():
        other = after.steps.get(step.name)
        if other is not None and other.output != step.output:
            found.append(f"{step.name} output {short(step.output)} -> {short(other.output)}")
    return found


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a checkout of flujo 0.6.11")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.source, args.verbose)))
