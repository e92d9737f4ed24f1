"""The bot end to end against the fake GitHub: real payloads in, check runs out."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flujo.bot.app import Bot
from flujo.bot.worker import Work
from tests.support.bot import GOOD
from tests.support.bot_world import BROKEN, NAMES, REPO, SPEC, World


async def test_an_invalid_spec_fails_at_its_line_and_a_fix_passes(world: World) -> None:
    fake = world.fake
    first = fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    await world.start()
    sha = fake.commit(REPO, {SPEC: BROKEN})
    assert await world.deliver("push", "payload", sha=sha, before=first) == 202
    await world.settle()
    validate = fake.check_run(REPO, sha, "flujo/validate")
    assert validate.status == "completed" and validate.conclusion == "failure"
    (annotation,) = validate.annotations
    assert annotation["path"] == SPEC and annotation["start_line"] == 5
    assert annotation["annotation_level"] == "failure"
    assert validate.external_id == f"flujo/validate@{sha}"
    assert "1 of 1 spec invalid" in (validate.title or "")

    fixed = fake.commit(REPO, {SPEC: GOOD.replace("len(output) < 5", "len(output) < 50")})
    await world.deliver("push", "payload", sha=fixed, before=sha)
    await world.settle()
    assert world.conclusions(fixed) == dict.fromkeys(NAMES, "success")
    assert fake.check_run(REPO, fixed, "flujo/test").title == "1 passed, 0 failed"


async def test_checks_go_queued_then_in_progress_then_completed(world: World) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    await world.start()
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    for name in NAMES:
        run = world.fake.check_run(REPO, sha, name)
        statuses = [
            r.body.get("status")
            for r in world.fake.calls(None, f"/repos/{REPO}/check-runs*")
            if isinstance(r.body, dict)
            and r.body.get("name", name) == name
            and (r.method == "POST" or r.path.endswith(f"/{run.id}"))
        ]
        assert statuses == ["queued", "in_progress", "completed"]


async def test_a_rerequest_reruns_without_duplicating_runs_or_annotations(world: World) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: BROKEN}, installation_id=42)
    await world.start()
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    run = world.fake.check_run(REPO, sha, "flujo/validate")
    await world.deliver(
        "check_run",
        "rerequested",
        sha=sha,
        check_name="flujo/validate",
        external_id=f"flujo/validate@{sha}",
        check_run_id=run.id,
    )
    await world.deliver("check_suite", "rerequested", sha=sha)
    await world.settle()
    assert len(world.fake.calls("POST", "/repos/{owner}/{repo}/check-runs")) == 3
    for name in NAMES:
        assert len(world.fake.check_runs_for(REPO, sha, name)) == 1
    again = world.fake.check_run(REPO, sha, "flujo/validate")
    assert again.id == run.id and len(again.annotations) == 1
    assert again.status == "completed"


async def test_push_pull_request_and_check_suite_for_one_commit_check_it_once(
    world: World,
) -> None:
    fake = world.fake
    fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    sha = fake.commit(REPO, {SPEC: GOOD}, branch="feature")
    number = fake.open_pull(REPO, "feature")
    await world.start()
    await world.deliver("push", "payload", sha=sha, branch="feature")
    await world.deliver("pull_request", "opened", sha=sha, number=number, branch="feature")
    await world.deliver("check_suite", "requested", sha=sha, branch="feature")
    await world.settle()
    assert len(fake.calls("POST", "/repos/{owner}/{repo}/check-runs")) == 3
    assert len(fake.calls("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}")) == 1


async def test_an_override_label_approves_a_policy_and_says_who(world: World) -> None:
    fake = world.fake
    fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    fake.set_permission(REPO, "maintainer-ada", "write")
    sha = fake.commit(REPO, {SPEC: GOOD}, branch="feature")
    number = fake.open_pull(REPO, "feature")
    await world.start()
    await world.deliver("pull_request", "opened", sha=sha, number=number, branch="feature")
    await world.settle()
    assert world.conclusions(sha)["flujo/policy"] == "failure"  # needs_review blocks

    fake.ensure_label(fake.repo(REPO), "flujo/override:needs_review")
    fake.pull(REPO, number).labels.append("flujo/override:needs_review")
    await world.deliver(
        "pull_request",
        "labeled",
        sha=sha,
        number=number,
        branch="feature",
        label="flujo/override:needs_review",
        sender="maintainer-ada",
    )
    await world.settle()
    policy = fake.check_run(REPO, sha, "flujo/policy")
    assert policy.conclusion == "success"
    assert "approved by @maintainer-ada" in (policy.summary or "")

    fake.pull(REPO, number).labels.remove("flujo/override:needs_review")
    await world.deliver(
        "pull_request",
        "unlabeled",
        sha=sha,
        number=number,
        branch="feature",
        label="flujo/override:needs_review",
        sender="maintainer-ada",
    )
    await world.settle()
    assert fake.check_run(REPO, sha, "flujo/policy").conclusion == "failure"


async def test_a_repository_without_specs_gets_neutral_checks(world: World) -> None:
    sha = world.fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    await world.start()
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    assert world.conclusions(sha) == dict.fromkeys(NAMES, "neutral")
    assert "flujo/hello.yml" in (world.fake.check_run(REPO, sha, "flujo/test").summary or "")


async def test_more_than_fifty_annotations_are_sent_in_batches(world: World) -> None:
    steps = "".join(f"  - name: s{n}\n    uses: nope{n}\n" for n in range(120))
    sha = world.fake.create_repo(REPO, {SPEC: f'version: "1"\nsteps:\n{steps}'}, installation_id=42)
    await world.start()
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    run = world.fake.check_run(REPO, sha, "flujo/validate")
    assert len(run.annotations) == 120
    lines = sorted(a["start_line"] for a in run.annotations)
    assert lines == [4 + 2 * n for n in range(120)]
    # A re-run reads the 120 shown annotations (paginated) and adds none.
    await world.deliver("check_suite", "rerequested", sha=sha)
    await world.settle()
    assert len(world.fake.check_run(REPO, sha, "flujo/validate").annotations) == 120


async def test_rate_limits_and_server_errors_are_waited_out(world: World) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    world.fake.fail_secondary_rate_limit("POST", "/repos/{owner}/{repo}/check-runs", retry_after=7)
    world.fake.fail("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}", 502, times=2)
    await world.start()
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    assert world.conclusions(sha)["flujo/validate"] == "success"
    assert 7.0 in world.sleeps  # Retry-After honoured
    assert len(world.sleeps) == 3  # and two jittered 5xx retries


async def test_a_long_primary_rate_limit_requeues_the_job_until_the_reset(
    world: World,
) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    world.fake.fail_rate_limit("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}", reset_in=900)
    bot = await world.start()
    await world.deliver("push", "payload", sha=sha)
    for _ in range(200):
        jobs = bot.queue.list_jobs()
        if jobs and jobs[0].last_error:
            break
        await asyncio.sleep(0.01)
    (job,) = bot.queue.list_jobs()
    assert job.state in ("queued", "running") and "rate limit" in (job.last_error or "")
    assert job.run_after > job.received_at + 800


async def test_an_expired_token_is_renewed_once(world: World) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    await world.start()
    await world.deliver("push", "payload", sha=sha)
    await world.settle()
    world.fake.expire_tokens()
    await world.deliver("check_suite", "rerequested", sha=sha)
    await world.settle()
    tokens = world.fake.calls("POST", "/app/installations/{installation_id}/access_tokens")
    assert len(tokens) == 2
    assert [j.state for j in world.bot.queue.list_jobs()] == ["done", "done"]  # type: ignore[union-attr]


class NoWorkers(Bot):
    async def start(self) -> None:
        """Acknowledge deliveries but never handle them: the process 'dies' after the ack."""


class DiesMidway(Bot):
    died = False

    async def handle(self, work: Work) -> None:
        if self.died:  # a dead process takes no more work (a retry waits for the stop)
            await asyncio.Event().wait()
        await super().handle(work)  # the checks are posted ...
        self.died = True
        raise asyncio.CancelledError  # ... and the process dies before the job is done


async def test_a_delivery_acknowledged_before_a_crash_is_handled_once_after_restart(
    world: World,
) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    await world.start(NoWorkers(world.settings))
    assert await world.deliver("push", "payload", sha=sha) == 202
    await world.stop()
    assert world.fake.check_runs_for(REPO, sha) == []

    bot = await world.start()
    await world.settle()
    assert world.conclusions(sha)["flujo/validate"] == "success"
    assert len(world.fake.calls("POST", "/repos/{owner}/{repo}/check-runs")) == 3
    assert [j.state for j in bot.queue.list_jobs()] == ["done"]


async def test_a_job_interrupted_midway_is_finished_after_restart_without_duplicates(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: BROKEN}, installation_id=42)
    await world.start(DiesMidway(world.settings, sleep=world.sleep))
    await world.deliver("push", "payload", sha=sha)
    for _ in range(500):
        if world.fake.check_runs_for(REPO, sha) and all(
            r.status == "completed" for r in world.fake.check_runs_for(REPO, sha)
        ):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await world.stop()
    assert world.job_states() == ["running"]

    with caplog.at_level(logging.INFO):
        bot = await world.start()
        await world.settle()
    assert [j.state for j in bot.queue.list_jobs()] == ["done"]
    for name in NAMES:
        assert len(world.fake.check_runs_for(REPO, sha, name)) == 1
    assert len(world.fake.check_run(REPO, sha, "flujo/validate").annotations) == 1
    if not world.settings.database_url:  # PostgreSQL: the stopped worker put it back itself
        assert "resuming 1 job" in caplog.text


class Hangs(Bot):
    """A bot whose checks start and never end (as when the check kills the process)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.context.evaluator = self  # type: ignore[assignment]

    async def plan(self, *args: object) -> object:
        await asyncio.Event().wait()


async def test_a_commit_that_stopped_the_bot_every_time_gets_failed_checks_saying_so(
    sqlite_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world = sqlite_world  # the embedded queue finds poison jobs at start (PostgreSQL: a lease)
    sha = world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    for attempt in range(1, world.settings.max_attempts + 1):  # each stops the bot mid-check
        bot = await world.start(Hangs(world.settings, sleep=world.sleep))
        if attempt == 1:
            await world.deliver("push", "payload", sha=sha)
        for _ in range(500):
            runs = world.fake.check_runs_for(REPO, sha)
            jobs = bot.queue.list_jobs()
            running = [r for r in runs if r.status == "in_progress"]
            if jobs and jobs[0].attempts == attempt and len(running) == 3:
                break
            await asyncio.sleep(0.01)
        await world.stop()
    assert {r.status for r in world.fake.check_runs_for(REPO, sha)} == {"in_progress"}

    with caplog.at_level(logging.INFO):
        bot = await world.start()
        await world.settle()
    assert [j.state for j in bot.queue.list_jobs()] == ["dead"]
    for name in NAMES:
        (run,) = world.fake.check_runs_for(REPO, sha, name)
        assert (run.status, run.conclusion) == ("completed", "failure")
        assert run.title == "Not checked: checking this commit stopped the bot 3 times"
        assert "crashed or was killed" in (run.summary or "")
    assert "dead-lettered: the bot stopped while handling this job, 3 times" in caplog.text


async def test_installations_and_their_repositories_are_remembered(world: World) -> None:
    world.fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    bot = await world.start()
    await world.deliver("installation", "created")
    await world.deliver("installation_repositories", "added")
    await world.settle()
    installations = await bot.state.installations()
    assert installations and installations[0].repositories


ROUTED = (
    "push",
    "pull_request",
    "check_suite",
    "check_run",
    "installation",
    "installation_repositories",
)


async def test_every_real_payload_of_a_routed_event_is_handled(world: World) -> None:
    """Each real delivery GitHub could send for these events, adjusted to the test's
    repository, is acknowledged and handled (or ignored) without a failure."""
    from tests.support.fakegithub.webhooks import webhook_files

    fake = world.fake
    fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    sha = fake.commit(REPO, {SPEC: GOOD}, branch="feature")
    number = fake.open_pull(REPO, "feature")
    bot = await world.start()
    delivered = 0
    for path in webhook_files():
        event = path.parent.name
        if event not in ROUTED:
            continue
        name = path.name.removesuffix(".json").removesuffix(".payload")
        assert await world.deliver(event, name, sha=sha, number=number, branch="feature") == 202
        delivered += 1
    await world.settle()
    jobs = bot.queue.list_jobs(limit=1000)
    assert len(jobs) == delivered >= 40
    assert [(j.event, j.last_error) for j in jobs if j.state != "done"] == []
    for check in NAMES:
        assert len(fake.check_runs_for(REPO, sha, check)) == 1


async def test_tokens_and_keys_never_reach_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    sha = world.fake.create_repo(REPO, {SPEC: GOOD}, installation_id=42)
    world.fake.fail("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}", 502)
    with caplog.at_level(logging.DEBUG):
        await world.start()
        await world.deliver("push", "payload", sha=sha)
        await world.settle()
    assert world.fake.tokens  # a token was issued and used ...
    for token in world.fake.tokens:
        assert token not in caplog.text  # ... and never logged
    assert "PRIVATE KEY" not in caplog.text
    assert world.fake.webhook_secret not in caplog.text


def test_the_redactor_masks_secrets_tokens_and_keys() -> None:
    from flujo.bot.logs import MASK, Redactor

    redactor = Redactor(["hunter2-secret"])
    text = (
        "secret hunter2-secret token ghs_16C7e42F292c6912E7710c838347Ae178B4a jwt "
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl key "
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- end"
    )
    clean = redactor.redact(text)
    assert clean.count(MASK) == 4 and clean.endswith(" end")
    for leaked in ("hunter2", "ghs_", "eyJ", "MIIE"):
        assert leaked not in clean


async def test_the_approve_button_labels_the_pull_request_and_lifts_the_block(
    world: World,
) -> None:
    fake = world.fake
    fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    fake.set_permission(REPO, "maintainer-ada", "maintain")
    sha = fake.commit(REPO, {SPEC: GOOD}, branch="feature")
    number = fake.open_pull(REPO, "feature")
    await world.start()
    await world.deliver("pull_request", "opened", sha=sha, number=number, branch="feature")
    await world.settle()
    policy = fake.check_run(REPO, sha, "flujo/policy")
    assert policy.conclusion == "failure"
    assert [a["identifier"] for a in policy.actions] == ["approve"]
    assert fake.check_run(REPO, sha, "flujo/validate").actions == []

    await _press_approve(world, sha, number, policy.id, "maintainer-ada")
    assert "flujo/override:needs_review" in fake.labels(REPO, number)
    approved = fake.check_run(REPO, sha, "flujo/policy")
    assert approved.conclusion == "success" and approved.actions == []
    assert "approved by @maintainer-ada" in (approved.summary or "")


async def _press_approve(world: World, sha: str, number: int, run_id: int, by: str) -> None:
    """`by` presses *Approve policies* on the policy check run of pull request `number`."""
    fake = world.fake
    payload = fake.webhook(
        "check_run", "requested_action", repo=REPO, sha=sha, check_run_id=run_id, sender=by
    )
    payload["requested_action"] = {"identifier": "approve"}
    payload["check_run"]["pull_requests"][0]["number"] = number  # type: ignore[index]
    assert world.server is not None
    status, _ = await fake.deliver(str(world.server.make_url("/webhooks")), "check_run", payload)
    assert status == 202
    await world.settle()


async def _blocked_pull(world: World) -> tuple[str, int]:
    """A pull request whose REQUIRE_APPROVAL policy blocks it, checked once."""
    fake = world.fake
    fake.create_repo(REPO, {"README.md": "hi\n"}, installation_id=42)
    sha = fake.commit(REPO, {SPEC: GOOD}, branch="feature")
    number = fake.open_pull(REPO, "feature")
    await world.start()
    await world.deliver("pull_request", "opened", sha=sha, number=number, branch="feature")
    await world.settle()
    assert world.conclusions(sha)["flujo/policy"] == "failure"
    return sha, number


async def _label(world: World, sha: str, number: int, by: str) -> None:
    fake = world.fake
    fake.ensure_label(fake.repo(REPO), "flujo/override:needs_review")
    if "flujo/override:needs_review" not in fake.pull(REPO, number).labels:
        fake.pull(REPO, number).labels.append("flujo/override:needs_review")
    await world.deliver(
        "pull_request",
        "labeled",
        sha=sha,
        number=number,
        branch="feature",
        label="flujo/override:needs_review",
        sender=by,
    )
    await world.settle()


@pytest.mark.parametrize("role", ["triage", "read"])
async def test_an_override_label_from_someone_without_write_access_approves_nothing(
    world: World, role: str
) -> None:
    sha, number = await _blocked_pull(world)
    world.fake.set_permission(REPO, "drive-by", role)
    await _label(world, sha, number, "drive-by")
    policy = world.fake.check_run(REPO, sha, "flujo/policy")
    assert policy.conclusion == "failure"
    assert "approved by" not in (policy.summary or "")
    (reply,) = [c.body for c in world.fake.comments(REPO, number)]
    assert reply.startswith("@drive-by: approving a policy needs write access")
    assert (
        len(world.fake.calls("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"))
        == 1
    )


async def test_a_label_the_bot_never_saw_added_approves_nothing(world: World) -> None:
    sha, number = await _blocked_pull(world)
    world.fake.ensure_label(world.fake.repo(REPO), "flujo/override:needs_review")
    world.fake.pull(REPO, number).labels.append("flujo/override:needs_review")  # no event
    await world.deliver("check_suite", "rerequested", sha=sha, branch="feature")
    await world.settle()
    policy = world.fake.check_run(REPO, sha, "flujo/policy")
    assert policy.conclusion == "failure"
    assert "approved by" not in (policy.summary or "")


async def test_an_approval_is_void_on_a_new_commit(world: World) -> None:
    sha, number = await _blocked_pull(world)
    world.fake.set_permission(REPO, "maintainer-ada", "write")
    await _label(world, sha, number, "maintainer-ada")
    assert world.conclusions(sha)["flujo/policy"] == "success"
    changed = GOOD.replace("len(output) < 50", "len(output) < 5000")  # cost limit loosened
    newer = world.fake.commit(REPO, {SPEC: changed}, branch="feature")
    await world.deliver("pull_request", "synchronize", sha=newer, number=number, branch="feature")
    await world.settle()
    assert "flujo/override:needs_review" in world.fake.labels(REPO, number)  # still there
    policy = world.fake.check_run(REPO, newer, "flujo/policy")
    assert policy.conclusion == "failure" and "approved by" not in (policy.summary or "")
    await _label(world, newer, number, "maintainer-ada")  # approved again, for this commit
    assert world.conclusions(newer)["flujo/policy"] == "success"


async def test_the_approve_button_needs_write_access(world: World) -> None:
    sha, number = await _blocked_pull(world)
    fake = world.fake
    policy = fake.check_run(REPO, sha, "flujo/policy")
    await _press_approve(world, sha, number, policy.id, "drive-by")
    assert "flujo/override:needs_review" not in fake.labels(REPO, number)
    assert fake.check_run(REPO, sha, "flujo/policy").conclusion == "failure"
    assert any(c.body.startswith("@drive-by: approving") for c in fake.comments(REPO, number))
