"""The forge: where repositories live and where checks are reported.

The bot talks to one `Forge` interface with two implementations: GitHub (`github.py`,
through gidgethub) and a local git repository on disk (`local.py`). Everything the bot
decides is computed from data (`evaluate.py`) and reported through this interface, so
the same pipeline runs with or without GitHub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from flujo.spec.errors import EXIT_INVALID, FlujoError

Level = Literal["notice", "warning", "failure"]
Conclusion = Literal["success", "failure", "neutral", "action_required", "skipped"]
MAX_ANNOTATIONS_PER_REQUEST = 50  # GitHub's limit per create/update of a check run


@dataclass(frozen=True, slots=True)
class Annotation:
    """A message pinned to lines of a file in the commit."""

    path: str
    start_line: int
    end_line: int
    level: Level
    message: str
    title: str | None = None
    start_column: int | None = None
    end_column: int | None = None

    def to_github(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "annotation_level": self.level,
            "message": self.message[:64_000],
        }
        if self.title:
            payload["title"] = self.title[:255]
        # GitHub accepts columns only on single-line annotations.
        if self.start_column is not None and self.start_line == self.end_line:
            payload["start_column"] = self.start_column
            payload["end_column"] = self.end_column or self.start_column
        return payload

    @property
    def fingerprint(self) -> tuple[str, int, str, str]:
        return (self.path, self.start_line, self.level, self.message[:64_000])


@dataclass(frozen=True, slots=True)
class Action:
    """A button on a completed check run (`check_run` `requested_action`)."""

    label: str
    identifier: str
    description: str


@dataclass(frozen=True, slots=True)
class CheckOutput:
    """A check's result for one commit, as a person sees it."""

    name: str
    conclusion: Conclusion
    title: str
    summary: str
    text: str | None = None
    annotations: tuple[Annotation, ...] = ()
    actions: tuple[Action, ...] = field(default=())

    @property
    def blocks_merge(self) -> bool:
        return self.conclusion in ("failure", "action_required")


@dataclass(frozen=True, slots=True)
class CheckRef:
    """A check run on the forge."""

    id: str
    name: str
    sha: str
    fresh: bool = True
    """Created by this run (False: an earlier run of the check is being reused)."""


@dataclass(frozen=True, slots=True)
class RepoFile:
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class Proposal:
    """A change offered for review: a branch with one commit on top of `base`, and a
    pull request from it."""

    branch: str
    files: dict[str, bytes]
    message: str
    title: str
    body: str
    labels: tuple[str, ...] = ()
    base: str | None = None
    """The target branch; None for the repository's default branch."""


@dataclass(frozen=True, slots=True)
class PullRef:
    number: int
    url: str
    branch: str
    state: str = "open"
    created: bool = False
    """True when this call opened it (False: an existing one was updated or kept)."""
    changed: bool = False
    """True when its commit or body changed in this call."""


class Forge(Protocol):
    """What the bot needs from a forge to check commits."""

    async def list_files(self, repo: str, sha: str) -> list[RepoFile]:
        """Every file of the commit (path relative to the repository root, size)."""

    async def read_files(self, repo: str, sha: str, paths: list[str]) -> dict[str, bytes]:
        """The content of these files at the commit."""

    async def queue_check(self, repo: str, sha: str, name: str) -> CheckRef:
        """Show the check as queued; reuse the commit's existing run of that name."""

    async def start_check(self, repo: str, ref: CheckRef) -> None:
        """Show the check as in progress."""

    async def complete_check(self, repo: str, ref: CheckRef, output: CheckOutput) -> None:
        """Show the result; annotations already shown on this run are not repeated."""

    async def default_head(self, repo: str) -> tuple[str, str]:
        """The default branch and the SHA of its head."""

    async def is_fork(self, repo: str) -> bool:
        """Whether the repository is a fork of another (its code comes from elsewhere)."""

    async def closing_comment(self, repo: str, number: int, author: str) -> str | None:
        """The last comment `author` left on pull request `number` (why it was closed)."""

    async def propose(self, repo: str, proposal: Proposal) -> PullRef:
        """Open (or update, never duplicate) the pull request of `proposal.branch`."""

    async def proposals(self, repo: str, prefix: str) -> list[PullRef]:
        """Open pull requests whose branch starts with `prefix`."""

    async def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        """Add labels to pull request `number`."""

    async def comment(self, repo: str, number: int, body: str) -> None:
        """Comment on pull request or issue `number`."""

    async def can_write(self, repo: str, login: str) -> bool:
        """Whether `login` may push to `repo` (write, maintain or admin): who may approve
        policies or steer the bot."""

    async def override_labels(self, repo: str, sha: str) -> dict[str, int]:
        """Policy ids approved by `flujo/override:<id>` labels on pull requests of `sha`,
        with the pull request's number."""

    async def upload_sarif(self, repo: str, sha: str, ref: str, sarif: str) -> None:
        """Send code scanning findings of `sha` on `ref` (`sarif`: gzip, then base64)."""


# -- merging (auto-apply) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PullState:
    """A pull request as the forge has it now."""

    number: int
    state: str
    merged: bool
    head_sha: str
    head_branch: str
    base_branch: str
    labels: tuple[str, ...] = ()
    body: str = ""
    merge_commit_sha: str | None = None


@dataclass(frozen=True, slots=True)
class RequiredChecks:
    """The status checks a branch requires, from branch protection and rulesets."""

    contexts: tuple[str, ...]
    strict: bool = False
    """The pull request must contain the base's head before merging."""
    sources: tuple[str, ...] = ()
    """Where they were read (`branch protection`, `rulesets`)."""


@dataclass(frozen=True, slots=True)
class CheckState:
    """The latest check run or commit status of one name on one commit."""

    name: str
    sha: str
    status: str
    """`completed`, or `queued` / `in_progress` / `pending` while it runs."""
    conclusion: str | None
    """success, failure, neutral, skipped, cancelled, timed_out, action_required, error."""


class MergeRefused(FlujoError):
    """The forge would not merge or update the pull request (the reason is its answer;
    exit code 1 if it ever reached a command: the pull request cannot be merged as it is)."""

    exit_code = EXIT_INVALID


class Merging(Protocol):
    """What auto-apply needs beyond `Forge`: read pull requests and required checks, merge."""

    async def pull(self, repo: str, number: int) -> PullState:
        """Pull request `number` now."""

    async def required_checks(self, repo: str, branch: str) -> RequiredChecks:
        """Every status check `branch` requires (protection and rulesets, merged)."""

    async def check_states(self, repo: str, sha: str) -> list[CheckState]:
        """The latest check run of each name and the latest status of each context on `sha`."""

    async def merge(self, repo: str, number: int, sha: str, title: str, message: str) -> str:
        """Merge (squash) pull request `number` only if its head is still `sha`; returns
        the merge commit's SHA. Raises MergeRefused with the forge's reason."""

    async def update_branch(self, repo: str, number: int, expected_head: str) -> None:
        """Bring the base branch into the pull request's branch. Raises MergeRefused."""

    async def branch_sha(self, repo: str, branch: str) -> str | None:
        """The head SHA of `branch` (None: no such branch)."""

    async def set_body(self, repo: str, number: int, body: str) -> None:
        """Replace the body of pull request `number`."""

    async def parents(self, repo: str, sha: str) -> list[str]:
        """The parent SHAs of commit `sha` (a squash merge has one)."""

    async def remove_label(self, repo: str, number: int, label: str) -> None:
        """Take `label` off pull request `number` (nothing when it is not there)."""


# -- the dashboard issue and comment commands ------------------------------------------------


class Issues(Protocol):
    """What the dashboard and comment commands need beyond `Forge` (GitHub only)."""

    async def app_slug(self) -> str:
        """The App's slug: people address its commands as `@<slug>`."""

    async def create_issue(self, repo: str, title: str, body: str) -> int:
        """Open an issue; returns its number."""

    async def issue_body(self, repo: str, number: int) -> tuple[str, str]:
        """The issue's body now (empty when none) and its state (`open`, `closed`)."""

    async def set_issue_body(self, repo: str, number: int, body: str) -> None:
        """Replace the issue's body."""

    async def react(self, repo: str, comment_id: int, content: str) -> None:
        """React to an issue or pull request comment (`eyes`, `+1`, `-1`, ...)."""

    async def close_pull(self, repo: str, number: int) -> None:
        """Close pull request `number` without merging."""
