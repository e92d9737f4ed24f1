"""What the three checks conclude about a commit, and what they show (no forge needed)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.bot.commit_report import Override
from flujo.bot.evaluate import evaluate
from flujo.bot.verdicts import TRUNCATED, check_outputs
from flujo.cli import cli
from flujo.spec.registry import StepRegistry
from flujo.templates.fit import GITHUB_TEXT_LIMIT, fit, size
from tests.support.bot import GOOD
from tests.support.specs import TESTS


def files(root: Path, contents: dict[str, str]) -> list[str]:
    for name, text in contents.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return sorted(contents)


async def outputs(root: Path, contents: dict[str, str], overrides=None):  # type: ignore[no-untyped-def]
    report = await evaluate(
        root, files(root, contents), registry=StepRegistry(), overrides=overrides
    )
    return {o.name: o for o in check_outputs(report)}


async def test_an_invalid_spec_fails_validate_with_an_annotation_at_its_line(
    tmp_path: Path,
) -> None:
    broken = GOOD.replace("uses: template_render", "uses: template_rendr")
    checks = await outputs(tmp_path, {"flujo/greeter.yml": broken})
    validate = checks["flujo/validate"]
    assert validate.conclusion == "failure"
    (annotation,) = validate.annotations
    assert (annotation.path, annotation.start_line, annotation.level) == (
        "flujo/greeter.yml",
        5,
        "failure",
    )
    assert "template_render" in annotation.message  # the did-you-mean
    assert checks["flujo/test"].conclusion == "failure"
    assert "invalid" in checks["flujo/test"].title


async def test_a_valid_spec_passes_and_policies_are_judged(tmp_path: Path) -> None:
    checks = await outputs(tmp_path, {"flujo/greeter.yml": GOOD})
    assert checks["flujo/validate"].conclusion == "success"
    assert checks["flujo/test"].conclusion == "success"
    assert checks["flujo/test"].title == "1 passed, 0 failed"
    policy = checks["flujo/policy"]
    # needs_review fails (the output is long) and nobody approved it: the merge is blocked.
    assert policy.conclusion == "failure"
    assert policy.title == "1 policy blocks the merge"
    levels = {(a.start_line, a.level) for a in policy.annotations}
    assert levels == {(17, "failure"), (20, "warning")}  # needs_review, friendly (WARN)
    assert "flujo/override:needs_review" in policy.summary


async def test_an_override_label_approves_a_require_approval_policy(tmp_path: Path) -> None:
    approval = {"needs_review": Override("needs_review", "octocat", "2026-11-25 18:00 UTC")}
    checks = await outputs(tmp_path, {"flujo/greeter.yml": GOOD}, approval)
    policy = checks["flujo/policy"]
    assert policy.conclusion == "success"
    assert "approved by @octocat at 2026-11-25 18:00 UTC" in policy.summary
    assert any(a.level == "notice" and "octocat" in a.message for a in policy.annotations)


async def test_an_override_cannot_approve_a_fail_run_policy(tmp_path: Path) -> None:
    strict = GOOD.replace("len(output) < 50", "len(output) < 3")
    approval = {
        "short": Override("short", "octocat", "now"),
        "needs_review": Override("needs_review", "octocat", "now"),
    }
    checks = await outputs(tmp_path, {"flujo/greeter.yml": strict}, approval)
    assert checks["flujo/policy"].conclusion == "failure"
    assert checks["flujo/test"].conclusion == "failure"  # FAIL_RUN fails the run itself


async def test_a_failing_assertion_is_annotated_at_its_line_with_an_explanation(
    tmp_path: Path,
) -> None:
    failing = GOOD.replace("output == 'Hello, Ada!'", "output == 'Hi, Ada!'")
    test = (await outputs(tmp_path, {"flujo/greeter.yml": failing}))["flujo/test"]
    assert test.conclusion == "failure"
    (annotation,) = test.annotations
    assert annotation.start_line == 11
    assert "'Hello, Ada!' == 'Hi, Ada!' is False" in annotation.message
    assert "greets by name" in test.summary


async def test_a_repository_without_specs_gets_neutral_checks_saying_how_to_start(
    tmp_path: Path,
) -> None:
    checks = await outputs(tmp_path, {"README.md": "hello", "config/app.yml": "a: 1\n"})
    for check in checks.values():
        assert check.conclusion == "neutral"
        assert "flujo/hello.yml" in check.summary


async def test_the_repository_config_chooses_the_specs(tmp_path: Path) -> None:
    checks = await outputs(
        tmp_path,
        {
            ".github/flujo.yml": "specs: ['pipelines/*.yaml']\n",
            "pipelines/g.yaml": GOOD,
            "flujo/ignored.yml": "not: [a, spec",
        },
    )
    assert checks["flujo/validate"].title == "1 spec valid"


async def test_a_repository_cannot_allow_skills_the_bot_does_not(tmp_path: Path) -> None:
    risky = GOOD.replace("uses: template_render", "uses: os:system")
    checks = await outputs(
        tmp_path,
        {".github/flujo.yml": "skills: {allow: ['os:*']}\n", "flujo/greeter.yml": risky},
    )
    assert checks["flujo/validate"].conclusion == "failure"
    assert checks["flujo/test"].conclusion == "failure"


async def test_summaries_fit_githubs_limit_with_many_specs(tmp_path: Path) -> None:
    broken = GOOD.replace("uses: template_render", "uses: nope") * 1
    contents = {f"flujo/s{n:04d}_{'x' * 80}.yml": broken for n in range(700)}
    checks = await outputs(tmp_path, contents)
    validate = checks["flujo/validate"]
    assert size(validate.summary) <= GITHUB_TEXT_LIMIT
    assert "more" in validate.summary
    assert len(validate.annotations) == 700


def test_truncation_keeps_code_fences_closed() -> None:
    text = "start\n```text\n" + "line\n" * 30_000
    cut = fit(text, marker=TRUNCATED)
    assert size(cut) <= GITHUB_TEXT_LIMIT and cut.count("```") % 2 == 0
    assert cut.rstrip().endswith("`flujo test`._")


# -- flujo bot local ---------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    return tmp_path


def commit(repo: Path, contents: dict[str, str]) -> None:
    files(repo, contents)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")


def test_bot_local_checks_the_commit_not_the_working_tree(repo: Path) -> None:
    commit(repo, {"flujo/greeter.yml": GOOD.replace("template_render", "template_rendr")})
    (repo / "flujo/greeter.yml").write_text(GOOD)  # fixed, but not committed
    result = CliRunner().invoke(cli, ["bot", "local", str(repo)])
    assert result.exit_code == 1, result.output
    assert "✗ flujo/validate: failure" in result.output
    assert "flujo/greeter.yml:5: failure:" in result.output

    commit(repo, {"flujo/greeter.yml": GOOD})
    result = CliRunner().invoke(cli, ["bot", "local", str(repo), "--override", "needs_review"])
    assert result.exit_code == 0, result.output
    assert "✓ flujo/policy: success" in result.output
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    written = repo / ".git" / "flujo" / "checks" / sha
    assert sorted(p.name for p in written.iterdir()) == [
        "policy.json",
        "policy.md",
        "test.json",
        "test.md",
        "validate.json",
        "validate.md",
    ]


def test_bot_local_writes_code_scanning_findings_when_the_repository_opts_in(repo: Path) -> None:
    broken = GOOD.replace("template_render", "template_rendr")
    commit(repo, {"flujo/greeter.yml": broken, ".github/flujo.yml": "code_scanning: true\n"})
    assert CliRunner().invoke(cli, ["bot", "local", str(repo)]).exit_code == 1
    (written,) = (repo / ".git" / "flujo" / "checks").glob("*/flujo.sarif")
    (result,) = json.loads(written.read_text())["runs"][0]["results"]
    assert result["ruleId"] == "unknown-skill"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 5


def test_bot_local_on_something_that_is_not_a_repository(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bot", "local", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a git repository" in result.output.lower()
    assert "Traceback" not in result.output


async def test_tests_that_run_too_long_are_stopped_and_fail_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path
    names = files(root, {"flujo/slow.yml": GOOD})

    import flujo.engine.embedded_tests as testing

    async def forever(*args: object, **kwargs: object) -> list[object]:
        await asyncio.sleep(3600)
        return []

    monkeypatch.setattr(testing, "run_tests", forever)
    report = await evaluate(root, names, registry=StepRegistry(), time_limit_s=0.2)
    test = {o.name: o for o in check_outputs(report)}["flujo/test"]
    assert test.conclusion == "failure"
    assert "longer than 0.2 s" in test.summary


async def test_a_0x_blueprints_imports_and_prompt_files_are_fetched_too(tmp_path: Path) -> None:
    """The bot fetches only spec files, but a blueprint's `imports:` and `from_file`
    prompts are read from the commit as well (transitively)."""
    from flujo.bot.commit_check import check_commit
    from flujo.bot.evaluate import InProcess
    from flujo.bot.local import LocalForge

    legacy = TESTS / "legacy"
    git(tmp_path, "init", "-q", "-b", "main")
    commit(
        tmp_path,
        {
            ".github/flujo.yml": "specs: [pipelines/*.yaml]\n",
            "pipelines/control.yaml": (legacy / "control.yaml").read_text(),
            "pipelines/support.yaml": (legacy / "support.yaml").read_text(),
            "pipelines/sub/cleanup.yaml": (legacy / "sub" / "cleanup.yaml").read_text(),
            "pipelines/prompts/classifier.md": (legacy / "prompts" / "classifier.md").read_text(),
        },
    )
    forge = LocalForge(tmp_path)
    sha = await forge.resolve("HEAD")
    registry = StepRegistry(allow=["tests.support.skills:*"])  # the blueprints' test skills
    evaluator = InProcess(registry)
    outputs = {o.name: o for o in await check_commit(forge, "r", sha, evaluator=evaluator)}
    validate = outputs["flujo/validate"]
    assert validate.conclusion == "success", [a.message for a in validate.annotations]
    assert validate.title.startswith("2 specs valid")
    assert not any(
        "no such file" in a.message or "missing" in a.message for a in validate.annotations
    )


async def test_the_bot_removes_snapshots_left_by_a_killed_run(tmp_path: Path) -> None:
    from flujo.bot.app import Bot
    from flujo.bot.settings import BotSettings

    settings = BotSettings(webhook_secret="s", db=tmp_path / "bot.db")
    bot = Bot(settings)
    left = tmp_path / "snapshots" / "flujo-snapshot-abc123"
    (left / "flujo").mkdir(parents=True)
    (left / "flujo" / "spec.yml").write_text("steps: []\n")
    await bot.start()
    try:
        assert not left.exists()
        assert bot.context.limits.folder == tmp_path / "snapshots"
    finally:
        await bot.stop()


def test_a_check_run_carries_at_most_200_annotations_and_says_how_many_more() -> None:
    from flujo.bot.commit_check import MAX_ANNOTATIONS, capped
    from flujo.bot.forge import Annotation, CheckOutput

    many = tuple(
        Annotation(path=f"f{i}.yml", start_line=1, end_line=1, level="failure", message="x")
        for i in range(1_000)
    )
    output = capped(CheckOutput("flujo/validate", "failure", "t", "summary", annotations=many))
    assert len(output.annotations) == MAX_ANNOTATIONS == 200
    assert "800 more annotations are not shown" in output.summary
    few = CheckOutput("flujo/validate", "failure", "t", "summary", annotations=many[:3])
    assert capped(few) == few


@pytest.mark.parametrize(
    "broken",
    [
        GOOD.replace("uses: template_render", "uses: template_rendr"),  # parsed, invalid
        "version: '1'\nsteps: [unclosed\n",  # does not parse at all
    ],
)
async def test_an_invalid_spec_fails_every_check_that_could_not_judge_it(
    tmp_path: Path, broken: str
) -> None:
    checks = await outputs(tmp_path, {"flujo/greeter.yml": broken})
    for name in ("flujo/validate", "flujo/test", "flujo/policy"):
        assert checks[name].conclusion == "failure", name  # never neutral: neutral passes
    for name in ("flujo/test", "flujo/policy"):
        assert "not run: the spec is invalid" in checks[name].title.lower(), name


@pytest.mark.parametrize("approved", [(), ("needs_review",)])
def test_flujo_test_and_the_checks_share_one_verdict_model(
    tmp_path: Path, approved: tuple[str, ...]
) -> None:
    """A test passes or fails as in `flujo/test`; `flujo test` exits 1 exactly when
    `flujo/test` or `flujo/policy` fails (an unapproved REQUIRE_APPROVAL policy fails
    the policy check, not the test)."""
    overrides = {i: Override(i, "octocat", "now") for i in approved}
    checks = asyncio.run(outputs(tmp_path, {"flujo/greeter.yml": GOOD}, overrides))
    args = ["test", str(tmp_path / "flujo/greeter.yml")]
    for policy_id in approved:
        args += ["--override", policy_id]
    result = CliRunner().invoke(cli, args)
    blocked = any(checks[n].conclusion == "failure" for n in ("flujo/test", "flujo/policy"))
    assert result.exit_code == (1 if blocked else 0), result.output
    assert checks["flujo/test"].conclusion == "success"
    assert "PASS " in result.output and "FAIL " not in result.output
    if not approved:
        assert checks["flujo/policy"].conclusion == "failure"
        assert "needs approval: policy needs_review (REQUIRE_APPROVAL)" in result.output
        assert "--override needs_review" in result.output
        assert result.output.splitlines()[-1] == "1 passed, 0 failed, 1 policy needs approval"
    report = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert report["summary"]["needs_approval"] == ([] if approved else ["needs_review"])


MODEL_SPEC = """\
version: "1"
name: writer
agents:
  writer: {model: "openai:gpt-4o-mini", system_prompt: "Write."}
steps:
  - name: write
    uses: agents.writer
tests:
  - name: writes
    input: hello
    assertions: ["output != ''"]
"""


async def test_check_messages_show_repository_paths_and_commands_a_clone_can_run(
    tmp_path: Path,
) -> None:
    root = tmp_path / "snapshot-7f3a"  # the server's temporary copy of the commit
    root.mkdir()
    checks = await outputs(
        root,
        {"flujo/writer.yml": MODEL_SPEC, "flujo/cassettes/writer/stale.json": "{}"},
    )
    test = checks["flujo/test"]
    assert test.conclusion == "failure"
    shown = [test.title, test.summary] + [a.message for a in test.annotations]
    assert "flujo/cassettes/writer" in test.summary
    assert "`flujo test flujo/writer.yml`" in test.summary
    for text in shown:
        assert str(tmp_path) not in text and "snapshot-7f3a" not in text, text


async def test_specs_outside_the_globs_are_named_with_the_line_to_add(tmp_path: Path) -> None:
    checks = await outputs(
        tmp_path,
        {
            "pipelines/triage.yaml": GOOD,
            ".github/workflows/ci.yml": "on: push\njobs: {build: {steps: []}}\n",
            "config/app.yml": "steps: 3\n",  # a top-level steps: alone is not a spec
        },
    )
    for check in checks.values():
        assert "No Flujo specs found" not in check.title
        assert "pipelines/triage.yaml" in check.title
        assert 'specs: ["pipelines/**/*.yaml"]' in check.summary
        assert ".github/flujo.yml" in check.summary
        assert "ci.yml" not in check.summary and "app.yml" not in check.summary


INJECTED = "[click](https://evil.example) <img src=x onerror=alert(1)> @acme/everyone **loud**"


async def test_strangers_text_cannot_format_link_or_notify_in_check_summaries(
    tmp_path: Path,
) -> None:
    import cmarkgfm
    from cmarkgfm.cmark import Options

    name = INJECTED.replace('"', "'")
    spec_text = GOOD.replace("name: greeter", f'name: "{name}"').replace(
        "  - name: greet\n", f'  - name: greet\n    "{name}": 1\n'
    )
    checks = await outputs(tmp_path, {"flujo/greeter.yml": spec_text})
    for check in checks.values():
        shown = cmarkgfm.github_flavored_markdown_to_html(
            check.summary, options=Options.CMARK_OPT_UNSAFE
        )
        assert "<a " not in shown and "<img" not in shown and "<strong>loud" not in shown, shown
        outside_code = re.sub(r"<code>.*?</code>", "", shown, flags=re.S)
        assert "@acme/everyone" not in outside_code  # a mention would notify the team
    assert "click" in checks["flujo/validate"].summary  # the text is shown, inert
