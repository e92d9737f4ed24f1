"""What the fake GitHub remembers: installations, repositories, pulls, comments, checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.support.fakegithub.git import GitRepo

Json = Any


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubError(Exception):
    """An error answer with GitHub's body: `{"message", "documentation_url"[, "errors"]}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[Json] | None = None,
        violation: bool = False,
        docs: str = "https://docs.github.com/rest",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.violation = violation
        self.docs = docs

    def body(self) -> dict[str, Json]:
        out: dict[str, Json] = {"message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        out["documentation_url"] = self.docs
        return out


def not_found() -> GitHubError:
    return GitHubError(404, "Not Found")


def invalid(message: str, *, field_name: str | None = None, code: str = "invalid") -> GitHubError:
    """422 for a request GitHub rejects by rule; also recorded as a violation."""
    error: dict[str, Json] = {"resource": "Request", "code": code, "message": message}
    if field_name:
        error["field"] = field_name
    return GitHubError(422, "Validation Failed", errors=[error], violation=True)


@dataclass(frozen=True)
class RawBody:
    """A non-JSON answer (`Accept: application/vnd.github.raw` or `.diff`)."""

    text: str
    content_type: str


@dataclass
class Installation:
    id: int
    account: str
    account_id: int
    account_type: str
    created_at: str = field(default_factory=now_iso)


@dataclass
class Pull:
    id: int
    number: int
    title: str
    body: str | None
    head: str
    base: str
    user: str
    draft: bool = False
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    merged: bool = False
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    closed_at: str | None = None
    merged_at: str | None = None
    reviews: list[Review] = field(default_factory=list)


@dataclass
class Review:
    id: int
    user: str
    state: str
    body: str
    commit_id: str
    submitted_at: str | None = field(default_factory=now_iso)


@dataclass
class Status:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: str = field(default_factory=now_iso)


@dataclass
class Comment:
    id: int
    issue_number: int
    body: str
    user: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class Issue:
    """An issue that is not a pull request (they share the repository's numbers)."""

    id: int
    number: int
    title: str
    body: str | None
    user: str
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    closed_at: str | None = None


@dataclass
class Reaction:
    id: int
    comment_id: int
    content: str
    user: str
    created_at: str = field(default_factory=now_iso)


@dataclass
class CheckRun:
    id: int
    repo: str
    suite_id: int
    head_sha: str
    name: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[dict[str, Json]] = field(default_factory=list)
    actions: list[dict[str, Json]] = field(default_factory=list)
    rerequests: int = 0


@dataclass
class CheckSuite:
    id: int
    repo: str
    head_sha: str
    head_branch: str | None
    app_id: int
    created_at: str = field(default_factory=now_iso)
    rerequests: int = 0


@dataclass
class RequiredChecks:
    """Status checks a branch requires before a merge (protection or a ruleset rule)."""

    contexts: list[str]
    strict: bool = False
    """The pull request's branch must contain the base's head (up to date)."""


@dataclass
class Repo:
    id: int
    owner: str
    owner_id: int
    name: str
    default_branch: str
    installation_id: int | None
    git: GitRepo
    private: bool = False
    fork: bool = False
    labels: dict[str, dict[str, Json]] = field(default_factory=dict)
    pulls: dict[int, Pull] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    """Issues that are not pull requests (`issue_json`)."""
    reactions: list[Reaction] = field(default_factory=list)
    """Reactions to issue comments."""
    statuses: list[Status] = field(default_factory=list)
    created_at: str = field(default_factory=now_iso)
    permissions: dict[str, str] = field(default_factory=dict)
    """login -> admin, maintain, write, triage or read (the owner is admin)."""
    signed_commits: set[str] = field(default_factory=set)
    """Commits GitHub signed: made through the API by an App, with no author or committer
    given (GitHub shows them as Verified)."""
    sarif_uploads: list[dict[str, Json]] = field(default_factory=list)
    """Code scanning uploads: id, commit_sha, ref and the decoded SARIF `log`."""
    protection: dict[str, RequiredChecks] = field(default_factory=dict)
    """Branch protection's required status checks, by branch."""
    rules: dict[str, RequiredChecks] = field(default_factory=dict)
    """A ruleset's `required_status_checks` rule, by branch."""

    def permission(self, login: str) -> str:
        """GitHub's role of `login` here; people not listed can only read (public repo)."""
        return "admin" if login == self.owner else self.permissions.get(login, "read")

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def next_number(self) -> int:
        return max(max(self.pulls, default=0), max(self.issues, default=0)) + 1
