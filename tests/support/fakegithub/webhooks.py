"""Real GitHub webhook payloads, adjusted to a test's world and signed as GitHub signs them."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from tests.support.fakegithub.reference import reference_dir

if TYPE_CHECKING:
    from tests.support.fakegithub.server import FakeGitHub

Json = Any
HOOKSHOT = "GitHub-Hookshot/5bf1d7b"


def webhook_files() -> list[Path]:
    """Every real payload file, e.g. `webhooks/check_run/created.payload.json`."""
    return sorted((reference_dir() / "webhooks").glob("*/*.json"))


def _file(event: str, name: str) -> Path:
    folder = reference_dir() / "webhooks" / event
    for candidate in (f"{name}.json", f"{name}.payload.json", name):
        if (folder / candidate).is_file():
            return folder / candidate
    names = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
    raise FileNotFoundError(f"no webhook payload {event}/{name}; available: {names}")


@cache
def _load(path: Path) -> Json:
    return json.loads(path.read_text(encoding="utf-8"))


def schema_key(event: str, payload: Json) -> str:
    """The `webhooks/schema.json` definition for a payload: `event$action` or `event$event`."""
    action = payload.get("action")
    return f"{event}${action}" if action else f"{event}$event"


@cache
def _definitions() -> dict[str, Json]:
    path = reference_dir() / "webhooks" / "schema.json"
    definitions: dict[str, Json] = json.loads(path.read_text(encoding="utf-8"))["definitions"]
    return definitions


@cache
def _validator(key: str) -> jsonschema.protocols.Validator:
    if key not in _definitions():
        raise KeyError(f"webhooks/schema.json has no definition {key!r}")
    root = {"$ref": f"#/definitions/{key}", "definitions": _definitions()}
    return jsonschema.Draft7Validator(root)


def _allows(event: str, payload: Json, key: str) -> bool:
    definition = _definitions().get(schema_key(event, payload), {})
    return key in definition.get("properties", {})


def validate(event: str, payload: Json) -> list[str]:
    """Why GitHub could not have sent this payload (empty when it could)."""
    errors = _validator(schema_key(event, payload)).iter_errors(payload)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors]


def _renamed(value: Json, old: str, new: str) -> Json:
    """Every string with `old` (a repository's full name, as in URLs) naming `new` instead."""
    if isinstance(value, str):
        return value.replace(f"/{old}", f"/{new}")
    if isinstance(value, dict):
        return {key: _renamed(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, old, new) for item in value]
    return value


def _set_repo(
    target: Json, full_name: str | None, repo_id: int | None, default_branch: str | None
) -> None:
    if not isinstance(target, dict):
        return
    if full_name:
        owner, name = full_name.split("/")
        target["name"] = name
        target["full_name"] = full_name
        target["html_url"] = f"https://github.com/{full_name}"
        target["url"] = f"https://api.github.com/repos/{full_name}"
        if isinstance(target.get("owner"), dict):
            target["owner"]["login"] = owner
            target["owner"]["html_url"] = f"https://github.com/{owner}"
            if "name" in target["owner"]:
                target["owner"]["name"] = owner
    if repo_id is not None:
        target["id"] = repo_id
    if default_branch and "default_branch" in target:
        target["default_branch"] = default_branch
        if "master_branch" in target:
            target["master_branch"] = default_branch


def payload(
    event: str,
    name: str,
    *,
    repo: str | None = None,
    repo_id: int | None = None,
    default_branch: str | None = None,
    installation_id: int | None = None,
    sha: str | None = None,
    before: str | None = None,
    branch: str | None = None,
    base_branch: str | None = None,
    base_sha: str | None = None,
    number: int | None = None,
    check_name: str | None = None,
    external_id: str | None = None,
    check_run_id: int | None = None,
    check_suite_id: int | None = None,
    label: str | None = None,
    sender: str | None = None,
    comment: str | None = None,
) -> dict[str, Json]:
    """A copy of the real payload `webhooks/<event>/<name>.json` adjusted to the test's world.

    `name` is the file name without `.json` or `.payload.json` (`opened`, `with-installation`).
    `sha` is the head SHA (push: `after`, head_commit, last commit; pull_request: head.sha;
    check_suite/check_run: head_sha), `branch` the head branch (push: `ref`).
    """
    data: dict[str, Json] = copy.deepcopy(_load(_file(event, name)))
    original = (data.get("repository") or {}).get("full_name")
    if repo and original and original != repo:
        data = _renamed(data, original, repo)
    _set_repo(data.get("repository"), repo, repo_id, default_branch)
    if installation_id is not None and _allows(event, data, "installation"):
        found = data.get("installation")
        if isinstance(found, dict) and "account" in found:  # installation events: full object
            found["id"] = installation_id
        else:
            node = f"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{installation_id}"
            data["installation"] = {"id": installation_id, "node_id": node}
    if sender is not None and isinstance(data.get("sender"), dict):
        data["sender"]["login"] = sender
        data["sender"]["html_url"] = f"https://github.com/{sender}"
        data["sender"]["type"] = "Bot" if sender.endswith("[bot]") else "User"
    if event == "push":
        _adjust_push(data, sha, before, branch, repo)
    if event == "pull_request" or "pull_request" in data:
        _adjust_pull(
            data, repo, repo_id, default_branch, sha, branch, base_branch, base_sha, number
        )
    if event == "issues" and number is not None:
        data["issue"]["number"] = number
    if event in ("issue_comment",) and number is not None:
        data["issue"]["number"] = number
        if repo:
            data["issue"]["html_url"] = f"https://github.com/{repo}/pull/{number}"
    if comment is not None and isinstance(data.get("comment"), dict):
        data["comment"]["body"] = comment
    suite = data.get("check_suite")
    run = data.get("check_run")
    if isinstance(run, dict):
        suite = run.get("check_suite")
        if sha:
            run["head_sha"] = sha
        if check_name is not None:
            run["name"] = check_name
        if external_id is not None:
            run["external_id"] = external_id
        if check_run_id is not None:
            run["id"] = check_run_id
    if isinstance(suite, dict):
        if sha:
            suite["head_sha"] = sha
            suite["after"] = sha
            if isinstance(suite.get("head_commit"), dict):
                suite["head_commit"]["id"] = sha
        if branch:
            suite["head_branch"] = branch
        if before:
            suite["before"] = before
        if check_suite_id is not None:
            suite["id"] = check_suite_id
    if label is not None and isinstance(data.get("label"), dict):
        data["label"]["name"] = label
    return data


def _adjust_push(
    data: Json, sha: str | None, before: str | None, branch: str | None, repo: str | None
) -> None:
    if branch:
        data["ref"] = f"refs/heads/{branch}"
    if before:
        data["before"] = before
    if sha:
        data["after"] = sha
        data["deleted"] = False
        if data.get("head_commit") is None:
            data["head_commit"] = _push_commit(sha, repo)
        else:
            data["head_commit"]["id"] = sha
        if data["commits"]:
            data["commits"][-1]["id"] = sha
        else:
            data["commits"] = [dict(data["head_commit"])]
    if repo:
        data["compare"] = (
            f"https://github.com/{repo}/compare/{data['before'][:12]}...{data['after'][:12]}"
        )
        for commit in [*data["commits"], data.get("head_commit")]:
            if isinstance(commit, dict):
                commit["url"] = f"https://github.com/{repo}/commit/{commit['id']}"


def _push_commit(sha: str, repo: str | None) -> Json:
    person = {"name": "Flujo Test", "email": "test@flujo.invalid", "username": "flujo-test"}
    return {
        "id": sha,
        "tree_id": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "distinct": True,
        "message": "Update files",
        "timestamp": "2026-01-01T00:00:00Z",
        "url": f"https://github.com/{repo or 'o/r'}/commit/{sha}",
        "author": person,
        "committer": person,
        "added": [],
        "removed": [],
        "modified": [],
    }


def _adjust_pull(
    data: Json,
    repo: str | None,
    repo_id: int | None,
    default_branch: str | None,
    sha: str | None,
    branch: str | None,
    base_branch: str | None,
    base_sha: str | None,
    number: int | None,
) -> None:
    pull = data.get("pull_request")
    if not isinstance(pull, dict):
        return
    if number is not None:
        pull["number"] = number
        if "number" in data:
            data["number"] = number
    for side, ref, commit in (("head", branch, sha), ("base", base_branch, base_sha)):
        part = pull.get(side)
        if not isinstance(part, dict):
            continue
        _set_repo(part.get("repo"), repo, repo_id, default_branch)
        owner = repo.split("/")[0] if repo else part["label"].split(":")[0]
        if ref:
            part["ref"] = ref
        part["label"] = f"{owner}:{part['ref']}"
        if commit:
            part["sha"] = commit
    if repo:
        number_now = pull["number"]
        pull["html_url"] = f"https://github.com/{repo}/pull/{number_now}"
        pull["url"] = f"https://api.github.com/repos/{repo}/pulls/{number_now}"


def signed(
    event: str, payload: Json, secret: str, delivery_id: str | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a delivery exactly as GitHub sends it (HMAC-SHA256 signed)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    legacy = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": HOOKSHOT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-GitHub-Hook-Installation-Target-ID": "1",
        "X-Hub-Signature": f"sha1={legacy}",
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    return headers, body


def from_fake(
    fake: FakeGitHub, event: str, name: str, *, repo: str, **adjust: Any
) -> dict[str, Json]:
    """`payload()` with what `fake` knows filled in before `adjust` (explicit values win):

    - always: repository id and default branch, installation id;
    - `number` of a pull: head/base branches and SHAs, title, body, state, draft, labels
      (issue_comment: the issue is marked as a pull request);
    - `comment_id` of a comment: its id, body and author;
    - push with `branch`: `sha` = the branch head, `before` = its parent;
    - check_suite with `sha`: the fake's suite for it (created if needed) and its branch;
    - check_run with `check_run_id`: that run's head SHA, name, external id and suite.
    """
    from tests.support.fakegithub.endpoints import suite_for

    known = fake.repo(repo)
    facts: dict[str, Any] = {
        "repo": repo,
        "repo_id": known.id,
        "default_branch": known.default_branch,
        "installation_id": known.installation_id,
    }
    comment = known.comments.get(adjust.pop("comment_id", -1))
    if comment is not None:
        facts.update(comment=comment.body, number=comment.issue_number)
    pull = known.pulls.get(adjust.get("number", facts.get("number", -1)))
    if pull is not None:
        facts["sha"] = known.git.ref(f"refs/heads/{pull.head}")
        facts["branch"] = pull.head
        facts["base_branch"] = pull.base
        facts["base_sha"] = known.git.ref(f"refs/heads/{pull.base}")
    if event == "push" and "branch" in adjust and "sha" not in adjust:
        head = known.git.ref(f"refs/heads/{adjust['branch']}")
        if head:
            facts["sha"] = head
            parents = known.git.read_commit(head).parents
            facts["before"] = parents[0] if parents else "0" * 40
    if event == "check_suite" and "sha" in adjust and "check_suite_id" not in adjust:
        suite = suite_for(fake, known, adjust["sha"])
        facts["check_suite_id"] = suite.id
        if suite.head_branch:
            facts["branch"] = suite.head_branch
    run = fake.check_runs.get(adjust.get("check_run_id", -1))
    if event == "check_run" and run is not None:
        facts.update(
            sha=run.head_sha,
            check_name=run.name,
            external_id=run.external_id,
            check_suite_id=run.suite_id,
        )
    facts = {k: v for k, v in facts.items() if v is not None}
    data = payload(event, name, **{**facts, **adjust})
    if pull is not None:
        _pull_facts(fake, data, known, pull)
    issue = known.issues.get(adjust.get("number", facts.get("number", -1)))
    if issue is not None and isinstance(data.get("issue"), dict):
        _issue_facts(fake, data, known, issue)
    if comment is not None and isinstance(data.get("comment"), dict):
        data["comment"]["id"] = comment.id
        data["comment"]["user"]["login"] = comment.user
        data["comment"]["user"]["type"] = "Bot" if comment.user.endswith("[bot]") else "User"
    return data


def _issue_facts(fake: FakeGitHub, data: Json, repo: Any, issue: Any) -> None:
    """A plain issue's fields (issues events, and issue_comment on an issue)."""
    from tests.support.fakegithub.shapes import label_json

    target = data["issue"]
    target.pop("pull_request", None)
    html = f"https://github.com/{repo.full_name}/issues/{issue.number}"
    target.update(
        number=issue.number,
        title=issue.title,
        body=issue.body,
        state=issue.state,
        html_url=html,
        url=f"https://api.github.com/repos/{repo.full_name}/issues/{issue.number}",
        labels=[label_json(fake, repo, repo.labels[n]) for n in issue.labels],
    )
    target["user"]["login"] = issue.user
    target["user"]["type"] = "Bot" if issue.user.endswith("[bot]") else "User"


def _pull_facts(fake: FakeGitHub, data: Json, repo: Any, pull: Any) -> None:
    from tests.support.fakegithub.shapes import label_json

    labels = [label_json(fake, repo, repo.labels[n]) for n in pull.labels]
    target = data.get("pull_request")
    if isinstance(target, dict):
        target.update(
            title=pull.title,
            body=pull.body,
            state=pull.state,
            draft=pull.draft,
            labels=labels,
        )
        target["user"]["login"] = pull.user
        if "merged" in target:
            target["merged"] = pull.merged
    issue = data.get("issue")
    if isinstance(issue, dict):
        html = f"https://github.com/{repo.full_name}/pull/{pull.number}"
        api = f"https://api.github.com/repos/{repo.full_name}/pulls/{pull.number}"
        issue.update(title=pull.title, body=pull.body, state=pull.state, labels=labels)
        issue["pull_request"] = {
            "url": api,
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
        }
