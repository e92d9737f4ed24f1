"""The fake GitHub, driven by gidgethub exactly as the bot drives GitHub."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import gidgethub
import gidgethub.apps
import jwt
import pytest
from gidgethub.aiohttp import GitHubAPI
from gidgethub.sansio import Event

from tests.support.fakegithub import webhooks
from tests.support.fakegithub.git import GitRepo
from tests.support.fakegithub.openapi import load_openapi
from tests.support.fakegithub.server import FakeGitHub

REPO = "acme/pipelines"
INSTALLATION = 42
FILES = {"README.md": "# pipelines\n", "flows/triage.yaml": "name: triage\nsteps: []\n"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def world(fake_github: FakeGitHub) -> str:
    """An installation on `acme` with one repository; returns the first commit's SHA."""
    fake_github.add_installation(INSTALLATION, "acme")
    return fake_github.create_repo(REPO, FILES)


async def installation_client(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> tuple[GitHubAPI, str]:
    """A client and an installation token. Signs the JWT with the key object: PyJWT re-parses a
    PEM on every call (~120 ms); `test_app_jwt_…` covers the PEM path gidgethub takes."""
    gh = GitHubAPI(session, "flujo-test", base_url=fake.base_url)
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + 540, "iss": str(fake.app_id)}
    app_jwt = jwt.encode(claims, fake.private_key, algorithm="RS256")
    token = await gh.post(f"/app/installations/{INSTALLATION}/access_tokens", data=b"", jwt=app_jwt)
    return gh, token["token"]


@pytest.fixture
async def gh(
    fake_github: FakeGitHub, world: str, session: aiohttp.ClientSession
) -> tuple[GitHubAPI, str]:
    return await installation_client(fake_github, session)


# --- auth -------------------------------------------------------------------------------


async def test_app_jwt_gives_an_installation_token_for_repo_calls(
    fake_github: FakeGitHub, world: str, session: aiohttp.ClientSession
) -> None:
    gh = GitHubAPI(session, "flujo-test", base_url=fake_github.base_url)
    app_jwt = gidgethub.apps.get_jwt(
        app_id=str(fake_github.app_id), private_key=fake_github.private_key_pem
    )
    app = await gh.getitem("/app", jwt=app_jwt)
    assert app["id"] == fake_github.app_id and app["slug"] == "flujo-test"
    installation = await gh.getitem(f"/repos/{REPO}/installation", jwt=app_jwt)
    assert installation["id"] == INSTALLATION and installation["account"]["login"] == "acme"
    token = await gidgethub.apps.get_installation_access_token(
        gh,
        installation_id=str(INSTALLATION),
        app_id=str(fake_github.app_id),
        private_key=fake_github.private_key_pem,
    )
    assert token["token"].startswith("ghs_")
    left = time.mktime(time.strptime(token["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(
        time.gmtime()
    )
    assert 3500 < left <= 3600
    repo = await gh.getitem(f"/repos/{REPO}", oauth_token=token["token"])
    assert repo["full_name"] == REPO and repo["default_branch"] == "main"
    listing = await gh.getitem("/installation/repositories", oauth_token=token["token"])
    assert [r["full_name"] for r in listing["repositories"]] == [REPO]


async def test_bad_or_expired_tokens_get_401_bad_credentials(
    fake_github: FakeGitHub, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    with pytest.raises(gidgethub.BadRequest) as bad:
        await client.getitem(f"/repos/{REPO}", oauth_token="ghs_not-a-token")
    assert bad.value.status_code == 401 and "Bad credentials" in str(bad.value)
    await client.getitem(f"/repos/{REPO}", oauth_token=token)
    fake_github.expire_tokens()
    with pytest.raises(gidgethub.BadRequest) as expired:
        await client.getitem(f"/repos/{REPO}", oauth_token=token)
    assert expired.value.status_code == 401


async def test_jwt_signed_with_another_key_or_expired_is_refused(
    fake_github: FakeGitHub, world: str, session: aiohttp.ClientSession
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    gh = GitHubAPI(session, "flujo-test", base_url=fake_github.base_url)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    forged = jwt.encode(
        {
            "iat": int(time.time()) - 60,
            "exp": int(time.time()) + 500,
            "iss": str(fake_github.app_id),
        },
        other,
        algorithm="RS256",
    )
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post(f"/app/installations/{INSTALLATION}/access_tokens", data=b"", jwt=forged)
    assert refused.value.status_code == 401
    stale = jwt.encode(
        {
            "iat": int(time.time()) - 1400,
            "exp": int(time.time()) - 800,
            "iss": str(fake_github.app_id),
        },
        fake_github.private_key,
        algorithm="RS256",
    )
    with pytest.raises(gidgethub.BadRequest) as expired:
        await gh.getitem("/app", jwt=stale)
    assert expired.value.status_code == 401 and "exp" in str(expired.value)


# --- git content ------------------------------------------------------------------------


async def test_trees_and_blobs_hold_real_git_content(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    commit = await client.getitem(f"/repos/{REPO}/commits/main", oauth_token=token)
    assert commit["sha"] == world
    tree = await client.getitem(
        f"/repos/{REPO}/git/trees/{commit['commit']['tree']['sha']}?recursive=1", oauth_token=token
    )
    paths = {e["path"]: e for e in tree["tree"]}
    assert set(paths) == {"README.md", "flows", "flows/triage.yaml"}
    blob = await client.getitem(
        f"/repos/{REPO}/git/blobs/{paths['flows/triage.yaml']['sha']}", oauth_token=token
    )
    assert base64.b64decode(blob["content"]).decode() == FILES["flows/triage.yaml"]
    # The SHA is git's own: hash-object of the same bytes.
    import hashlib

    data = FILES["README.md"].encode()
    assert paths["README.md"]["sha"] == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    content = await client.getitem(
        f"/repos/{REPO}/contents/flows/triage.yaml?ref=main", oauth_token=token
    )
    assert base64.b64decode(content["content"]).decode() == FILES["flows/triage.yaml"]
    raw = await client.getitem(
        f"/repos/{REPO}/contents/flows/triage.yaml",
        accept="application/vnd.github.raw",
        oauth_token=token,
    )
    assert raw == FILES["flows/triage.yaml"]


async def test_git_database_writes_make_a_branch_and_pull_request(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    ref = await client.getitem(f"/repos/{REPO}/git/ref/heads/main", oauth_token=token)
    base_sha = ref["object"]["sha"]
    base = await client.getitem(f"/repos/{REPO}/git/commits/{base_sha}", oauth_token=token)
    blob = await client.post(
        f"/repos/{REPO}/git/blobs",
        data={"content": "name: triage\nsteps: [a]\n", "encoding": "utf-8"},
        oauth_token=token,
    )
    tree = await client.post(
        f"/repos/{REPO}/git/trees",
        data={
            "base_tree": base["tree"]["sha"],
            "tree": [
                {"path": "flows/triage.yaml", "mode": "100644", "type": "blob", "sha": blob["sha"]},
                {"path": "README.md", "mode": "100644", "type": "blob", "sha": None},
            ],
        },
        oauth_token=token,
    )
    commit = await client.post(
        f"/repos/{REPO}/git/commits",
        data={"message": "Improve triage", "tree": tree["sha"], "parents": [base_sha]},
        oauth_token=token,
    )
    await client.post(
        f"/repos/{REPO}/git/refs",
        data={"ref": "refs/heads/flujo/improve", "sha": commit["sha"]},
        oauth_token=token,
    )
    matching = await client.getitem(
        f"/repos/{REPO}/git/matching-refs/heads/flujo/", oauth_token=token
    )
    assert [r["ref"] for r in matching] == ["refs/heads/flujo/improve"]
    pull = await client.post(
        f"/repos/{REPO}/pulls",
        data={"title": "Improve triage", "head": "flujo/improve", "base": "main", "body": "why"},
        oauth_token=token,
    )
    assert pull["head"]["sha"] == commit["sha"] and pull["user"]["login"] == "flujo-test[bot]"
    files = await client.getitem(f"/repos/{REPO}/pulls/{pull['number']}/files", oauth_token=token)
    assert {(f["filename"], f["status"]) for f in files} == {
        ("flows/triage.yaml", "modified"),
        ("README.md", "removed"),
    }
    diff = await client.getitem(
        f"/repos/{REPO}/pulls/{pull['number']}",
        accept="application/vnd.github.diff",
        oauth_token=token,
    )
    assert " name: triage\n-steps: []\n+steps: [a]\n" in diff and "+++ /dev/null" in diff
    compare = await client.getitem(f"/repos/{REPO}/compare/main...flujo/improve", oauth_token=token)
    assert compare["status"] == "ahead" and compare["ahead_by"] == 1
    found = await client.getitem(
        f"/repos/{REPO}/pulls?head=acme:flujo/improve&state=open", oauth_token=token
    )
    assert [p["number"] for p in found] == [pull["number"]]
    assert fake_github.files(REPO, "flujo/improve") == {
        "flows/triage.yaml": "name: triage\nsteps: [a]\n"
    }
    merged = await client.put(
        f"/repos/{REPO}/pulls/{pull['number']}/merge",
        data={"merge_method": "squash", "sha": commit["sha"]},
        oauth_token=token,
    )
    assert merged["merged"] is True
    assert fake_github.files(REPO)["flows/triage.yaml"] == "name: triage\nsteps: [a]\n"
    assert fake_github.pull(REPO, pull["number"]).state == "closed"


async def test_contents_put_creates_then_updates_with_sha(
    fake_github: FakeGitHub, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    text = base64.b64encode(b"hello\n").decode()
    created = await client.put(
        f"/repos/{REPO}/contents/notes/a.txt",
        data={"message": "add", "content": text},
        oauth_token=token,
    )
    with pytest.raises(gidgethub.InvalidField):
        await client.put(
            f"/repos/{REPO}/contents/notes/a.txt",
            data={"message": "again", "content": text},
            oauth_token=token,
        )
    await client.put(
        f"/repos/{REPO}/contents/notes/a.txt",
        data={
            "message": "edit",
            "content": base64.b64encode(b"bye\n").decode(),
            "sha": created["content"]["sha"],
        },
        oauth_token=token,
    )
    assert fake_github.files(REPO)["notes/a.txt"] == "bye\n"


# --- checks -----------------------------------------------------------------------------


def annotation(line: int, level: str = "warning") -> dict[str, Any]:
    return {
        "path": "flows/triage.yaml",
        "start_line": line,
        "end_line": line,
        "annotation_level": level,
        "message": f"problem on line {line}",
    }


async def test_check_runs_create_update_append_annotations_and_list(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    run = await client.post(
        f"/repos/{REPO}/check-runs",
        data={
            "name": "flujo/validate",
            "head_sha": world,
            "status": "in_progress",
            "external_id": "run-1",
            "output": {"title": "Checking", "summary": "…", "annotations": [annotation(1)]},
        },
        oauth_token=token,
    )
    assert run["status"] == "in_progress" and run["output"]["annotations_count"] == 1
    updated = await client.patch(
        f"/repos/{REPO}/check-runs/{run['id']}",
        data={
            "status": "completed",
            "conclusion": "failure",
            "output": {
                "title": "2 problems",
                "summary": "done",
                "annotations": [annotation(2, "failure")],
            },
        },
        oauth_token=token,
    )
    assert updated["conclusion"] == "failure" and updated["completed_at"]
    assert updated["output"]["title"] == "2 problems"
    assert updated["output"]["annotations_count"] == 2
    notes = [
        a
        async for a in client.getiter(
            f"/repos/{REPO}/check-runs/{run['id']}/annotations", oauth_token=token
        )
    ]
    assert [a["start_line"] for a in notes] == [1, 2]
    await client.post(
        f"/repos/{REPO}/check-runs",
        data={"name": "flujo/test", "head_sha": world, "status": "queued"},
        oauth_token=token,
    )
    listing = await client.getitem(
        f"/repos/{REPO}/commits/{world}/check-runs?check_name=flujo/validate", oauth_token=token
    )
    assert listing["total_count"] == 1
    assert listing["check_runs"][0]["id"] == run["id"]
    stored = fake_github.check_run(REPO, world, "flujo/validate")
    assert stored.conclusion == "failure" and len(stored.annotations) == 2
    assert stored.external_id == "run-1"
    assert len(fake_github.calls("POST", "/repos/{owner}/{repo}/check-runs")) == 2
    suites = await client.getitem(f"/repos/{REPO}/commits/{world}/check-suites", oauth_token=token)
    assert suites["total_count"] == 1 and suites["check_suites"][0]["status"] == "in_progress"
    suite_runs = await client.getitem(
        f"/repos/{REPO}/check-suites/{suites['check_suites'][0]['id']}/check-runs",
        oauth_token=token,
    )
    assert suite_runs["total_count"] == 2


async def test_more_than_50_annotations_in_one_request_is_422(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    with pytest.raises(gidgethub.BadRequest) as refused:
        await client.post(
            f"/repos/{REPO}/check-runs",
            data={
                "name": "flujo/validate",
                "head_sha": world,
                "output": {
                    "title": "t",
                    "summary": "s",
                    "annotations": [annotation(n) for n in range(1, 52)],
                },
            },
            oauth_token=token,
        )
    assert refused.value.status_code == 422
    assert fake_github.check_runs_for(REPO, world) == []
    assert any("annotations" in v for v in fake_github.take_violations())


async def test_invalid_conclusion_is_answered_422_and_recorded_as_violation(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    with pytest.raises(gidgethub.BadRequest) as refused:
        await client.post(
            f"/repos/{REPO}/check-runs",
            data={"name": "x", "head_sha": world, "status": "completed", "conclusion": "great"},
            oauth_token=token,
        )
    assert refused.value.status_code == 422
    with pytest.raises(gidgethub.BadRequest):
        await client.post(
            f"/repos/{REPO}/check-runs",
            data={"name": "x", "head_sha": world, "status": "completed"},
            oauth_token=token,
        )
    found = fake_github.take_violations()
    assert any("'great' is not one of" in v for v in found)
    assert any("conclusion is required" in str(v) for v in found)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"output": {"title": "t", "summary": "s" * 65536}}, "summary"),
        (
            {
                "actions": [
                    {"label": "l", "description": "d", "identifier": f"a{n}"} for n in range(4)
                ]
            },
            "actions",
        ),
        ({"output": {"title": "t", "summary": "s", "annotations": [{"path": "a"}]}}, "start_line"),
        (
            {"output": {"title": "t", "summary": "s", "annotations": [annotation(1, "error")]}},
            "annotation_level",
        ),
    ],
    ids=["long-summary", "four-actions", "annotation-fields", "annotation-level"],
)
async def test_check_run_rules_github_enforces(
    fake_github: FakeGitHub,
    world: str,
    gh: tuple[GitHubAPI, str],
    body: dict[str, Any],
    complaint: str,
) -> None:
    client, token = gh
    with pytest.raises(gidgethub.BadRequest) as refused:
        await client.post(
            f"/repos/{REPO}/check-runs",
            data={"name": "x", "head_sha": world, **body},
            oauth_token=token,
        )
    assert refused.value.status_code == 422
    found = fake_github.take_violations()
    assert any(complaint in v for v in found), found
    assert fake_github.check_runs_for(REPO, world) == []


# --- pagination and faults --------------------------------------------------------------


async def test_getiter_follows_link_headers_across_three_pages(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    number = fake_github.open_pull(REPO, "main", title="self")  # any open issue number works
    for n in range(7):
        fake_github.add_comment(REPO, number, f"comment {n}")
    bodies = [
        c["body"]
        async for c in client.getiter(
            f"/repos/{REPO}/issues/{number}/comments?per_page=3", oauth_token=token
        )
    ]
    assert bodies == [f"comment {n}" for n in range(7)]
    pages = fake_github.calls("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    assert [r.query.get("page") for r in pages] == [None, "2", "3"]


async def test_link_header_has_githubs_shape(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str], session: aiohttp.ClientSession
) -> None:
    _, token = gh
    number = fake_github.open_pull(REPO, "main", title="self")
    for n in range(7):
        fake_github.add_comment(REPO, number, f"comment {n}")
    url = f"{fake_github.base_url}/repos/{REPO}/issues/{number}/comments?per_page=3&page=2"
    async with session.get(url, headers={"Authorization": f"token {token}"}) as response:
        link = response.headers["Link"]
    base = f"{fake_github.base_url}/repos/{REPO}/issues/{number}/comments?per_page=3"
    assert link == (
        f'<{base}&page=1>; rel="prev", <{base}&page=3>; rel="next", '
        f'<{base}&page=3>; rel="last", <{base}&page=1>; rel="first"'
    )


async def test_faults_secondary_rate_limit_server_error_and_primary_rate_limit(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    fake_github.fail_secondary_rate_limit("POST", f"/repos/{REPO}/check-runs", retry_after=7)
    with pytest.raises(gidgethub.BadRequest) as limited:
        await client.post(
            f"/repos/{REPO}/check-runs", data={"name": "x", "head_sha": world}, oauth_token=token
        )
    assert limited.value.status_code == 403
    assert limited.value.headers["Retry-After"] == "7"
    fake_github.fail("GET", "/repos/{owner}/{repo}", 502, times=2)
    for _ in range(2):
        with pytest.raises(gidgethub.GitHubBroken):
            await client.getitem(f"/repos/{REPO}", oauth_token=token)
    await client.getitem(f"/repos/{REPO}", oauth_token=token)
    fake_github.fail_rate_limit("GET", f"/repos/{REPO}/pulls*", reset_in=120)
    with pytest.raises(gidgethub.RateLimitExceeded) as exhausted:
        await client.getitem(f"/repos/{REPO}/pulls", oauth_token=token)
    assert exhausted.value.rate_limit.remaining == 0
    await client.getitem(f"/repos/{REPO}/pulls", oauth_token=token)  # each fault fires once
    statuses = [r.status for r in fake_github.requests if r.method == "GET"]
    assert statuses == [502, 502, 200, 403, 200]


async def test_a_fault_can_last_until_cleared_and_match_any_method(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    fake_github.fail("*", f"/repos/{REPO}/*", 404, times=None)
    for _ in range(3):
        with pytest.raises(gidgethub.BadRequest) as missing:
            await client.getitem(f"/repos/{REPO}/branches/main", oauth_token=token)
        assert missing.value.status_code == 404
    fake_github.clear_faults()
    branch = await client.getitem(f"/repos/{REPO}/branches/main", oauth_token=token)
    assert branch["commit"]["sha"] == world


async def test_list_check_runs_defaults_to_the_latest_run_per_name(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    for conclusion in ("failure", "success"):
        await client.post(
            f"/repos/{REPO}/check-runs",
            data={"name": "flujo/test", "head_sha": world, "conclusion": conclusion},
            oauth_token=token,
        )
    latest = await client.getitem(f"/repos/{REPO}/commits/main/check-runs", oauth_token=token)
    assert [r["conclusion"] for r in latest["check_runs"]] == ["success"]
    every = [
        r["conclusion"]
        async for r in client.getiter(
            f"/repos/{REPO}/commits/main/check-runs?filter=all&per_page=1",
            oauth_token=token,
            iterable_key="check_runs",
        )
    ]
    assert every == ["success", "failure"]
    suite = (await client.getitem(f"/repos/{REPO}/commits/main/check-suites", oauth_token=token))[
        "check_suites"
    ][0]
    assert (suite["status"], suite["conclusion"]) == ("completed", "failure")


async def test_repos_outside_the_installation_and_jwt_on_repo_calls_are_refused(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    fake_github.add_installation(7, "other")
    fake_github.create_repo("other/secret", {"a": "b"}, installation_id=7)
    with pytest.raises(gidgethub.BadRequest) as hidden:
        await client.getitem("/repos/other/secret", oauth_token=token)
    assert hidden.value.status_code == 404
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + 540, "iss": str(fake_github.app_id)}
    app_jwt = jwt.encode(claims, fake_github.private_key, algorithm="RS256")
    with pytest.raises(gidgethub.BadRequest) as refused:
        await client.getitem(f"/repos/{REPO}", jwt=app_jwt)
    assert refused.value.status_code == 403
    with pytest.raises(gidgethub.BadRequest) as not_jwt:
        await client.getitem("/app", oauth_token=token)
    assert not_jwt.value.status_code == 401


async def test_unknown_paths_and_query_parameters_are_violations(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    with pytest.raises(gidgethub.BadRequest):
        await client.getitem(f"/repos/{REPO}/releases", oauth_token=token)
    await client.getitem(f"/repos/{REPO}/commits/main/check-runs?check-name=x", oauth_token=token)
    await client.getitem(f"/repos/{REPO}/pulls?state=merged", oauth_token=token)
    found = fake_github.take_violations()
    assert len(found) == 3
    assert "not in GitHub's REST API description" in found[0]
    assert "unknown query parameter 'check-name'" in found[1]
    assert "'state' must be one of" in found[2]
    assert fake_github.violations == []


async def test_merge_conflicts_and_stale_heads_are_refused(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    fake_github.commit(REPO, {"README.md": "feature\n"}, branch="feature")
    number = fake_github.open_pull(REPO, "feature", title="Change readme")
    with pytest.raises(gidgethub.BadRequest) as stale:
        await client.put(
            f"/repos/{REPO}/pulls/{number}/merge", data={"sha": world}, oauth_token=token
        )
    assert stale.value.status_code == 409
    fake_github.commit(REPO, {"README.md": "main\n"})
    pull = await client.getitem(f"/repos/{REPO}/pulls/{number}", oauth_token=token)
    assert pull["mergeable"] is False
    with pytest.raises(gidgethub.BadRequest) as conflict:
        await client.put(f"/repos/{REPO}/pulls/{number}/merge", data={}, oauth_token=token)
    assert conflict.value.status_code == 405


def test_commit_helper_adds_changes_and_deletes_files(fake_github: FakeGitHub, world: str) -> None:
    sha = fake_github.commit(
        REPO, {"README.md": None, "docs/a.md": "A\n"}, branch="docs", message="Docs"
    )
    assert fake_github.branch_sha(REPO, "docs") == sha
    assert fake_github.files(REPO, "docs") == {
        "flows/triage.yaml": FILES["flows/triage.yaml"],
        "docs/a.md": "A\n",
    }
    assert fake_github.files(REPO, world) == FILES
    assert fake_github.refs(REPO) == {"refs/heads/docs": sha, "refs/heads/main": world}


def test_many_commits_at_once_are_the_commits_one_by_one_would_be(
    fake_github: FakeGitHub, world: str
) -> None:
    shas = fake_github.commits(
        REPO, [{"docs/a.md": "A\n"}, {"README.md": None}, {"docs/a.md": "B\n"}], branch="docs"
    )
    git = fake_github.repo(REPO).git
    assert [git.read_commit(sha).parents for sha in shas] == [[world], shas[:1], shas[1:2]]
    read_again = GitRepo(git.path)  # what git itself says, not what was kept
    assert [git.read_commit(s) for s in shas] == [read_again.read_commit(s) for s in shas]
    assert fake_github.branch_sha(REPO, "docs") == shas[-1]
    assert fake_github.files(REPO, shas[0]) == {**FILES, "docs/a.md": "A\n"}
    one_by_one = fake_github.commit(REPO, {"docs/a.md": "A\n"}, branch="single")
    assert git.read_commit(one_by_one).tree == git.read_commit(shas[0]).tree
    assert fake_github.files(REPO, "docs") == {
        "flows/triage.yaml": FILES["flows/triage.yaml"],
        "docs/a.md": "B\n",
    }
    assert fake_github.files(REPO, world) == FILES


# --- every endpoint validates -----------------------------------------------------------


async def test_every_endpoint_answers_within_githubs_schemas(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    sha = fake_github.commit(REPO, {"flows/new.yaml": "name: new\n"}, branch="feature")
    number = fake_github.open_pull(REPO, "feature", title="Add new flow", labels=["bot"])
    r = f"/repos/{REPO}"
    kw: dict[str, Any] = {"oauth_token": token}
    await client.getitem(f"{r}/branches/main", **kw)
    await client.getitem(f"{r}/commits/{sha}", **kw)
    await client.getitem(f"{r}/contents/flows", **kw)
    await client.getitem(f"{r}/git/trees/main", **kw)
    await client.getitem(f"{r}/pulls/{number}", **kw)
    await client.getitem(f"{r}/pulls?state=all", **kw)
    await client.patch(f"{r}/pulls/{number}", data={"body": "better"}, **kw)
    await client.getitem(f"{r}/commits/{sha}/pulls", **kw)
    await client.post(f"{r}/labels", data={"name": "flujo", "color": "00ff00"}, **kw)
    await client.getitem(f"{r}/labels", **kw)
    await client.post(f"{r}/issues/{number}/labels", data={"labels": ["flujo"]}, **kw)
    await client.getitem(f"{r}/issues/{number}/labels", **kw)
    await client.delete(f"{r}/issues/{number}/labels/bot", **kw)
    comment = await client.post(f"{r}/issues/{number}/comments", data={"body": "hi"}, **kw)
    await client.patch(f"{r}/issues/comments/{comment['id']}", data={"body": "edited"}, **kw)
    run = await client.post(
        f"{r}/check-runs", data={"name": "c", "head_sha": sha, "conclusion": "success"}, **kw
    )
    await client.getitem(f"{r}/check-runs/{run['id']}", **kw)
    await client.post(f"{r}/check-runs/{run['id']}/rerequest", data={}, **kw)
    await client.getitem(f"{r}/check-suites/{run['check_suite']['id']}", **kw)
    await client.patch(f"{r}/git/refs/heads/feature", data={"sha": sha}, **kw)
    await client.delete(f"{r}/git/refs/heads/feature", **kw)
    await client.getitem("/rate_limit", **kw)
    assert fake_github.labels(REPO, number) == ["flujo"]
    assert [c.body for c in fake_github.comments(REPO, number)] == ["edited"]
    assert fake_github.check_runs[run["id"]].rerequests == 1
    assert "refs/heads/feature" not in fake_github.refs(REPO)
    assert fake_github.violations == []


async def test_statuses_reviews_labels_and_comment_deletion(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    kw: dict[str, Any] = {"oauth_token": token}
    r = f"/repos/{REPO}"
    await client.post(f"{r}/statuses/{world}", data={"state": "pending", "context": "a"}, **kw)
    await client.post(f"{r}/statuses/{world}", data={"state": "success", "context": "a"}, **kw)
    await client.post(f"{r}/statuses/{world}", data={"state": "success", "context": "b"}, **kw)
    combined = await client.getitem(f"{r}/commits/main/status", **kw)
    assert (combined["state"], combined["total_count"]) == ("success", 2)
    assert [s.state for s in fake_github.statuses(REPO, world)] == ["pending", "success", "success"]
    fake_github.commit(REPO, {"x.txt": "x\n"}, branch="feature")
    number = fake_github.open_pull(REPO, "feature", title="X")
    fake_github.add_review(REPO, number, "APPROVED", user="alice")
    await client.post(f"{r}/pulls/{number}/reviews", data={"event": "COMMENT", "body": "ok"}, **kw)
    reviews = await client.getitem(f"{r}/pulls/{number}/reviews", **kw)
    assert [(x["user"]["login"], x["state"]) for x in reviews] == [
        ("alice", "APPROVED"),
        ("flujo-test[bot]", "COMMENTED"),
    ]
    await client.put(f"{r}/issues/{number}/labels", data={"labels": ["a", "b"]}, **kw)
    await client.patch(f"{r}/labels/a", data={"new_name": "flujo:a", "color": "123456"}, **kw)
    await client.delete(f"{r}/labels/b", **kw)
    assert fake_github.labels(REPO, number) == ["flujo:a"]
    label = await client.getitem(f"{r}/labels/flujo:a", **kw)
    assert label["color"] == "123456"
    comment = await client.post(f"{r}/issues/{number}/comments", data={"body": "bye"}, **kw)
    await client.delete(f"{r}/issues/comments/{comment['id']}", **kw)
    assert fake_github.comments(REPO, number) == []
    suite = await client.post(f"{r}/check-suites", data={"head_sha": world}, **kw)
    assert suite["head_sha"] == world and suite["status"] == "queued"


async def test_responses_resemble_the_recorded_fixtures(
    fake_github: FakeGitHub,
    world: str,
    gh: tuple[GitHubAPI, str],
    session: aiohttp.ClientSession,
    github_reference: Path,
) -> None:
    _, token = gh
    recorded = json.loads((github_reference / "fixtures" / "errors.json").read_text())[0]
    url = f"{fake_github.base_url}/repos/{REPO}/labels"
    headers = {"Authorization": f"token {token}"}
    async with session.post(url, json={"name": "x", "color": "nope"}, headers=headers) as response:
        body = await response.json()
        got = {k.lower() for k in response.headers}
    assert response.status == recorded["status"] == 422
    assert set(body) == set(recorded["response"])
    assert body["errors"] == recorded["response"]["errors"]
    rate_headers = {k for k in recorded["headers"] if k.startswith("x-ratelimit")}
    assert rate_headers <= got
    labels = json.loads((github_reference / "fixtures" / "labels.json").read_text())
    created = next(x for x in labels if x["method"] == "post")
    async with session.post(
        url, json={"name": "test-label", "color": "663399"}, headers=headers
    ) as response:
        assert set(await response.json()) == set(created["response"])


def _key_paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            found |= {prefix + key} | _key_paths(item, f"{prefix}{key}.")
        return found
    if isinstance(value, list) and value:
        return _key_paths(value[0], prefix + "[].")
    return set()


async def test_bodies_have_every_field_of_the_recorded_responses(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str], github_reference: Path
) -> None:
    client, token = gh
    r = f"/repos/{REPO}"
    ours = {
        ("get-repository", "get"): await client.getitem(r, oauth_token=token),
        ("create-file", "put"): await client.put(
            f"{r}/contents/test.txt",
            data={"message": "create test.txt", "content": "VGVzdCBjb250ZW50"},
            oauth_token=token,
        ),
        ("get-content", "get"): await client.getitem(f"{r}/contents/", oauth_token=token),
        ("git-refs", "post"): await client.post(
            f"{r}/git/refs", data={"ref": "refs/heads/test", "sha": world}, oauth_token=token
        ),
        ("labels", "post"): await client.post(
            f"{r}/labels", data={"name": "test-label", "color": "663399"}, oauth_token=token
        ),
    }
    for (fixture, method), body in ours.items():
        recorded = json.loads((github_reference / "fixtures" / f"{fixture}.json").read_text())
        sample = next(x for x in recorded if x["method"] == method and x["status"] < 300)
        assert _key_paths(sample["response"]) <= _key_paths(body), fixture


# --- the OpenAPI layer ------------------------------------------------------------------


def test_multi_segment_parameters_and_literal_paths_win() -> None:
    spec = load_openapi()
    found = spec.match("GET", "/repos/o/r/git/ref/heads/feature/x")
    assert found is not None
    assert found[0].template == "/repos/{owner}/{repo}/git/ref/{ref}"
    assert found[1]["ref"] == "heads/feature/x"
    runs = spec.match("GET", "/repos/o/r/commits/abc/check-runs")
    assert runs is not None and runs[0].template.endswith("/commits/{ref}/check-runs")
    label = spec.match("DELETE", "/repos/o/r/issues/3/labels/needs%20review")
    assert label is not None and label[1]["name"] == "needs review"
    assert spec.match("GET", "/repos/o/r/releases") is None
    assert spec.match("POST", "/repos/o/r") is None


def test_response_checks_know_nullable_refs_and_undocumented_statuses() -> None:
    spec = load_openapi()
    found = spec.match("GET", "/repos/o/r/pulls/1")
    assert found is not None
    op = found[0]
    pull = spec.fill("pull-request", {"number": 1})
    assert spec.check_response(op, 200, pull) == []
    assert pull["milestone"] is None and pull["merged_by"] is None  # nullable $refs
    broken = {**pull, "state": 3}
    assert any("state" in v for v in spec.check_response(op, 200, broken))
    del broken["state"]
    assert any("'state' is a required property" in v for v in spec.check_response(op, 200, broken))
    assert "not documented" in spec.check_response(op, 418, {})[0]


# --- webhooks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", webhooks.webhook_files(), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_every_real_webhook_validates_against_the_schema(path: Path) -> None:
    data = json.loads(path.read_text())
    assert webhooks.validate(path.parent.name, data) == []


ADJUSTMENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("push", "with-installation", {"sha": "a" * 40, "before": "b" * 40, "branch": "main"}),
    ("push", "payload", {"sha": "a" * 40, "branch": "feature/x"}),
    ("ping", "with-app_id", {}),
    (
        "pull_request",
        "opened",
        {
            "number": 7,
            "sha": "c" * 40,
            "branch": "flujo/fix",
            "base_branch": "main",
            "base_sha": "d" * 40,
        },
    ),
    ("pull_request", "synchronize", {"number": 7, "sha": "c" * 40, "before": "e" * 40}),
    ("pull_request", "labeled", {"number": 7, "label": "flujo:approve", "sender": "alice"}),
    ("pull_request", "closed", {"number": 7, "branch": "flujo/fix"}),
    ("check_suite", "requested", {"sha": "c" * 40, "branch": "main", "before": "e" * 40}),
    ("check_suite", "rerequested", {"sha": "c" * 40, "check_suite_id": 99}),
    (
        "check_run",
        "rerequested",
        {"sha": "c" * 40, "check_name": "flujo/validate", "external_id": "r1", "check_run_id": 5},
    ),
    ("check_run", "requested_action", {"sha": "c" * 40, "check_name": "flujo/validate"}),
    ("check_run", "created", {"sha": "c" * 40}),
    ("issue_comment", "created", {"number": 7, "comment": "/flujo retry", "sender": "bob"}),
    ("installation", "created", {}),
]


@pytest.mark.parametrize(("event", "name", "adjust"), ADJUSTMENTS, ids=lambda x: str(x)[:30])
def test_adjusted_payloads_still_validate(event: str, name: str, adjust: dict[str, Any]) -> None:
    data = webhooks.payload(
        event, name, repo=REPO, repo_id=1234, installation_id=INSTALLATION, **adjust
    )
    assert webhooks.validate(event, data) == []
    if "repository" in data:
        original = webhooks.payload(event, name)["repository"]["full_name"]
        assert f"/{original}" not in json.dumps(data)  # every URL names the test's repo
        assert data["repository"]["full_name"] == REPO
        assert data["repository"]["owner"]["login"] == "acme"
        assert data["repository"]["id"] == 1234
    if event != "ping":  # ping deliveries carry no installation
        assert data["installation"]["id"] == INSTALLATION
    if event == "push":
        assert data["after"] == adjust["sha"] == data["head_commit"]["id"]
        assert data["ref"] == f"refs/heads/{adjust['branch']}"
    if event == "pull_request":
        assert data["number"] == data["pull_request"]["number"] == 7
        assert data["pull_request"]["base"]["repo"]["full_name"] == REPO
        if "sha" in adjust:
            assert data["pull_request"]["head"]["sha"] == adjust["sha"]
    if event == "check_run":
        assert data["check_run"]["head_sha"] == data["check_run"]["check_suite"]["head_sha"]


def test_signed_deliveries_verify_with_gidgethub() -> None:
    data = webhooks.payload("pull_request", "opened", repo=REPO, installation_id=INSTALLATION)
    headers, body = webhooks.signed("pull_request", data, "s3cret", delivery_id="d-1")
    event = Event.from_http({k.lower(): v for k, v in headers.items()}, body, secret="s3cret")
    assert event.event == "pull_request" and event.delivery_id == "d-1"
    assert event.data["repository"]["full_name"] == REPO
    assert headers["User-Agent"].startswith("GitHub-Hookshot/")
    with pytest.raises(gidgethub.ValidationFailure):
        Event.from_http({k.lower(): v for k, v in headers.items()}, body, secret="wrong")


async def test_webhook_helper_fills_in_what_the_fake_knows(
    fake_github: FakeGitHub, world: str, gh: tuple[GitHubAPI, str]
) -> None:
    client, token = gh
    head = fake_github.commit(REPO, {"flows/x.yaml": "name: x\n"}, branch="flujo/x")
    number = fake_github.open_pull(REPO, "flujo/x", title="Try x", labels=["flujo"])
    comment = fake_github.add_comment(REPO, number, "/flujo approve", user="alice")
    run = await client.post(
        f"/repos/{REPO}/check-runs",
        data={"name": "flujo/validate", "head_sha": head, "external_id": "e1"},
        oauth_token=token,
    )
    cases = {
        "pull_request": fake_github.webhook("pull_request", "opened", repo=REPO, number=number),
        "issue_comment": fake_github.webhook(
            "issue_comment", "created", repo=REPO, comment_id=comment
        ),
        "push": fake_github.webhook("push", "with-installation", repo=REPO, branch="flujo/x"),
        "check_suite": fake_github.webhook("check_suite", "requested", repo=REPO, sha=world),
        "check_run": fake_github.webhook(
            "check_run", "rerequested", repo=REPO, check_run_id=run["id"]
        ),
    }
    for event, data in cases.items():
        assert webhooks.validate(event, data) == [], event
        assert data["repository"]["id"] == fake_github.repo(REPO).id
        assert data["installation"]["id"] == INSTALLATION
    pull = cases["pull_request"]["pull_request"]
    assert (pull["head"]["sha"], pull["head"]["ref"], pull["base"]["ref"]) == (
        head,
        "flujo/x",
        "main",
    )
    assert pull["title"] == "Try x" and [x["name"] for x in pull["labels"]] == ["flujo"]
    issue_comment = cases["issue_comment"]
    assert issue_comment["issue"]["number"] == number and "pull_request" in issue_comment["issue"]
    assert issue_comment["comment"]["body"] == "/flujo approve"
    assert issue_comment["comment"]["user"]["login"] == "alice"
    push = cases["push"]
    assert (push["after"], push["before"], push["ref"]) == (head, world, "refs/heads/flujo/x")
    suite = cases["check_suite"]["check_suite"]
    assert fake_github.check_suites[suite["id"]].head_sha == world == suite["head_sha"]
    assert suite["head_branch"] == "main"
    rerun = cases["check_run"]["check_run"]
    assert (rerun["id"], rerun["head_sha"], rerun["name"], rerun["external_id"]) == (
        run["id"],
        head,
        "flujo/validate",
        "e1",
    )
    assert rerun["check_suite"]["id"] == run["check_suite"]["id"]


async def test_deliver_posts_a_signed_webhook(fake_github: FakeGitHub) -> None:
    from aiohttp import web

    seen: list[Event] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(
            Event.from_http(
                request.headers, await request.read(), secret=fake_github.webhook_secret
            )
        )
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        status, _ = await fake_github.deliver(
            f"http://127.0.0.1:{port}/hook", "ping", webhooks.payload("ping", "payload")
        )
    finally:
        await runner.cleanup()
    assert status == 202 and seen[0].event == "ping"


async def test_startup_is_fast(tmp_path: Path) -> None:
    FakeGitHub(root=tmp_path / "warm")  # key and OpenAPI cached after the first
    started = time.perf_counter()
    async with FakeGitHub(root=tmp_path / "x") as fake:
        assert fake.base_url.startswith("http://127.0.0.1:")
    assert time.perf_counter() - started < 0.05


async def test_end_to_end_a_signed_delivery_drives_a_handler_that_reports_a_check(
    fake_github: FakeGitHub, world: str, session: aiohttp.ClientSession
) -> None:
    """The shape of a bot test: webhook in → the app calls the fake → assert the fake's state."""
    from aiohttp import web
    from gidgethub import routing

    router = routing.Router()

    @router.register("pull_request", action="opened")
    async def report(event: Event, gh: GitHubAPI, token: str) -> None:
        pull = event.data["pull_request"]
        await gh.post(
            f"/repos/{event.data['repository']['full_name']}/check-runs",
            data={
                "name": "flujo/validate",
                "head_sha": pull["head"]["sha"],
                "conclusion": "failure",
                "output": {"title": "1 problem", "summary": "s", "annotations": [annotation(1)]},
            },
            oauth_token=token,
        )

    async def hook(request: web.Request) -> web.Response:
        event = Event.from_http(
            request.headers, await request.read(), secret=fake_github.webhook_secret
        )
        gh, token = await installation_client(fake_github, session)
        await router.dispatch(event, gh, token)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/webhook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    head = fake_github.commit(REPO, {"flows/triage.yaml": "broken"}, branch="fix")
    number = fake_github.open_pull(REPO, "fix", title="Fix triage")
    try:
        status, _ = await fake_github.deliver(
            f"http://127.0.0.1:{runner.addresses[0][1]}/webhook",
            "pull_request",
            fake_github.webhook("pull_request", "opened", repo=REPO, number=number),
        )
    finally:
        await runner.cleanup()
    assert status == 200
    run = fake_github.check_run(REPO, head, "flujo/validate")
    assert run.conclusion == "failure" and [a["start_line"] for a in run.annotations] == [1]
