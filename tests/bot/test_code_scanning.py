"""Code scanning: a repository that opts in gets its findings as a SARIF upload."""

from __future__ import annotations

import logging

import pytest

from tests.support.bot_world import BROKEN, REPO, SPEC, World

OPT_IN = ".github/flujo.yml", "code_scanning: true\n"
UPLOADS = "/repos/{owner}/{repo}/code-scanning/sarifs"


async def test_an_opted_in_repository_gets_its_findings_at_their_lines(world: World) -> None:
    fake = world.fake
    sha = fake.create_repo(REPO, {SPEC: BROKEN, OPT_IN[0]: OPT_IN[1]}, installation_id=42)
    await world.start()
    await world.deliver("push", "payload", sha=sha, branch="feature")
    await world.settle()
    (upload,) = fake.repo(REPO).sarif_uploads  # the fake checked it against the schema
    assert upload["commit_sha"] == sha and upload["ref"] == "refs/heads/feature"
    (result,) = upload["log"]["runs"][0]["results"]
    place = result["locations"][0]["physicalLocation"]
    assert (place["artifactLocation"]["uri"], place["region"]["startLine"]) == (SPEC, 5)
    assert result["ruleId"] == "unknown-skill" and result["level"] == "error"
    assert "template_render" in result["message"]["text"]  # the did-you-mean travels too
    assert world.conclusions(sha)["flujo/validate"] == "failure"


async def test_nothing_is_uploaded_without_opting_in(world: World) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: BROKEN}, installation_id=42)
    await world.start()
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    assert world.fake.calls("POST", UPLOADS) == []
    assert world.fake.repo(REPO).sarif_uploads == []


async def test_a_refused_upload_leaves_the_checks_as_they_are(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    sha = fake.create_repo(REPO, {SPEC: BROKEN, OPT_IN[0]: OPT_IN[1]}, installation_id=42)
    fake.fail("POST", UPLOADS, 403, times=None)  # code scanning not enabled on the repository
    await world.start()
    with caplog.at_level(logging.WARNING, "flujo.bot"):
        await world.deliver("push", "payload", sha=sha)
        await world.settle()
    assert world.conclusions(sha)["flujo/validate"] == "failure"
    assert len(fake.calls("POST", UPLOADS)) == 1  # not retried: the checks carry the findings
    assert "code scanning upload refused" in caplog.text
