"""What README.md and docs/ show works, and every link between them resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flujo.spec.load import check
from flujo.spec.model import Pipeline
from tests.support.specs import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
PAGES = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *DOCS.glob("*.md")]
)


def test_the_readme_pipeline_is_valid() -> None:
    block = re.search(r"```yaml\n(# yaml-language-server.*?)```", README, re.S)
    assert block is not None
    pipeline, diagnostics = check(block.group(1))
    assert pipeline is not None and diagnostics == []


def test_the_readme_keeps_the_two_commands_and_the_public_api() -> None:
    assert "./dev demo    # set up from nothing, then run the main job" in README
    assert "./dev test    # set up from nothing, then run the test suite" in README
    for name in ("Pipeline.from_yaml", "await flujo.run(", "SpecError", "Diagnostic"):
        assert name in README, name
    assert "PipelineResult" in README


def test_the_spec_doc_python_snippet_paths_are_right() -> None:
    assert 'spec.step("technical_reply").yaml_path' in (DOCS / "spec.md").read_text("utf-8")
    spec = Pipeline.from_yaml(ROOT / "examples" / "support_triage.yaml")
    assert spec.step("technical_reply").yaml_path == "steps[1].branches.technical.steps[1]"
    line, _ = spec.locate("steps[1].branches.technical.steps[1]")
    assert spec.path_at(line) == "steps[1].branches.technical.steps[1].name"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci and "./dev test" in README


def test_the_suggestions_doc_documents_the_suggestions_json() -> None:
    from flujo.learn.suggest import SCHEMA_VERSION, SuggestReport

    page = (DOCS / "suggestions.md").read_text(encoding="utf-8")
    section = page[page.index("## JSON") : page.index("## Telemetry from elsewhere")]
    assert f'"schema_version": {SCHEMA_VERSION}' in section
    for key in SuggestReport("s", "offline").to_dict():
        assert f'"{key}"' in section, key
    for key in ("savings", "verification", "confidence_label", "diff", "attempts", "broken"):
        assert f'"{key}"' in section, key


def test_every_dev_task_is_in_its_help_and_in_the_development_doc() -> None:
    dev = (ROOT / "dev").read_text(encoding="utf-8")
    tasks = re.findall(r"^    ([a-z-]+)\)", dev, re.M)
    assert {"demo", "test", "check", "fmt", "docs", "flujo"} <= set(tasks)
    help_text = dev.split("set -eu", 1)[0]
    page = (DOCS / "development.md").read_text(encoding="utf-8")
    for task in tasks:
        assert f"#   ./dev {task}" in help_text, task
        assert f"`./dev {task}" in page, task
    shown = re.search(r"sed -n '2,(\d+)p'", dev)
    assert shown is not None
    assert dev.splitlines()[int(shown.group(1)) - 1].startswith("#   ./dev ")
    assert not dev.splitlines()[int(shown.group(1))].startswith("#")


# -- links ------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """Markdown without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    found: set[str] = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def relative_links(page: Path) -> list[str]:
    targets = [a or b for a, b in LINK.findall(prose(page.read_text(encoding="utf-8")))]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{page.name}: {target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{page.name}: {target}: no heading #{anchor} in {file.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert page.is_file()
    assert broken_links(page) == []


def test_the_link_check_sees_missing_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Title\n\n## Where things are: `yaml_path`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#where-things-are-yaml_path) [ok](#here) "
        "[web](https://example.com/x.md)\n\n## Here\n\n"
        "[gone](missing.md) [no heading](other.md#nowhere) ![img](none.png)\n"
        "```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md: no such file",
        "page.md: other.md#nowhere: no heading #nowhere in other.md",
        "page.md: none.png: no such file",
    ]


def test_the_readme_links_every_docs_page() -> None:
    linked = {t.partition("#")[0] for t in relative_links(ROOT / "README.md")}
    for page in DOCS.glob("*.md"):
        if page.name != "suggestion-pr-body.md":
            assert f"docs/{page.name}" in linked, page.name


def test_the_pre_commit_hooks_are_local_and_run_the_project_checks() -> None:
    from ruamel.yaml import YAML

    config = YAML(typ="safe").load((ROOT / ".pre-commit-config.yaml").read_text("utf-8"))
    assert [repo["repo"] for repo in config["repos"]] == ["local"]  # nothing to download
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert {hook["language"] for hook in hooks.values()} == {"system"}
    assert hooks["ruff-format"]["entry"] == ".venv/bin/ruff format"
    assert hooks["ruff-check"]["entry"].startswith(".venv/bin/ruff check")
    assert hooks["dev-check"]["entry"] == "./dev check"
    assert hooks["dev-check"]["pass_filenames"] is False
