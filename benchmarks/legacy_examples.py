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
`unloadable`. The exit code is 0 when every blueprint validates.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from flujo.engine.agents import OpenAIModels
from flujo.engine.fake_openai import FakeOpenAI
from flujo.engine.runner import Runner
from flujo.spec.load import check
from flujo.spec.model import HitlStep
from flujo.spec.registry import StepRegistry

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
    from flujo.spec.source import parse

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
        counts = {"run": 0, "validated": 0, "invalid": 0, "unloadable": 0}
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
                    if verbose:
                        print(f"run        {name}")
                else:
                    counts["validated"] += 1
                    print(f"validated  {name}: the run failed: {result.error}")
        total = len(files)
        loaded = total - counts["unloadable"]
        valid = counts["run"] + counts["validated"]
        print(
            f"\n{total} blueprints: {loaded} load, {valid} validate, {counts['run']} run "
            f"({len(allow)} user callables stubbed)"
        )
        return 0 if valid == total else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a checkout of flujo 0.6.11")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.source, args.verbose)))
