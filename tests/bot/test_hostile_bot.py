"""The real `flujo bot serve` under hostile specs: it stays healthy and every check ends.

Each test starts the bot as its own process against the fake GitHub, pushes commits whose
specs try to crash, hang or exhaust it, and asserts that `/healthz` keeps answering,
that the hostile commit's checks complete (failed, with the reason), and that another
repository's checks complete meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.bot import GOOD
from tests.support.bot_process import push, settled, start_bot
from tests.support.fakegithub.server import FakeGitHub

NAMES = ("flujo/validate", "flujo/test", "flujo/policy")
SPEC = "flujo/greeter.yml"


async def test_the_served_bot_checks_a_commit(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.add_installation(42, "acme")
    fake_github.create_repo("acme/flows", {"README.md": "hi\n"}, installation_id=42)
    bot = await start_bot(fake_github, tmp_path / "bot")
    try:
        sha = await push(fake_github, bot, "acme/flows", {SPEC: GOOD.replace("< 5", "< 50")})
        assert await settled(fake_github, bot, "acme/flows", sha, 60) == dict.fromkeys(
            NAMES, "success"
        )
    finally:
        bot.stop()


def hostile_world(fake: FakeGitHub) -> None:
    fake.add_installation(42, "acme")
    fake.create_repo("acme/hostile", {"README.md": "hi\n"}, installation_id=42)
    fake.create_repo("acme/flows", {"README.md": "hi\n"}, installation_id=42)


NESTING_BOMB = "steps:\n" + "- " * 30_000 + "x\n"
# Specs cannot build huge values or loop without end through templates or expressions (their
# sandboxes refuse it); an allowed skill with a bug can, and the limits must contain it.
MEMORY_BOMB = GOOD.replace(
    'uses: template_render\n    with: {template: "Hello, {{ input.name }}!"}',
    'uses: "tests.support.skills:hog"\n    with: {mb: 4096}',
)
CPU_BOMB = GOOD.replace(
    'uses: template_render\n    with: {template: "Hello, {{ input.name }}!"}',
    'uses: "tests.support.skills:spin"',
)


async def test_a_spec_that_crashes_the_parser_fails_only_its_own_checks(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    hostile_world(fake_github)
    bot = await start_bot(fake_github, tmp_path / "bot")
    try:
        bad = await push(
            fake_github, bot, "acme/hostile", {SPEC: NESTING_BOMB, "flujo/ok.yml": GOOD}
        )
        good = await push(fake_github, bot, "acme/flows", {SPEC: GOOD.replace("< 5", "< 50")})
        assert await settled(fake_github, bot, "acme/flows", good, 60) == dict.fromkeys(
            NAMES, "success"
        )
        conclusions = await settled(fake_github, bot, "acme/hostile", bad, 60)
        assert conclusions["flujo/validate"] == "failure"
        validate = fake_github.check_run("acme/hostile", bad, "flujo/validate")
        assert {a["path"] for a in validate.annotations} == {SPEC}  # the other spec is fine
        assert bot.process.poll() is None
    finally:
        bot.stop()


async def test_a_spec_that_exhausts_memory_or_cpu_is_stopped_at_its_limit(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    hostile_world(fake_github)
    bot = await start_bot(
        fake_github,
        tmp_path / "bot",
        isolation_memory_mb="768",
        isolation_wall_s="8",
        skills_allow='["tests.support.skills:*"]',
    )
    try:
        memory = await push(fake_github, bot, "acme/hostile", {SPEC: MEMORY_BOMB})
        good = await push(fake_github, bot, "acme/flows", {SPEC: GOOD.replace("< 5", "< 50")})
        assert await settled(fake_github, bot, "acme/flows", good, 60) == dict.fromkeys(
            NAMES, "success"
        )
        assert (await settled(fake_github, bot, "acme/hostile", memory, 60))[
            "flujo/test"
        ] == "failure"
        summary = fake_github.check_run("acme/hostile", memory, "flujo/test").summary or ""
        assert "exceeded the limit of 768 MiB of memory" in summary
        cpu = await push(fake_github, bot, "acme/hostile", {SPEC: CPU_BOMB})
        assert (await settled(fake_github, bot, "acme/hostile", cpu, 60))["flujo/test"] == "failure"
        summary = fake_github.check_run("acme/hostile", cpu, "flujo/test").summary or ""
        assert "exceeded the limit of 8 s of wall time" in summary
        assert bot.process.poll() is None
    finally:
        bot.stop()


# Cases of `flujo validate DIR` on a clone's symbolic links: the bot never sees a link (the
# forge gives it blobs, written as plain files in its snapshot), so they are not sent.
LOCAL_ONLY = {"symlink_out", "symlink_dir_out", "symlink_to_other_repo"}
# Thousands of diagnostics: pushed to a repository of its own, so that its annotations do
# not crowd the others' out of the check's first 200 (its `flujo validate` cap, "4800 more
# diagnostics not shown", is the check's cap of annotations here).
CROWDED = {"many_diagnostics": "error: unknown name 'nowhere'"}
# Where the bot stops sooner than `flujo validate`: it fetches imported files 10 levels
# deep (`snapshot.MAX_REFERENCE_DEPTH`), so the chain of 22 fails at the 11th file.
IN_THE_BOT = {**CROWDED, "import_chain": "error: imported file 'f11.yaml'"}


def corpus_commit(tmp_path: Path, names: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The hostile cases `names` as one commit: each under `cases/<name>/`, with one config
    naming each case's spec and allowing what the wildcard cases' own config allows.
    Returns the files and, per case, the path of the spec whose check must fail."""
    from tests.support.hostile import HOSTILE

    files: dict[str, str] = {}
    specs: dict[str, str] = {}
    for name in names:
        folder = tmp_path / name
        spec = HOSTILE[name].build(folder)
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
            relative = path.relative_to(folder).as_posix()
            if relative == ".github/flujo.yml":
                continue  # one config for the whole commit (below)
            files[f"cases/{name}/{relative}"] = path.read_bytes().decode("utf-8")
        specs[name] = f"cases/{name}/{spec.relative_to(folder).as_posix()}"
    files[".github/flujo.yml"] = (
        f"specs: {json.dumps(sorted(specs.values()))}\n"
        'skills:\n  allow: ["tests.support.hostile_skills:*"]\n'
    )
    return files, specs


def reason_shown(fake: FakeGitHub, repo: str, sha: str, spec: str, expect: str) -> bool:
    """Whether a `flujo/validate` annotation on `spec`, or a file its case's folder holds
    (one it imports), says `expect` (`file:line:col: error: message` as `flujo validate`
    prints it, or a part of it)."""
    run = fake.check_run(repo, sha, "flujo/validate")
    folder = spec.rsplit("/", 1)[0] + "/"
    for note in run.annotations:
        if not str(note["path"]).startswith(folder):
            continue
        line = (
            f"{note['path']}:{note['start_line']}:{note.get('start_column') or 1}: error: "
            f"{note['message']}"
        )
        if expect in line:
            return True
    return False


async def test_every_hostile_case_fails_its_own_check_with_its_reason_while_the_bot_serves(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    from tests.support.hostile import HOSTILE

    names = [n for n in HOSTILE if n not in LOCAL_ONLY]
    hostile_world(fake_github)
    fake_github.create_repo("acme/crowded", {"README.md": "hi\n"}, installation_id=42)
    bot = await start_bot(fake_github, tmp_path / "bot")
    try:
        batch, batch_specs = corpus_commit(tmp_path / "a", [n for n in names if n not in CROWDED])
        crowded, crowded_specs = corpus_commit(tmp_path / "b", [n for n in names if n in CROWDED])
        shas = {
            "acme/hostile": await push(fake_github, bot, "acme/hostile", batch),
            "acme/crowded": await push(fake_github, bot, "acme/crowded", crowded),
        }
        good = await push(fake_github, bot, "acme/flows", {SPEC: GOOD.replace("< 5", "< 50")})
        assert await settled(fake_github, bot, "acme/flows", good, 120) == dict.fromkeys(
            NAMES, "success"
        )
        missing = []
        for repo, specs in (("acme/hostile", batch_specs), ("acme/crowded", crowded_specs)):
            conclusions = await settled(fake_github, bot, repo, shas[repo], 300)
            assert conclusions["flujo/validate"] == "failure", conclusions
            for name, spec in specs.items():
                expect = IN_THE_BOT.get(name, HOSTILE[name].expect)
                if not reason_shown(fake_github, repo, shas[repo], spec, expect):
                    shown = [
                        n["message"]
                        for n in fake_github.check_run(
                            repo, shas[repo], "flujo/validate"
                        ).annotations
                        if str(n["path"]).startswith(spec.rsplit("/", 1)[0])
                    ]
                    missing.append(f"{name}: {expect!r} not on {spec}: {shown}")
        crowded_summary = fake_github.check_run(
            "acme/crowded", shas["acme/crowded"], "flujo/validate"
        ).summary
        assert "more annotations are not shown" in (crowded_summary or "")
        assert missing == []
        assert bot.process.poll() is None and await bot.healthy(2.0)
    finally:
        bot.stop()
