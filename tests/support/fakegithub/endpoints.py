"""The REST endpoints the fake implements: one handler per (method, OpenAPI path template).

Handlers take (fake, call) and return (status, JSON body or None, extra headers). Bodies set
the fields a bot reads and let `OpenAPI.fill` complete GitHub's remaining required fields.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tests.support.fakegithub.git import Entry
from tests.support.fakegithub.shapes import (
    HTML,
    app_json,
    bot_login,
    check_run_json,
    check_suite_json,
    combined_state,
    comment_json,
    commit_json,
    content_json,
    diff_entry,
    git_commit_json,
    installation_json,
    issue_json,
    label_json,
    node_id,
    pull_changes,
    pull_commits,
    pull_json,
    reaction_json,
    ref_json,
    repo_json,
    review_json,
    status_json,
    user_json,
)
from tests.support.fakegithub.state import (
    CheckRun,
    CheckSuite,
    Comment,
    GitHubError,
    Issue,
    Pull,
    RawBody,
    Reaction,
    Repo,
    Review,
    Status,
    invalid,
    not_found,
    now_iso,
)

if TYPE_CHECKING:
    from tests.support.fakegithub.server import Call, FakeGitHub

Json = Any
Reply = tuple[int, Json, dict[str, str]]
Handler = Callable[["FakeGitHub", "Call"], Reply]
HANDLERS: dict[tuple[str, str], Handler] = {}
R = "/repos/{owner}/{repo}"
MAX_ANNOTATIONS = 50
MAX_SUMMARY = 65535  # UTF-8 bytes, as GitHub measures (github/docs#35252)
MAX_ISSUE_BODY = 65536  # characters: GitHub's 422 "body is too long (maximum is 65536 characters)"


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[(method, template)] = handler
        return handler

    return register


def ok(body: Json, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, body, headers or {}


def _repo(call: Call) -> Repo:
    assert call.repo is not None
    return call.repo


# --- pagination -------------------------------------------------------------------------


def paginate(fake: FakeGitHub, call: Call, items: list[Json]) -> tuple[list[Json], dict[str, str]]:
    """One page of `items` (`per_page` default 30, max 100) and GitHub's `Link` header."""
    try:
        per_page = min(max(int(call.query.get("per_page", 30)), 1), 100)
        page = max(int(call.query.get("page", 1)), 1)
    except ValueError:
        per_page, page = 30, 1
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    if last == 1:
        return chunk, {}

    def url(number: int) -> str:
        query = {k: v for k, v in call.query.items() if k != "page"}
        query["per_page"] = str(per_page)
        query["page"] = str(number)
        return f"<{fake.base_url}{call.path}?{urlencode(query)}>"

    links = []
    if page > 1:
        links.append(f'{url(page - 1)}; rel="prev"')
    if page < last:
        links.append(f'{url(page + 1)}; rel="next"')
        links.append(f'{url(last)}; rel="last"')
    if page > 1:
        links.append(f'{url(1)}; rel="first"')
    return chunk, {"Link": ", ".join(links)}


# --- app and installation ---------------------------------------------------------------


@route("GET", "/app")
def get_app(fake: FakeGitHub, call: Call) -> Reply:
    return ok(app_json(fake))


@route("POST", "/app-manifests/{code}/conversions")
def convert_manifest(fake: FakeGitHub, call: Call) -> Reply:
    import time

    found = fake.manifest_codes.pop(call.params["code"], None)
    if found is None or found[1] < time.time():
        raise not_found()
    manifest, _ = found
    fake.app_name = str(manifest["name"])
    fake.app_slug = fake.app_name.lower().replace(" ", "-")
    app = app_json(fake)
    app.update(
        {
            "name": fake.app_name,
            "description": manifest.get("description") or "",
            "external_url": manifest["url"],
            "permissions": dict(manifest.get("default_permissions") or {}),
            "events": list(manifest.get("default_events") or ()),
            "client_id": "Iv1." + secrets.token_hex(8),
            "client_secret": secrets.token_hex(20),
            "webhook_secret": fake.webhook_secret,
            "pem": fake.private_key_pem,
        }
    )
    app.pop("installations_count", None)
    return ok(app, 201)


@route("GET", "/app/installations")
def list_installations(fake: FakeGitHub, call: Call) -> Reply:
    items = [installation_json(fake, i) for i in fake.installations]
    page, headers = paginate(fake, call, items)
    return ok(page, headers=headers)


@route("GET", "/app/installations/{installation_id}")
def get_installation(fake: FakeGitHub, call: Call) -> Reply:
    return ok(installation_json(fake, call.int_param("installation_id")))


@route("POST", "/app/installations/{installation_id}/access_tokens")
def create_token(fake: FakeGitHub, call: Call) -> Reply:
    installation_id = call.int_param("installation_id")
    if installation_id not in fake.installations:
        raise not_found()
    token, expires_at = fake.issue_token(installation_id)
    body = {
        "token": token,
        "expires_at": expires_at,
        "permissions": app_json(fake)["permissions"],
        "repository_selection": "selected",
    }
    return ok(body, 201)


@route("GET", R + "/installation")
def get_repo_installation(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    if repo.installation_id is None:
        raise not_found()
    return ok(installation_json(fake, repo.installation_id))


@route("GET", "/installation/repositories")
def installation_repositories(fake: FakeGitHub, call: Call) -> Reply:
    assert call.installation_id is not None
    repos = [repo_json(fake, r) for r in fake.installation_repos(call.installation_id)]
    page, headers = paginate(fake, call, repos)
    body = {"total_count": len(repos), "repositories": page, "repository_selection": "selected"}
    return ok(body, headers=headers)


@route("GET", "/rate_limit")
def rate_limit(fake: FakeGitHub, call: Call) -> Reply:
    import time

    from tests.support.fakegithub.server import RATE_LIMIT

    core = {
        "limit": RATE_LIMIT,
        "remaining": fake.rate_remaining,
        "reset": int(time.time()) + 3600,
        "used": RATE_LIMIT - fake.rate_remaining,
    }
    return ok(fake.spec.fill("rate-limit-overview", {"resources": {"core": core}, "rate": core}))


# --- repository and contents ------------------------------------------------------------


@route("GET", R)
def get_repo(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    body = repo_json(fake, repo, "full-repository")
    body.update(
        {
            "network_count": 0,
            "subscribers_count": 0,
            "organization": body["owner"],
            "topics": [],
            "is_template": False,
            "allow_forking": True,
            "allow_merge_commit": True,
            "allow_squash_merge": True,
            "allow_rebase_merge": True,
            "allow_auto_merge": False,
            "allow_update_branch": False,
            "delete_branch_on_merge": False,
            "use_squash_pr_title_as_default": False,
            "web_commit_signoff_required": False,
            "temp_clone_token": "",
        }
    )
    return ok(body)


@route("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
def collaborator_permission(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    login = call.params["username"]
    role = repo.permission(login)
    legacy = {"maintain": "write", "triage": "read"}.get(role, role)  # GitHub's `permission`
    user = user_json(fake, login) | {"role_name": role}
    return ok({"permission": legacy, "role_name": role, "user": user})


def resolve_commit(repo: Repo, ref: str) -> str:
    sha = repo.git.resolve(ref)
    if sha is None:
        raise GitHubError(422, f"No commit found for SHA: {ref}")
    return sha


@route("GET", R + "/commits/{ref}")
def get_commit(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    return ok(commit_json(fake, repo, resolve_commit(repo, call.params["ref"])))


@route("GET", R + "/branches/{branch}")
def get_branch(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    name = call.params["branch"]
    sha = repo.git.ref(f"refs/heads/{name}")
    if sha is None:
        raise GitHubError(404, "Branch not found")
    api = f"{fake.base_url}/repos/{repo.full_name}"
    return ok(
        fake.spec.fill(
            "branch-with-protection",
            {
                "name": name,
                "commit": commit_json(fake, repo, sha, files=False),
                "_links": {
                    "html": f"{HTML}/{repo.full_name}/tree/{name}",
                    "self": f"{api}/branches/{name}",
                },
                "protected": name in repo.protection,
                "protection": {"enabled": name in repo.protection},
                "protection_url": f"{api}/branches/{name}/protection",
            },
        )
    )


@route("GET", R + "/git/trees/{tree_sha}")
def get_tree(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    given = call.params["tree_sha"]
    tree = given if repo.git.object_type(given) == "tree" else None
    if tree is None:
        commit = repo.git.resolve(given)
        tree = repo.git.read_commit(commit).tree if commit else None
    if tree is None:
        raise not_found()
    recursive = call.query.get("recursive") not in (None, "", "0", "false")
    api = f"{fake.base_url}/repos/{repo.full_name}/git"
    entries = []
    for entry in repo.git.ls_tree(tree, recursive=recursive):
        item: dict[str, Json] = {
            "path": entry.path,
            "mode": entry.mode,
            "type": entry.type,
            "sha": entry.sha,
            "url": f"{api}/{entry.type}s/{entry.sha}",
        }
        if entry.size is not None:
            item["size"] = entry.size
        entries.append(item)
    return ok({"sha": tree, "url": f"{api}/trees/{tree}", "tree": entries, "truncated": False})


@route("GET", R + "/git/blobs/{file_sha}")
def get_blob(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = call.params["file_sha"]
    if repo.git.object_type(sha) != "blob":
        raise not_found()
    data = repo.git.read_blob(sha)
    return ok(
        {
            "sha": sha,
            "node_id": node_id("Blob", int(sha[:8], 16)),
            "size": len(data),
            "url": f"{fake.base_url}/repos/{repo.full_name}/git/blobs/{sha}",
            "content": base64.encodebytes(data).decode(),
            "encoding": "base64",
        }
    )


@route("GET", R + "/git/commits/{commit_sha}")
def get_git_commit(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = call.params["commit_sha"]
    if repo.git.object_type(sha) != "commit":
        raise not_found()
    return ok(git_commit_json(fake, repo, repo.git.read_commit(sha)))


@route("GET", R + "/contents/{path}")
def get_contents(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    ref = call.query.get("ref") or repo.default_branch
    commit = repo.git.resolve(ref)
    if commit is None:
        raise GitHubError(404, f"No commit found for the ref {ref}")
    path = call.params["path"].strip("/")
    if not path:  # the root directory
        children = repo.git.ls_tree(commit)
        return ok([content_json(fake, repo, c.path, c, ref) for c in children])
    found = repo.git.ls_tree(commit, path=path)
    entry = next((e for e in found if e.path == path), None)
    if entry is None:
        raise not_found()
    if entry.type == "tree":
        children = repo.git.ls_tree(entry.sha)
        listing = [content_json(fake, repo, f"{path}/{c.path}", c, ref) for c in children]
        return ok(listing)
    if entry.type == "blob" and "raw" in call.accept:
        text = repo.git.read_blob(entry.sha).decode(errors="replace")
        return ok(RawBody(text, "application/vnd.github.v3.raw; charset=utf-8"))
    body = content_json(fake, repo, path, entry, ref)
    if entry.type == "blob":
        data = repo.git.read_blob(entry.sha)
        body.update({"content": base64.encodebytes(data).decode(), "encoding": "base64"})
    return ok(body)


@route("PUT", R + "/contents/{path}")
def put_contents(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    path = call.params["path"].strip("/")
    branch = call.body.get("branch") or repo.default_branch
    parent = repo.git.ref(f"refs/heads/{branch}")
    if parent is None:
        raise GitHubError(404, f"Branch {branch} not found")
    try:
        data = base64.b64decode(call.body["content"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid("content is not valid Base64", field_name="content") from None
    files = repo.git.flat_files(parent)
    existing = files.get(path)
    given_sha = call.body.get("sha")
    if existing and not given_sha:
        raise GitHubError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
    if existing and given_sha != existing.sha:
        raise GitHubError(409, f"{path} does not match {given_sha}")
    blob = repo.git.write_blob(data)
    files[path] = Entry("100644", "blob", blob, path, len(data))
    tree = repo.git.write_tree(files)
    sha = repo.git.commit_tree(tree, [parent], call.body["message"])
    repo.git.set_ref(f"refs/heads/{branch}", sha)
    entry = Entry("100644", "blob", blob, path, len(data))
    content = content_json(fake, repo, path, entry, branch)
    body = {"content": content, "commit": git_commit_json(fake, repo, repo.git.read_commit(sha))}
    return ok(body, 200 if existing else 201)


# --- git database -----------------------------------------------------------------------


def full_ref(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/{name}"


@route("GET", R + "/git/ref/{ref}")
def get_ref(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    name = full_ref(call.params["ref"])
    sha = repo.git.ref(name)
    if sha is None:
        raise not_found()
    return ok(ref_json(fake, repo, name, sha))


@route("GET", R + "/git/matching-refs/{ref}")
def matching_refs(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    prefix = full_ref(call.params["ref"])
    found = [
        ref_json(fake, repo, name, sha) for name, sha in repo.git.refs() if name.startswith(prefix)
    ]
    return ok(found)


@route("POST", R + "/git/refs")
def create_ref(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    name, sha = call.body["ref"], call.body["sha"]
    if not name.startswith("refs/") or name.count("/") < 2:
        raise GitHubError(
            422, "Reference name must start with 'refs/' and have at least two slashes."
        )
    if repo.git.object_type(sha) is None:
        raise GitHubError(422, "Object does not exist")
    if repo.git.ref(name) is not None:
        raise GitHubError(422, "Reference already exists")
    repo.git.set_ref(name, sha)
    return ok(
        ref_json(fake, repo, name, sha), 201, {"Location": f"{fake.base_url}{call.path}/{name[5:]}"}
    )


@route("PATCH", R + "/git/refs/{ref}")
def update_ref(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    name = full_ref(call.params["ref"])
    current = repo.git.ref(name)
    sha = call.body["sha"]
    if current is None:
        raise GitHubError(422, "Reference does not exist")
    if repo.git.object_type(sha) != "commit":
        raise GitHubError(422, "Object does not exist")
    if not call.body.get("force") and not repo.git.is_ancestor(current, sha):
        raise GitHubError(422, "Update is not a fast forward")
    repo.git.set_ref(name, sha)
    return ok(ref_json(fake, repo, name, sha))


@route("DELETE", R + "/git/refs/{ref}")
def delete_ref(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    name = full_ref(call.params["ref"])
    if repo.git.ref(name) is None:
        raise GitHubError(422, "Reference does not exist")
    repo.git.delete_ref(name)
    return ok(None, 204)


@route("POST", R + "/git/blobs")
def create_blob(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    content = call.body["content"]
    if call.body.get("encoding") == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("content is not valid Base64", field_name="content") from None
    else:
        data = content.encode()
    sha = repo.git.write_blob(data)
    url = f"{fake.base_url}/repos/{repo.full_name}/git/blobs/{sha}"
    return ok({"sha": sha, "url": url}, 201, {"Location": url})


@route("POST", R + "/git/trees")
def create_tree(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    base = call.body.get("base_tree")
    files: dict[str, Entry] = {}
    if base:
        if repo.git.object_type(base) not in ("tree", "commit"):
            raise GitHubError(422, "base_tree is not a valid tree oid")
        files = repo.git.flat_files(base)
    for item in call.body["tree"]:
        path = item["path"].strip("/")
        if "content" in item and item.get("sha") is not None:
            raise invalid("tree.sha and tree.content cannot both be given", field_name="tree")
        if "content" in item:
            sha = repo.git.write_blob(item["content"].encode())
        elif item.get("sha") is None:
            if "sha" not in item:
                raise invalid("each tree entry needs sha or content", field_name="tree")
            for name in [p for p in files if p == path or p.startswith(path + "/")]:
                del files[name]
            continue
        else:
            sha = item["sha"]
            if repo.git.object_type(sha) is None:
                raise GitHubError(422, f"GitRPC::BadObjectState: {sha} is not a valid object")
        kind = item.get("type", "blob")
        if kind == "tree":
            for name in [p for p in files if p.startswith(path + "/")]:
                del files[name]
            for sub in repo.git.flat_files(sha).values():
                files[f"{path}/{sub.path}"] = Entry(
                    sub.mode, sub.type, sub.sha, f"{path}/{sub.path}"
                )
        else:
            files[path] = Entry(item.get("mode", "100644"), kind, sha, path)
    tree = repo.git.write_tree(files)
    api = f"{fake.base_url}/repos/{repo.full_name}/git"
    entries = [
        {
            "path": e.path,
            "mode": e.mode,
            "type": e.type,
            "sha": e.sha,
            "size": e.size,
            "url": f"{api}/{e.type}s/{e.sha}",
        }
        for e in repo.git.ls_tree(tree)
    ]
    for entry in entries:
        if entry["size"] is None:
            del entry["size"]
    url = f"{api}/trees/{tree}"
    return ok(
        {"sha": tree, "url": url, "tree": entries, "truncated": False}, 201, {"Location": url}
    )


@route("POST", R + "/git/commits")
def create_commit(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    tree = call.body["tree"]
    if repo.git.object_type(tree) != "tree":
        raise GitHubError(422, "Tree SHA does not exist")
    parents = call.body.get("parents", [])
    for parent in parents:
        if repo.git.object_type(parent) != "commit":
            raise GitHubError(422, "Parent SHA does not exist or is not a commit object")
    sha = repo.git.commit_tree(tree, parents, call.body["message"])
    own_identity = any(k in call.body for k in ("author", "committer", "signature"))
    if call.installation_id is not None and not own_identity:
        repo.signed_commits.add(sha)  # GitHub signs an App's API commits itself
    body = git_commit_json(fake, repo, repo.git.read_commit(sha))
    return ok(body, 201, {"Location": body["url"]})


@route("GET", R + "/compare/{basehead}")
def compare(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    base_name, sep, head_name = call.params["basehead"].partition("...")
    if not sep:
        raise not_found()
    base, head = repo.git.resolve(base_name), repo.git.resolve(head_name)
    if base is None or head is None:
        raise not_found()
    merge_base = repo.git.merge_base(base, head)
    if merge_base is None:
        raise not_found()
    ahead = repo.git.rev_list(merge_base, head)
    behind = repo.git.rev_list(merge_base, base)
    status = (
        "identical"
        if not ahead and not behind
        else "ahead"
        if not behind
        else "behind"
        if not ahead
        else "diverged"
    )
    commits = [commit_json(fake, repo, sha, files=False) for sha in ahead]
    files = [diff_entry(fake, repo, head, c) for c in repo.git.changes(merge_base, head)]
    spec = call.params["basehead"]
    api = f"{fake.base_url}/repos/{repo.full_name}"
    body = {
        "url": f"{api}/compare/{spec}",
        "html_url": f"{HTML}/{repo.full_name}/compare/{spec}",
        "permalink_url": f"{HTML}/{repo.full_name}/compare/{base[:7]}...{head[:7]}",
        "diff_url": f"{HTML}/{repo.full_name}/compare/{spec}.diff",
        "patch_url": f"{HTML}/{repo.full_name}/compare/{spec}.patch",
        "base_commit": commit_json(fake, repo, base, files=False),
        "merge_base_commit": commit_json(fake, repo, merge_base, files=False),
        "status": status,
        "ahead_by": len(ahead),
        "behind_by": len(behind),
        "total_commits": len(ahead),
        "commits": commits,
        "files": files,
    }
    return ok(fake.spec.fill("commit-comparison", body))


# --- checks -----------------------------------------------------------------------------


def _check_output(output: Json) -> None:
    if output is None:
        return
    annotations = output.get("annotations") or []
    if len(annotations) > MAX_ANNOTATIONS:
        raise invalid(
            f"Only {MAX_ANNOTATIONS} annotations are allowed per request, got {len(annotations)}",
            field_name="output.annotations",
        )
    for name in ("summary", "text"):
        if len((output.get(name) or "").encode("utf-8")) > MAX_SUMMARY:
            raise invalid(
                f"{name} exceeds a maximum bytesize of {MAX_SUMMARY}", field_name=f"output.{name}"
            )
    for index, note in enumerate(annotations):
        if note["start_line"] < 1 or note["end_line"] < note["start_line"]:
            raise invalid(
                f"annotation {index}: start_line must be ≥ 1 and ≤ end_line",
                field_name="output.annotations",
            )
        if ("start_column" in note or "end_column" in note) and note["start_line"] != note[
            "end_line"
        ]:
            raise invalid(
                f"annotation {index}: columns are only allowed when start_line == end_line",
                field_name="output.annotations",
            )


def _apply_check_fields(run: CheckRun, body: Json) -> None:
    if len(body.get("actions") or []) > 3:
        raise invalid("At most 3 actions are allowed", field_name="actions")
    _check_output(body.get("output"))
    status = body.get("status", run.status)
    conclusion = body.get("conclusion", run.conclusion)
    if "conclusion" in body and body["conclusion"] is not None:
        status = "completed"
    if status == "completed" and conclusion is None:
        raise invalid(
            "conclusion is required when status is completed",
            field_name="conclusion",
            code="missing",
        )
    for key in ("name", "external_id", "details_url", "started_at"):
        if key in body:
            setattr(run, key, body[key])
    run.status = status
    run.conclusion = conclusion if status == "completed" else None
    if status == "completed":
        run.completed_at = body.get("completed_at") or run.completed_at or now_iso()
    if status != "queued" and run.started_at is None:
        run.started_at = now_iso()
    output = body.get("output")
    if output is not None:
        run.title = output.get("title", run.title)
        run.summary = output.get("summary", run.summary)
        run.text = output.get("text", run.text)
        run.annotations.extend(dict(a) for a in output.get("annotations") or [])
    if "actions" in body:
        run.actions = list(body["actions"])


def suite_for(fake: FakeGitHub, repo: Repo, sha: str) -> CheckSuite:
    for suite in fake.check_suites.values():
        if suite.repo == repo.full_name and suite.head_sha == sha and suite.app_id == fake.app_id:
            return suite
    branch = next((name[11:] for name, ref in repo.git.refs("refs/heads/") if ref == sha), None)
    suite = CheckSuite(fake.new_id(), repo.full_name, sha, branch, fake.app_id)
    fake.check_suites[suite.id] = suite
    return suite


@route("POST", R + "/check-runs")
def create_check_run(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = call.body["head_sha"]
    if len(sha) != 40 or repo.git.object_type(sha) != "commit":
        raise GitHubError(422, f"No commit found for SHA: {sha}")
    suite = suite_for(fake, repo, sha)
    run = CheckRun(fake.new_id(), repo.full_name, suite.id, sha, call.body["name"])
    _apply_check_fields(run, call.body)
    fake.check_runs[run.id] = run
    return ok(check_run_json(fake, run), 201)


def _run(fake: FakeGitHub, call: Call) -> CheckRun:
    run = fake.check_runs.get(call.int_param("check_run_id"))
    if run is None or run.repo != _repo(call).full_name:
        raise not_found()
    return run


@route("GET", R + "/check-runs/{check_run_id}")
def get_check_run(fake: FakeGitHub, call: Call) -> Reply:
    return ok(check_run_json(fake, _run(fake, call)))


@route("PATCH", R + "/check-runs/{check_run_id}")
def update_check_run(fake: FakeGitHub, call: Call) -> Reply:
    run = _run(fake, call)
    _apply_check_fields(run, call.body)
    return ok(check_run_json(fake, run))


@route("GET", R + "/check-runs/{check_run_id}/annotations")
def list_annotations(fake: FakeGitHub, call: Call) -> Reply:
    run = _run(fake, call)
    items = [
        {
            "path": a["path"],
            "start_line": a["start_line"],
            "end_line": a["end_line"],
            "start_column": a.get("start_column"),
            "end_column": a.get("end_column"),
            "annotation_level": a["annotation_level"],
            "title": a.get("title"),
            "message": a["message"],
            "raw_details": a.get("raw_details"),
            "blob_href": f"{HTML}/{run.repo}/blob/{run.head_sha}/{a['path']}",
        }
        for a in run.annotations
    ]
    page, headers = paginate(fake, call, items)
    return ok(page, headers=headers)


@route("POST", R + "/check-runs/{check_run_id}/rerequest")
def rerequest_check_run(fake: FakeGitHub, call: Call) -> Reply:
    run = _run(fake, call)
    run.rerequests += 1
    return ok({}, 201)


def _runs_listing(fake: FakeGitHub, call: Call, runs: list[CheckRun]) -> Reply:
    name = call.query.get("check_name")
    status = call.query.get("status")
    if name is not None:
        runs = [r for r in runs if r.name == name]
    if status is not None:
        runs = [r for r in runs if r.status == status]
    if call.query.get("filter", "latest") == "latest":
        latest: dict[str, CheckRun] = {}
        for run in runs:
            latest[run.name] = run
        runs = list(latest.values())
    runs = sorted(runs, key=lambda r: r.id, reverse=True)
    page, headers = paginate(fake, call, [check_run_json(fake, r) for r in runs])
    return ok({"total_count": len(runs), "check_runs": page}, headers=headers)


@route("GET", R + "/commits/{ref}/check-runs")
def list_check_runs_for_ref(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = resolve_commit(repo, call.params["ref"])
    runs = [r for r in fake.check_runs.values() if r.repo == repo.full_name and r.head_sha == sha]
    return _runs_listing(fake, call, runs)


@route("GET", R + "/commits/{ref}/check-suites")
def list_check_suites_for_ref(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = resolve_commit(repo, call.params["ref"])
    suites = [
        s for s in fake.check_suites.values() if s.repo == repo.full_name and s.head_sha == sha
    ]
    if "app_id" in call.query:
        suites = [s for s in suites if str(s.app_id) == call.query["app_id"]]
    if "check_name" in call.query:
        names = {r.suite_id for r in fake.check_runs.values() if r.name == call.query["check_name"]}
        suites = [s for s in suites if s.id in names]
    page, headers = paginate(fake, call, [check_suite_json(fake, s) for s in suites])
    return ok({"total_count": len(suites), "check_suites": page}, headers=headers)


def _suite(fake: FakeGitHub, call: Call) -> CheckSuite:
    suite = fake.check_suites.get(call.int_param("check_suite_id"))
    if suite is None or suite.repo != _repo(call).full_name:
        raise not_found()
    return suite


@route("GET", R + "/check-suites/{check_suite_id}")
def get_check_suite(fake: FakeGitHub, call: Call) -> Reply:
    return ok(check_suite_json(fake, _suite(fake, call)))


@route("GET", R + "/check-suites/{check_suite_id}/check-runs")
def list_suite_runs(fake: FakeGitHub, call: Call) -> Reply:
    suite = _suite(fake, call)
    return _runs_listing(
        fake, call, [r for r in fake.check_runs.values() if r.suite_id == suite.id]
    )


@route("POST", R + "/check-suites/{check_suite_id}/rerequest")
def rerequest_suite(fake: FakeGitHub, call: Call) -> Reply:
    _suite(fake, call).rerequests += 1
    return ok({}, 201)


# --- pulls ------------------------------------------------------------------------------


def _pull(call: Call, name: str = "pull_number") -> Pull:
    pull = _repo(call).pulls.get(call.int_param(name))
    if pull is None:
        raise not_found()
    return pull


@route("GET", R + "/pulls")
def list_pulls(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    state = call.query.get("state", "open")
    pulls = [p for p in repo.pulls.values() if state == "all" or p.state == state]
    if "head" in call.query:
        owner, _, branch = call.query["head"].partition(":")
        pulls = [p for p in pulls if owner == repo.owner and p.head == branch] if branch else []
    if "base" in call.query:
        pulls = [p for p in pulls if p.base == call.query["base"]]
    pulls.sort(key=lambda p: p.number, reverse=call.query.get("direction", "desc") == "desc")
    page, headers = paginate(fake, call, pulls)
    return ok([pull_json(fake, repo, p, "pull-request-simple") for p in page], headers=headers)


@route("POST", R + "/pulls")
def create_pull(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    head = call.body["head"].split(":", 1)[-1]
    base = call.body["base"]
    if "title" not in call.body and "issue" not in call.body:
        raise invalid("title is required", field_name="title", code="missing_field")
    for field_name, branch in (("head", head), ("base", base)):
        if repo.git.ref(f"refs/heads/{branch}") is None:
            raise GitHubError(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": field_name, "code": "invalid"}],
            )
    if any(p.head == head and p.base == base and p.state == "open" for p in repo.pulls.values()):
        raise GitHubError(
            422,
            "Validation Failed",
            errors=[
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"A pull request already exists for {repo.owner}:{head}.",
                }
            ],
        )
    if not repo.git.rev_list(f"refs/heads/{base}", f"refs/heads/{head}"):
        raise GitHubError(
            422,
            "Validation Failed",
            errors=[
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head}",
                }
            ],
        )
    number = fake.open_pull(
        repo.full_name,
        head,
        base,
        call.body.get("title", ""),
        body=call.body.get("body"),
        user=bot_login(fake),
        draft=bool(call.body.get("draft")),
    )
    return ok(pull_json(fake, repo, repo.pulls[number]), 201)


@route("GET", R + "/pulls/{pull_number}")
def get_pull(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _pull(call)
    if "diff" in call.accept:
        head = repo.git.ref(f"refs/heads/{pull.head}")
        base = repo.git.ref(f"refs/heads/{pull.base}")
        merge_base = repo.git.merge_base(base, head) if head and base else None
        text = repo.git.diff(merge_base, head) if merge_base and head else ""
        return ok(RawBody(text, "application/vnd.github.v3.diff; charset=utf-8"))
    return ok(pull_json(fake, repo, pull))


@route("PATCH", R + "/pulls/{pull_number}")
def update_pull(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _pull(call)
    for key in ("title", "body", "base"):
        if key in call.body:
            setattr(pull, key, call.body[key])
    if "state" in call.body and not pull.merged:
        pull.state = call.body["state"]
        pull.closed_at = now_iso() if pull.state == "closed" else None
    pull.updated_at = now_iso()
    return ok(pull_json(fake, repo, pull))


@route("GET", R + "/pulls/{pull_number}/files")
def pull_files(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _pull(call)
    head = repo.git.ref(f"refs/heads/{pull.head}") or ""
    entries = [diff_entry(fake, repo, head, c) for c in pull_changes(repo, pull)]
    page, headers = paginate(fake, call, entries)
    return ok(page, headers=headers)


@route("PUT", R + "/pulls/{pull_number}/merge")
def merge_pull(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _pull(call)
    body = call.body or {}
    if pull.merged or pull.state != "open":
        raise GitHubError(405, "Pull Request is not mergeable")
    head = repo.git.ref(f"refs/heads/{pull.head}")
    base = repo.git.ref(f"refs/heads/{pull.base}")
    if head is None or base is None:
        raise GitHubError(405, "Pull Request is not mergeable")
    if body.get("sha") and body["sha"] != head:
        raise GitHubError(409, "Head branch was modified. Review and try the merge again.")
    _enforce_required_checks(fake, repo, pull, head, base)
    tree = repo.git.merge_tree(base, head)
    if tree is None:
        raise GitHubError(405, "Pull Request is not mergeable")
    method = body.get("merge_method", "merge")
    title = body.get("commit_title") or (
        f"Merge pull request #{pull.number} from {repo.owner}/{pull.head}"
        if method == "merge"
        else f"{pull.title} (#{pull.number})"
    )
    message = title + ("\n\n" + body["commit_message"] if body.get("commit_message") else "")
    parents = [base, head] if method == "merge" else [base]
    sha = repo.git.commit_tree(tree, parents, message)
    repo.git.set_ref(f"refs/heads/{pull.base}", sha)
    pull.merged, pull.state = True, "closed"
    pull.merge_commit_sha = sha
    pull.merged_by = bot_login(fake)
    pull.merged_at = pull.closed_at = pull.updated_at = now_iso()
    return ok({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})


def _required(repo: Repo, branch: str) -> tuple[list[str], bool]:
    contexts: list[str] = []
    strict = False
    for source in (repo.protection.get(branch), repo.rules.get(branch)):
        if source is not None:
            contexts += [c for c in source.contexts if c not in contexts]
            strict = strict or source.strict
    return contexts, strict


def _enforce_required_checks(
    fake: FakeGitHub, repo: Repo, pull: Pull, head: str, base: str
) -> None:
    """GitHub refuses (405) to merge before every required check passed on the head, and
    (strict) before the head contains the base's."""
    contexts, strict = _required(repo, pull.base)
    if strict and contexts and not repo.git.is_ancestor(base, head):
        raise GitHubError(405, "Head branch is out of date. Review and try the merge again.")
    for context in contexts:
        runs = [
            r
            for r in fake.check_runs.values()
            if r.repo == repo.full_name and r.head_sha == head and r.name == context
        ]
        statuses = [s for s in repo.statuses if s.sha == head and s.context == context]
        passed = (
            runs and max(runs, key=lambda r: r.id).conclusion in ("success", "neutral", "skipped")
        ) or (statuses and statuses[-1].state == "success")
        if not passed:
            raise GitHubError(405, f'Required status check "{context}" is expected.')


@route("GET", R + "/branches/{branch}/protection/required_status_checks")
def required_status_checks(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    branch = call.params["branch"]
    protection = repo.protection.get(branch)
    if protection is None:
        raise GitHubError(404, "Required status checks not enabled")
    api = f"{fake.base_url}/repos/{repo.full_name}/branches/{branch}/protection"
    return ok(
        {
            "url": f"{api}/required_status_checks",
            "contexts_url": f"{api}/required_status_checks/contexts",
            "strict": protection.strict,
            "contexts": list(protection.contexts),
            "checks": [{"context": c, "app_id": None} for c in protection.contexts],
        }
    )


@route("GET", R + "/rules/branches/{branch}")
def rules_for_branch(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    rule = repo.rules.get(call.params["branch"])
    rules = []
    if rule is not None:
        rules.append(
            {
                "type": "required_status_checks",
                "parameters": {
                    "required_status_checks": [{"context": c} for c in rule.contexts],
                    "strict_required_status_checks_policy": rule.strict,
                },
                "ruleset_id": 1,
                "ruleset_source": repo.full_name,
                "ruleset_source_type": "Repository",
            }
        )
    page, headers = paginate(fake, call, rules)
    return ok(page, headers=headers)


@route("PUT", R + "/pulls/{pull_number}/update-branch")
def update_branch(fake: FakeGitHub, call: Call) -> Reply:
    """Merge the base branch into the pull request's branch (GitHub answers 202 and does it
    in the background; the fake does it at once)."""
    repo, pull = _repo(call), _pull(call)
    head = repo.git.ref(f"refs/heads/{pull.head}")
    base = repo.git.ref(f"refs/heads/{pull.base}")
    expected = (call.body or {}).get("expected_head_sha")
    if head is None or base is None or pull.state != "open":
        raise invalid("the pull request cannot be updated")
    if expected and expected != head:
        raise invalid("expected head sha didn't match current head ref.")
    if not repo.git.is_ancestor(base, head):
        tree = repo.git.merge_tree(head, base)
        if tree is None:
            raise invalid("merge conflict between base and head")
        message = f"Merge branch '{pull.base}' into {pull.head}"
        repo.git.set_ref(
            f"refs/heads/{pull.head}", repo.git.commit_tree(tree, [head, base], message)
        )
    url = f"{HTML}/{repo.full_name}/pull/{pull.number}"
    return ok({"message": "Updating pull request branch.", "url": url}, 202)


@route("GET", R + "/commits/{commit_sha}/pulls")
def pulls_for_commit(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = resolve_commit(repo, call.params["commit_sha"])
    found = []
    for pull in repo.pulls.values():
        head = repo.git.ref(f"refs/heads/{pull.head}")
        if pull.merge_commit_sha == sha or (head and sha in pull_commits(repo, pull)):
            found.append(pull)
    page, headers = paginate(fake, call, found)
    return ok([pull_json(fake, repo, p, "pull-request-simple") for p in page], headers=headers)


# --- labels and comments ----------------------------------------------------------------


@route("GET", R + "/labels")
def list_labels(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    page, headers = paginate(fake, call, [label_json(fake, repo, x) for x in repo.labels.values()])
    return ok(page, headers=headers)


@route("POST", R + "/labels")
def create_label(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    name = call.body["name"]
    color = call.body.get("color", "ededed").lstrip("#")
    if len(color) != 6 or any(c not in "0123456789abcdefABCDEF" for c in color):
        raise GitHubError(
            422,
            "Validation Failed",
            errors=[{"resource": "Label", "code": "invalid", "field": "color"}],
        )
    if name in repo.labels:
        raise GitHubError(
            422,
            "Validation Failed",
            errors=[{"resource": "Label", "code": "already_exists", "field": "name"}],
        )
    label = fake.ensure_label(repo, name, color)
    label["description"] = call.body.get("description")
    url = label_json(fake, repo, label)["url"]
    return ok(label_json(fake, repo, label), 201, {"Location": url})


def _issue(call: Call) -> Pull | Issue:
    """A pull request or a plain issue (GitHub numbers both alike)."""
    found = _repo(call).issues.get(call.int_param("issue_number"))
    return found if found is not None else _pull(call, "issue_number")


@route("POST", R + "/issues")
def create_issue(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    body = call.body
    if len(body.get("body") or "") > MAX_ISSUE_BODY:
        raise invalid("body is too long (maximum is 65536 characters)", field_name="body")
    issue = Issue(
        fake.new_id(), repo.next_number(), str(body["title"]), body.get("body"), bot_login(fake)
    )
    for item in body.get("labels") or ():
        name = item["name"] if isinstance(item, dict) else item
        fake.ensure_label(repo, name)
        issue.labels.append(name)
    repo.issues[issue.number] = issue
    found = issue_json(fake, repo, issue)
    return ok(found, 201, {"Location": found["url"]})


def _plain_issue(call: Call) -> Issue:
    issue = _repo(call).issues.get(call.int_param("issue_number"))
    if issue is None:
        raise not_found()  # pull requests are served by /pulls here
    return issue


@route("GET", R + "/issues/{issue_number}")
def get_issue(fake: FakeGitHub, call: Call) -> Reply:
    return ok(issue_json(fake, _repo(call), _plain_issue(call)))


@route("PATCH", R + "/issues/{issue_number}")
def update_issue(fake: FakeGitHub, call: Call) -> Reply:
    repo, issue = _repo(call), _plain_issue(call)
    body = call.body
    if len(body.get("body") or "") > MAX_ISSUE_BODY:
        raise invalid("body is too long (maximum is 65536 characters)", field_name="body")
    if "title" in body:
        issue.title = str(body["title"])
    if "body" in body:
        issue.body = body["body"]
    if body.get("state") in ("open", "closed"):
        issue.state = body["state"]
        issue.closed_at = now_iso() if issue.state == "closed" else None
    issue.updated_at = now_iso()
    return ok(issue_json(fake, repo, issue))


@route("GET", R + "/issues")
def list_issues(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    state = call.query.get("state", "open")
    found = [i for i in repo.issues.values() if state == "all" or i.state == state]
    found.sort(key=lambda i: i.number, reverse=True)
    page, headers = paginate(fake, call, [issue_json(fake, repo, i) for i in found])
    return ok(page, headers=headers)


@route("POST", R + "/issues/comments/{comment_id}/reactions")
def react_to_comment(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    comment_id = call.int_param("comment_id")
    if comment_id not in repo.comments:
        raise not_found()
    user, content = bot_login(fake), call.body["content"]
    for reaction in repo.reactions:
        if (reaction.comment_id, reaction.content, reaction.user) == (comment_id, content, user):
            return ok(reaction_json(fake, reaction))  # GitHub answers 200 for a repeat
    reaction = Reaction(fake.new_id(), comment_id, content, user)
    repo.reactions.append(reaction)
    return ok(reaction_json(fake, reaction), 201)


@route("GET", R + "/issues/comments/{comment_id}/reactions")
def list_comment_reactions(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    comment_id = call.int_param("comment_id")
    if comment_id not in repo.comments:
        raise not_found()
    found = [reaction_json(fake, r) for r in repo.reactions if r.comment_id == comment_id]
    page, headers = paginate(fake, call, found)
    return ok(page, headers=headers)


@route("GET", R + "/issues/{issue_number}/labels")
def issue_labels(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _issue(call)
    page, headers = paginate(
        fake, call, [label_json(fake, repo, repo.labels[n]) for n in pull.labels]
    )
    return ok(page, headers=headers)


@route("POST", R + "/issues/{issue_number}/labels")
def add_issue_labels(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _issue(call)
    body = call.body
    names = body.get("labels", []) if isinstance(body, dict) else body
    for item in names:
        name = item["name"] if isinstance(item, dict) else item
        fake.ensure_label(repo, name)
        if name not in pull.labels:
            pull.labels.append(name)
    return ok([label_json(fake, repo, repo.labels[n]) for n in pull.labels])


@route("DELETE", R + "/issues/{issue_number}/labels/{name}")
def remove_issue_label(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _issue(call)
    name = call.params["name"]
    if name not in pull.labels:
        raise GitHubError(404, "Label does not exist")
    pull.labels.remove(name)
    return ok([label_json(fake, repo, repo.labels[n]) for n in pull.labels])


@route("GET", R + "/issues/{issue_number}/comments")
def list_comments(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _issue(call)
    comments = [c for c in repo.comments.values() if c.issue_number == pull.number]
    page, headers = paginate(fake, call, [comment_json(fake, repo, c) for c in comments])
    return ok(page, headers=headers)


@route("POST", R + "/issues/{issue_number}/comments")
def create_comment(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _issue(call)
    if len(call.body["body"]) > MAX_SUMMARY:
        raise invalid("Body is too long (maximum is 65536 characters)", field_name="body")
    comment = Comment(fake.new_id(), pull.number, call.body["body"], bot_login(fake))
    repo.comments[comment.id] = comment
    body = comment_json(fake, repo, comment)
    return ok(body, 201, {"Location": body["url"]})


@route("PATCH", R + "/issues/comments/{comment_id}")
def update_comment(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    comment = repo.comments.get(call.int_param("comment_id"))
    if comment is None:
        raise not_found()
    comment.body = call.body["body"]
    comment.updated_at = now_iso()
    return ok(comment_json(fake, repo, comment))


@route("GET", R + "/issues/comments/{comment_id}")
def get_comment(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    comment = repo.comments.get(call.int_param("comment_id"))
    if comment is None:
        raise not_found()
    return ok(comment_json(fake, repo, comment))


@route("DELETE", R + "/issues/comments/{comment_id}")
def delete_comment(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    if repo.comments.pop(call.int_param("comment_id"), None) is None:
        raise not_found()
    return ok(None, 204)


def _label(call: Call) -> Json:
    label = _repo(call).labels.get(call.params["name"])
    if label is None:
        raise not_found()
    return label


@route("GET", R + "/labels/{name}")
def get_label(fake: FakeGitHub, call: Call) -> Reply:
    return ok(label_json(fake, _repo(call), _label(call)))


@route("PATCH", R + "/labels/{name}")
def update_label(fake: FakeGitHub, call: Call) -> Reply:
    repo, label = _repo(call), _label(call)
    if "new_name" in call.body and call.body["new_name"] != label["name"]:
        del repo.labels[label["name"]]
        for pull in repo.pulls.values():
            pull.labels = [call.body["new_name"] if n == label["name"] else n for n in pull.labels]
        label["name"] = call.body["new_name"]
        repo.labels[label["name"]] = label
    for key in ("color", "description"):
        if key in call.body:
            label[key] = call.body[key]
    return ok(label_json(fake, repo, label))


@route("DELETE", R + "/labels/{name}")
def delete_label(fake: FakeGitHub, call: Call) -> Reply:
    repo, label = _repo(call), _label(call)
    del repo.labels[label["name"]]
    for pull in repo.pulls.values():
        pull.labels = [n for n in pull.labels if n != label["name"]]
    return ok(None, 204)


@route("PUT", R + "/issues/{issue_number}/labels")
def set_issue_labels(fake: FakeGitHub, call: Call) -> Reply:
    _issue(call).labels.clear()
    return add_issue_labels(fake, call)


@route("DELETE", R + "/issues/{issue_number}/labels")
def clear_issue_labels(fake: FakeGitHub, call: Call) -> Reply:
    _issue(call).labels.clear()
    return ok(None, 204)


# --- commit statuses and reviews --------------------------------------------------------


@route("POST", R + "/statuses/{sha}")
def create_status(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = call.params["sha"]
    if repo.git.object_type(sha) != "commit":
        raise GitHubError(422, f"No commit found for SHA: {sha}")
    status = Status(
        fake.new_id(),
        sha,
        call.body["state"],
        call.body.get("context") or "default",
        call.body.get("description"),
        call.body.get("target_url"),
        bot_login(fake),
    )
    repo.statuses.append(status)
    body = status_json(fake, repo, status)
    return ok(body, 201, {"Location": body["url"]})


@route("GET", R + "/commits/{ref}/status")
def combined_status(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = resolve_commit(repo, call.params["ref"])
    latest: dict[str, Status] = {}
    for status in repo.statuses:
        if status.sha == sha:
            latest[status.context] = status
    statuses = sorted(latest.values(), key=lambda s: s.id, reverse=True)
    api = f"{fake.base_url}/repos/{repo.full_name}"
    listed = [status_json(fake, repo, s) for s in statuses]
    for item in listed:
        item.pop("creator")
    minimal = fake.spec.fill("minimal-repository", repo_json(fake, repo))
    return ok(
        {
            "state": combined_state(statuses),
            "sha": sha,
            "total_count": len(statuses),
            "statuses": listed,
            "repository": minimal,
            "commit_url": f"{api}/commits/{sha}",
            "url": f"{api}/commits/{sha}/status",
        }
    )


@route("POST", R + "/check-suites")
def create_check_suite(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    sha = call.body["head_sha"]
    if repo.git.object_type(sha) != "commit":
        raise GitHubError(422, f"No commit found for SHA: {sha}")
    existed = any(
        s.repo == repo.full_name and s.head_sha == sha and s.app_id == fake.app_id
        for s in fake.check_suites.values()
    )
    suite = suite_for(fake, repo, sha)
    return ok(check_suite_json(fake, suite), 200 if existed else 201)


@route("GET", R + "/pulls/{pull_number}/reviews")
def list_reviews(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _pull(call)
    page, headers = paginate(fake, call, pull.reviews)
    return ok([review_json(fake, repo, pull, r) for r in page], headers=headers)


@route("POST", R + "/pulls/{pull_number}/reviews")
def create_review(fake: FakeGitHub, call: Call) -> Reply:
    repo, pull = _repo(call), _pull(call)
    body = call.body or {}
    event = body.get("event")
    state = {
        "APPROVE": "APPROVED",
        "REQUEST_CHANGES": "CHANGES_REQUESTED",
        "COMMENT": "COMMENTED",
    }.get(event or "", "PENDING")
    if state in ("CHANGES_REQUESTED", "COMMENTED") and not body.get("body"):
        raise invalid(f"body is required for event {event}", field_name="body", code="missing")
    head = repo.git.ref(f"refs/heads/{pull.head}") or ""
    review = Review(
        fake.new_id(),
        bot_login(fake),
        state,
        body.get("body", ""),
        body.get("commit_id") or head,
        None if state == "PENDING" else now_iso(),
    )
    pull.reviews.append(review)
    return ok(review_json(fake, repo, pull, review))
