"""The real `flujo bot serve` under hostile specs: it stays healthy and every check ends.

Each test starts the bot as its own process against the fake GitHub, pushes commits whose
specs try to crash, hang or exhaust it, and asserts that `/healthz` keeps answering,
that the hostile commit's checks complete (failed, with the reason), and that another
repository's checks complete meanwhile.
"""

from __future__ import annotations

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
