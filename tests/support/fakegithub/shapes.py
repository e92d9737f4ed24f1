"""GitHub's JSON shapes for the fake's state: the fields a bot reads, set from real state.

`OpenAPI.fill` completes every other property GitHub's schema requires, so each body is a
full, valid GitHub object.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.support.fakegithub.git import EMPTY_TREE, Change, CommitInfo, Entry
from tests.support.fakegithub.state import (
    CheckRun,
    CheckSuite,
    Comment,
    Issue,
    Pull,
    Reaction,
    Repo,
    Review,
    Status,
    not_found,
)

if TYPE_CHECKING:
    from tests.support.fakegithub.server import FakeGitHub

Json = Any
HTML = "https://github.com"


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


# --- shapes -----------------------------------------------------------------------------


def user_json(fake: FakeGitHub, login: str, kind: str = "User") -> Json:
    api = f"{fake.base_url}/users/{login}"
    return fake.spec.fill(
        "simple-user",
        {
            "login": login,
            "id": fake.user_id(login),
            "node_id": node_id("User", fake.user_id(login)),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{fake.user_id(login)}?v=4",
            "url": api,
            "html_url": f"{HTML}/{login}",
            "type": kind,
            "site_admin": False,
        },
    )


def bot_login(fake: FakeGitHub) -> str:
    return f"{fake.app_slug}[bot]"


def app_json(fake: FakeGitHub) -> Json:
    owner = next(iter(fake.installations.values()), None)
    return fake.spec.fill(
        "integration",
        {
            "id": fake.app_id,
            "slug": fake.app_slug,
            "node_id": node_id("Integration", fake.app_id),
            "owner": user_json(fake, owner.account if owner else "flujo", "Organization"),
            "name": fake.app_name,
            "description": "Flujo pipelines bot (fake)",
            "external_url": "https://flujo.invalid",
            "html_url": f"{HTML}/apps/{fake.app_slug}",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "permissions": {
                "checks": "write",
                "contents": "write",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
            },
            "events": ["check_run", "check_suite", "pull_request", "push", "issue_comment"],
            "installations_count": len(fake.installations),
        },
    )


def installation_json(fake: FakeGitHub, installation_id: int) -> Json:
    inst = fake.installations.get(installation_id)
    if inst is None:
        raise not_found()
    return fake.spec.fill(
        "installation",
        {
            "id": inst.id,
            "account": user_json(fake, inst.account, inst.account_type),
            "app_id": fake.app_id,
            "app_slug": fake.app_slug,
            "target_id": inst.account_id,
            "target_type": inst.account_type,
            "repository_selection": "selected",
            "access_tokens_url": f"{fake.base_url}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{fake.base_url}/installation/repositories",
            "html_url": f"{HTML}/settings/installations/{inst.id}",
            "permissions": app_json(fake)["permissions"],
            "events": app_json(fake)["events"],
            "created_at": inst.created_at,
            "updated_at": inst.created_at,
            "single_file_name": None,
            "suspended_by": None,
            "suspended_at": None,
        },
    )


def repo_json(fake: FakeGitHub, repo: Repo, schema: str = "repository") -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}"
    return fake.spec.fill(
        schema,
        {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": user_json(fake, repo.owner, "Organization"),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": html,
            "url": api,
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "pulls_url": f"{api}/pulls{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "default_branch": repo.default_branch,
            "fork": repo.fork,
            "description": None,
            "homepage": None,
            "language": None,
            "mirror_url": None,
            "license": None,
            "archived": False,
            "disabled": False,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "open_issues": len([p for p in repo.pulls.values() if p.state == "open"]),
            "open_issues_count": len([p for p in repo.pulls.values() if p.state == "open"]),
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": repo.created_at,
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
        },
    )


def label_json(fake: FakeGitHub, repo: Repo, label: Json) -> Json:
    return {
        "id": label["id"],
        "node_id": node_id("Label", label["id"]),
        "url": f"{fake.base_url}/repos/{repo.full_name}/labels/{label['name']}",
        "name": label["name"],
        "color": label["color"],
        "default": label["default"],
        "description": label["description"],
    }


def git_user(info: tuple[str, str, str]) -> Json:
    when = datetime.fromtimestamp(int(info[2]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"name": info[0], "email": info[1], "date": when}


def git_commit_json(fake: FakeGitHub, repo: Repo, info: CommitInfo) -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}/git"
    return {
        "sha": info.sha,
        "node_id": node_id("Commit", int(info.sha[:8], 16)),
        "url": f"{api}/commits/{info.sha}",
        "html_url": f"{HTML}/{repo.full_name}/commit/{info.sha}",
        "author": git_user(info.author),
        "committer": git_user(info.committer),
        "tree": {"sha": info.tree, "url": f"{api}/trees/{info.tree}"},
        "message": info.message.rstrip("\n"),
        "parents": [
            {
                "sha": p,
                "url": f"{api}/commits/{p}",
                "html_url": f"{HTML}/{repo.full_name}/commit/{p}",
            }
            for p in info.parents
        ],
        "verification": _verification(info.sha in repo.signed_commits),
    }


def _verification(signed: bool) -> Json:
    if not signed:
        return {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
            "verified_at": None,
        }
    return {
        "verified": True,
        "reason": "valid",
        "signature": "-----BEGIN PGP SIGNATURE-----\n(fake)\n-----END PGP SIGNATURE-----",
        "payload": "(the commit object)",
        "verified_at": "2026-01-01T00:00:00Z",
    }


def commit_json(fake: FakeGitHub, repo: Repo, sha: str, *, files: bool = True) -> Json:
    info = repo.git.read_commit(sha)
    api = f"{fake.base_url}/repos/{repo.full_name}"
    body: dict[str, Json] = {
        "url": f"{api}/commits/{sha}",
        "sha": sha,
        "node_id": node_id("Commit", int(sha[:8], 16)),
        "html_url": f"{HTML}/{repo.full_name}/commit/{sha}",
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": git_user(info.author),
            "committer": git_user(info.committer),
            "message": info.message.rstrip("\n"),
            "comment_count": 0,
            "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
            "verification": _verification(sha in repo.signed_commits),
        },
        "author": None,
        "committer": None,
        "parents": [
            {
                "sha": p,
                "url": f"{api}/commits/{p}",
                "html_url": f"{HTML}/{repo.full_name}/commit/{p}",
            }
            for p in info.parents
        ],
    }
    if files:
        changes = repo.git.changes(info.parents[0] if info.parents else EMPTY_TREE, sha)
        entries = [diff_entry(fake, repo, sha, c) for c in changes]
        body["files"] = entries
        additions = sum(e["additions"] for e in entries)
        deletions = sum(e["deletions"] for e in entries)
        body["stats"] = {
            "additions": additions,
            "deletions": deletions,
            "total": additions + deletions,
        }
    return fake.spec.fill("commit", body)


def diff_entry(fake: FakeGitHub, repo: Repo, sha: str, change: Change) -> Json:
    entry = {
        "sha": change.sha or "0" * 40,
        "filename": change.path,
        "status": change.status,
        "additions": change.additions,
        "deletions": change.deletions,
        "changes": change.additions + change.deletions,
        "blob_url": f"{HTML}/{repo.full_name}/blob/{sha}/{change.path}",
        "raw_url": f"{HTML}/{repo.full_name}/raw/{sha}/{change.path}",
        "contents_url": f"{fake.base_url}/repos/{repo.full_name}/contents/{change.path}?ref={sha}",
        "patch": change.patch,
    }
    if change.previous_path:
        entry["previous_filename"] = change.previous_path
    return entry


def ref_json(fake: FakeGitHub, repo: Repo, name: str, sha: str) -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}/git"
    kind = repo.git.object_type(sha) or "commit"
    return {
        "ref": name,
        "node_id": node_id("Ref", int(sha[:8], 16)),
        "url": f"{api}/{name}",
        "object": {"type": kind, "sha": sha, "url": f"{api}/{kind}s/{sha}"},
    }


def pull_json(fake: FakeGitHub, repo: Repo, pull: Pull, schema: str = "pull-request") -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}/pull/{pull.number}"
    head_sha = repo.git.ref(f"refs/heads/{pull.head}") or pull_head_sha(repo, pull)
    base_sha = repo.git.ref(f"refs/heads/{pull.base}") or ""

    def side(branch: str, sha: str) -> Json:
        return {
            "label": f"{repo.owner}:{branch}",
            "ref": branch,
            "sha": sha,
            "user": user_json(fake, repo.owner, "Organization"),
            "repo": repo_json(fake, repo),
        }

    body: dict[str, Json] = {
        "url": f"{api}/pulls/{pull.number}",
        "id": pull.id,
        "node_id": node_id("PullRequest", pull.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{api}/issues/{pull.number}",
        "commits_url": f"{api}/pulls/{pull.number}/commits",
        "review_comments_url": f"{api}/pulls/{pull.number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{pull.number}/comments",
        "statuses_url": f"{api}/statuses/{head_sha}",
        "number": pull.number,
        "state": pull.state,
        "locked": False,
        "title": pull.title,
        "user": user_json(fake, pull.user, "Bot" if pull.user.endswith("[bot]") else "User"),
        "body": pull.body,
        "labels": [_pull_label(fake, repo, name, schema) for name in pull.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": pull.merged_at,
        "merge_commit_sha": pull.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": side(pull.head, head_sha),
        "base": side(pull.base, base_sha),
        "_links": {
            name: {"href": href}
            for name, href in {
                "self": f"{api}/pulls/{pull.number}",
                "html": html,
                "issue": f"{api}/issues/{pull.number}",
                "comments": f"{api}/issues/{pull.number}/comments",
                "review_comments": f"{api}/pulls/{pull.number}/comments",
                "review_comment": f"{api}/pulls/comments{{/number}}",
                "commits": f"{api}/pulls/{pull.number}/commits",
                "statuses": f"{api}/statuses/{head_sha}",
            }.items()
        },
        "author_association": "CONTRIBUTOR",
        "auto_merge": None,
        "draft": pull.draft,
    }
    if schema == "pull-request":
        changes = pull_changes(repo, pull)
        merge_tree = repo.git.merge_tree(base_sha, head_sha) if base_sha and head_sha else None
        body.update(
            {
                "merged": pull.merged,
                "mergeable": None if pull.merged else merge_tree is not None,
                "rebaseable": merge_tree is not None,
                "mergeable_state": "clean" if merge_tree is not None else "dirty",
                "merged_by": user_json(fake, pull.merged_by) if pull.merged_by else None,
                "comments": len(
                    [c for c in repo.comments.values() if c.issue_number == pull.number]
                ),
                "review_comments": 0,
                "maintainer_can_modify": False,
                "commits": len(pull_commits(repo, pull)),
                "additions": sum(c.additions for c in changes),
                "deletions": sum(c.deletions for c in changes),
                "changed_files": len(changes),
            }
        )
    return fake.spec.fill(schema, body)


def _pull_label(fake: FakeGitHub, repo: Repo, name: str, schema: str) -> Json:
    label = label_json(fake, repo, repo.labels[name])
    if schema == "pull-request-simple":  # this listing documents description as a string
        label["description"] = label["description"] or ""
    return label


def pull_head_sha(repo: Repo, pull: Pull) -> str:
    """The head SHA of a pull whose branch was deleted: its merge commit's second parent."""
    if pull.merge_commit_sha:
        parents = repo.git.read_commit(pull.merge_commit_sha).parents
        return parents[-1]
    return ""


def pull_commits(repo: Repo, pull: Pull) -> list[str]:
    head = repo.git.ref(f"refs/heads/{pull.head}")
    base = repo.git.ref(f"refs/heads/{pull.base}")
    if not head or not base:
        return []
    return repo.git.rev_list(base, head)


def pull_changes(repo: Repo, pull: Pull) -> list[Change]:
    head = repo.git.ref(f"refs/heads/{pull.head}")
    base = repo.git.ref(f"refs/heads/{pull.base}")
    if not head or not base:
        return []
    merge_base = repo.git.merge_base(base, head) or base
    return repo.git.changes(merge_base, head)


def comment_json(fake: FakeGitHub, repo: Repo, comment: Comment) -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}"
    return fake.spec.fill(
        "issue-comment",
        {
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": (
                f"{HTML}/{repo.full_name}/pull/{comment.issue_number}#issuecomment-{comment.id}"
            ),
            "issue_url": f"{api}/issues/{comment.issue_number}",
            "body": comment.body,
            "user": user_json(
                fake, comment.user, "Bot" if comment.user.endswith("[bot]") else "User"
            ),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": "NONE",
        },
    )


def issue_json(fake: FakeGitHub, repo: Repo, issue: Issue) -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}/issues/{issue.number}"
    return fake.spec.fill(
        "issue",
        {
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "url": f"{api}/issues/{issue.number}",
            "repository_url": api,
            "labels_url": f"{api}/issues/{issue.number}/labels{{/name}}",
            "comments_url": f"{api}/issues/{issue.number}/comments",
            "events_url": f"{api}/issues/{issue.number}/events",
            "html_url": html,
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "user": user_json(fake, issue.user, "Bot" if issue.user.endswith("[bot]") else "User"),
            "labels": [label_json(fake, repo, repo.labels[n]) for n in issue.labels],
            "assignee": None,
            "milestone": None,
            "locked": False,
            "comments": sum(1 for c in repo.comments.values() if c.issue_number == issue.number),
            "closed_at": issue.closed_at,
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "author_association": "NONE",
        },
    )


def reaction_json(fake: FakeGitHub, reaction: Reaction) -> Json:
    return {
        "id": reaction.id,
        "node_id": node_id("Reaction", reaction.id),
        "user": user_json(
            fake, reaction.user, "Bot" if reaction.user.endswith("[bot]") else "User"
        ),
        "content": reaction.content,
        "created_at": reaction.created_at,
    }


def check_run_json(fake: FakeGitHub, run: CheckRun) -> Json:
    repo = fake.repos[run.repo]
    api = f"{fake.base_url}/repos/{run.repo}"
    return fake.spec.fill(
        "check-run",
        {
            "id": run.id,
            "node_id": node_id("CheckRun", run.id),
            "head_sha": run.head_sha,
            "external_id": run.external_id,
            "url": f"{api}/check-runs/{run.id}",
            "html_url": f"{HTML}/{run.repo}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{api}/check-runs/{run.id}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.suite_id},
            "app": app_json(fake),
            "pull_requests": pulls_minimal(fake, repo, run.head_sha),
        },
    )


def pulls_minimal(fake: FakeGitHub, repo: Repo, sha: str) -> list[Json]:
    out = []
    for pull in repo.pulls.values():
        head = repo.git.ref(f"refs/heads/{pull.head}")
        if pull.state != "open" or head != sha:
            continue
        api = f"{fake.base_url}/repos/{repo.full_name}"
        small_repo = {"id": repo.id, "url": api, "name": repo.name}
        out.append(
            {
                "url": f"{api}/pulls/{pull.number}",
                "id": pull.id,
                "number": pull.number,
                "head": {"ref": pull.head, "sha": sha, "repo": small_repo},
                "base": {
                    "ref": pull.base,
                    "sha": repo.git.ref(f"refs/heads/{pull.base}") or "",
                    "repo": small_repo,
                },
            }
        )
    return out


def suite_state(fake: FakeGitHub, suite: CheckSuite) -> tuple[str, str | None]:
    runs = [r for r in fake.check_runs.values() if r.suite_id == suite.id]
    if not runs:
        return "queued", None
    if any(r.status != "completed" for r in runs):
        status = "in_progress" if any(r.status != "queued" for r in runs) else "queued"
        return status, None
    order = [
        "action_required",
        "cancelled",
        "timed_out",
        "failure",
        "neutral",
        "skipped",
        "success",
    ]
    conclusions = [r.conclusion or "neutral" for r in runs]
    worst = min(conclusions, key=lambda c: order.index(c) if c in order else len(order))
    return "completed", worst


def check_suite_json(fake: FakeGitHub, suite: CheckSuite) -> Json:
    repo = fake.repos[suite.repo]
    api = f"{fake.base_url}/repos/{suite.repo}"
    status, conclusion = suite_state(fake, suite)
    info = repo.git.read_commit(suite.head_sha)
    return fake.spec.fill(
        "check-suite",
        {
            "id": suite.id,
            "node_id": node_id("CheckSuite", suite.id),
            "head_branch": suite.head_branch,
            "head_sha": suite.head_sha,
            "status": status,
            "conclusion": conclusion,
            "url": f"{api}/check-suites/{suite.id}",
            "before": info.parents[0] if info.parents else "0" * 40,
            "after": suite.head_sha,
            "pull_requests": pulls_minimal(fake, repo, suite.head_sha),
            "app": app_json(fake),
            "repository": fake.spec.fill("minimal-repository", repo_json(fake, repo)),
            "created_at": suite.created_at,
            "updated_at": suite.created_at,
            "head_commit": {
                "id": suite.head_sha,
                "tree_id": info.tree,
                "message": info.message.rstrip("\n"),
                "timestamp": git_user(info.committer)["date"],
                "author": {"name": info.author[0], "email": info.author[1]},
                "committer": {"name": info.committer[0], "email": info.committer[1]},
            },
            "latest_check_runs_count": len(
                [r for r in fake.check_runs.values() if r.suite_id == suite.id]
            ),
            "check_runs_url": f"{api}/check-suites/{suite.id}/check-runs",
            "rerequestable": True,
            "runs_rerequestable": True,
        },
    )


def content_json(fake: FakeGitHub, repo: Repo, path: str, entry: Entry, ref: str) -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}"
    kind = {"blob": "file", "tree": "dir", "commit": "submodule"}[entry.type]
    if entry.mode == "120000":
        kind = "symlink"
    self_url = f"{api}/contents/{path}?ref={ref}"
    git_url = f"{api}/git/{'trees' if entry.type == 'tree' else 'blobs'}/{entry.sha}"
    html_url = f"{HTML}/{repo.full_name}/{'tree' if entry.type == 'tree' else 'blob'}/{ref}/{path}"
    body: dict[str, Json] = {
        "type": kind,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": entry.sha,
        "size": entry.size or 0,
        "url": self_url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": (
            f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{path}"
            if entry.type == "blob"
            else None
        ),
        "_links": {"self": self_url, "git": git_url, "html": html_url},
    }
    return body


def review_json(fake: FakeGitHub, repo: Repo, pull: Pull, review: Review) -> Json:
    api = f"{fake.base_url}/repos/{repo.full_name}/pulls/{pull.number}"
    html = f"{HTML}/{repo.full_name}/pull/{pull.number}"
    body: dict[str, Json] = {
        "id": review.id,
        "node_id": node_id("PullRequestReview", review.id),
        "user": user_json(fake, review.user, "Bot" if review.user.endswith("[bot]") else "User"),
        "body": review.body,
        "state": review.state,
        "commit_id": review.commit_id,
        "html_url": f"{html}#pullrequestreview-{review.id}",
        "pull_request_url": api,
        "_links": {"html": {"href": html}, "pull_request": {"href": api}},
        "author_association": "MEMBER",
    }
    if review.submitted_at:
        body["submitted_at"] = review.submitted_at
    return body


def status_json(fake: FakeGitHub, repo: Repo, status: Status) -> Json:
    return {
        "url": f"{fake.base_url}/repos/{repo.full_name}/statuses/{status.sha}",
        "avatar_url": None,
        "id": status.id,
        "node_id": node_id("StatusContext", status.id),
        "state": status.state,
        "description": status.description,
        "target_url": status.target_url,
        "context": status.context,
        "created_at": status.created_at,
        "updated_at": status.created_at,
        "creator": user_json(fake, status.creator, "Bot"),
    }


def combined_state(statuses: list[Status]) -> str:
    """GitHub's rule: failure if any error/failure, pending if any pending or none, else success."""
    states = {s.state for s in statuses}
    if states & {"error", "failure"}:
        return "failure"
    if not states or "pending" in states:
        return "pending"
    return "success"
