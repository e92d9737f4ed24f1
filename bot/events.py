"""The webhooks the bot handles, each parsed into a small model of only the fields read.

One frozen pydantic model per routed event and action (`EVENT`, `ACTIONS`); a handler
calls `Model.parse(event)` once and then reads attributes, so a payload GitHub changes
fails here, by name, instead of as a KeyError deep in a handler. Unknown fields are
ignored; a payload that does not parse raises `MalformedEvent` (permanent: dead-lettered,
never retried). Parsing takes some 10-20 µs per delivery.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from gidgethub.sansio import Event
from pydantic import BaseModel, ConfigDict, ValidationError

from flujo.bot.auto_apply import AUTO_APPLY_EVENT
from flujo.bot.queue import Permanent
from flujo.bot.suggestion_prs import SUGGEST_EVENT


class MalformedEvent(Permanent):
    """A delivery whose payload lacks, or mistypes, a field the bot reads."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# -- parts ---------------------------------------------------------------------------------


class Repository(_Model):
    full_name: str


class Installation(_Model):
    id: int


class Account(_Model):
    login: str | None = None  # an enterprise account has none


class InstallationWithAccount(_Model):
    id: int
    account: Account | None = None


class User(_Model):
    login: str = "unknown"
    type: str | None = None


class Label(_Model):
    name: str = ""


class Head(_Model):
    sha: str
    ref: str


class PullRequest(_Model):
    number: int
    head: Head
    base: Head | None = None
    merged: bool | None = None


class PullNumber(_Model):
    number: int


class CheckSuite(_Model):
    head_sha: str
    head_branch: str | None = None


class CheckRun(_Model):
    head_sha: str
    pull_requests: tuple[PullNumber, ...] | None = None


class RequestedAction(_Model):
    identifier: str | None = None


class IssueMark(_Model):
    """Present (whatever its fields) when an issue is a pull request."""


class Issue(_Model):
    number: int
    body: str | None = None
    pull_request: IssueMark | None = None


class IssueComment(_Model):
    id: int
    body: str | None = None
    user: User | None = None


# -- events --------------------------------------------------------------------------------


class WebhookEvent(_Model):
    """One routed delivery: `EVENT` with one of `ACTIONS` (none: the event has no action)."""

    EVENT: ClassVar[str]
    ACTIONS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls, event: Event) -> Self:
        """The delivery's payload as this model; raises `MalformedEvent` when it is not."""
        try:
            return cls.model_validate(event.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(payload)"
            raise MalformedEvent(
                f"a {event.event} payload the bot cannot read: {where}: {first['msg']}"
                f" ({exc.error_count()} problem(s))"
            ) from None


class RepositoryEvent(WebhookEvent):
    """An event about one repository, sent to an installation of the App."""

    repository: Repository
    installation: Installation | None = None

    @property
    def repo(self) -> str:
        return self.repository.full_name

    @property
    def installation_id(self) -> int:
        if self.installation is None:
            raise Permanent("the event names no installation of the App")
        return self.installation.id


class _BySender(_Model):
    """The person (or App) whose action sent the event."""

    sender: User | None = None

    @property
    def actor(self) -> str:
        return self.sender.login if self.sender is not None else "unknown"

    @property
    def by_bot(self) -> bool:
        return self.sender is not None and self.sender.type == "Bot"


class PushEvent(RepositoryEvent):
    EVENT = "push"
    ref: str | None = None
    after: str | None = None
    deleted: bool | None = None


class PullRequestEvent(RepositoryEvent):
    """A pull request whose head may be a new commit to check."""

    EVENT = "pull_request"
    ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")
    pull_request: PullRequest


class PullRequestClosedEvent(RepositoryEvent, _BySender):
    EVENT = "pull_request"
    ACTIONS = ("closed",)
    pull_request: PullRequest


class LabelEvent(RepositoryEvent, _BySender):
    """A label added to or removed from a pull request."""

    EVENT = "pull_request"
    ACTIONS = ("labeled", "unlabeled")
    pull_request: PullRequest
    label: Label | None = None

    @property
    def label_name(self) -> str:
        return self.label.name if self.label is not None else ""


class CheckSuiteEvent(RepositoryEvent):
    EVENT = "check_suite"
    ACTIONS = ("requested", "rerequested")
    check_suite: CheckSuite


class CheckRunEvent(RepositoryEvent):
    EVENT = "check_run"
    ACTIONS = ("rerequested",)
    check_run: CheckRun


class CheckRunActionEvent(RepositoryEvent, _BySender):
    """A button of a check run pressed (`requested_action.identifier` names it)."""

    EVENT = "check_run"
    ACTIONS = ("requested_action",)
    check_run: CheckRun
    requested_action: RequestedAction | None = None

    @property
    def identifier(self) -> str | None:
        return self.requested_action.identifier if self.requested_action is not None else None

    @property
    def pulls(self) -> list[int]:
        return [p.number for p in self.check_run.pull_requests or ()]


class InstallationEvent(WebhookEvent):
    """The App installed, uninstalled, suspended or given new permissions."""

    EVENT = "installation"
    ACTIONS = ("created", "new_permissions_accepted", "deleted", "suspend", "unsuspend")
    installation: InstallationWithAccount
    repositories: tuple[Repository, ...] | None = None

    @property
    def account(self) -> str | None:
        account = self.installation.account
        return account.login if account is not None else None


class InstallationRepositoriesEvent(WebhookEvent):
    """Repositories added to or removed from an installation."""

    EVENT = "installation_repositories"
    ACTIONS = ("added", "removed")
    installation: Installation
    repositories_added: tuple[Repository, ...] | None = None
    repositories_removed: tuple[Repository, ...] | None = None


class IssueCommentEvent(RepositoryEvent, _BySender):
    """A comment on an issue or a pull request (comment commands, `commands.py`)."""

    EVENT = "issue_comment"
    ACTIONS = ("created",)
    issue: Issue
    comment: IssueComment

    @property
    def by_bot(self) -> bool:
        user = self.comment.user
        return super().by_bot or (user is not None and user.type == "Bot")


class IssueEditedEvent(RepositoryEvent, _BySender):
    """An issue's title or body edited (a box of the dashboard ticked, `dashboard.py`)."""

    EVENT = "issues"
    ACTIONS = ("edited",)
    issue: Issue


class SuggestEvent(RepositoryEvent):
    """The bot's own scheduled job: a repository's suggestion cycle (`suggest_delivery`),
    or one a person asked for (`commands.command_delivery`)."""

    EVENT = SUGGEST_EVENT
    wanted: tuple[str, ...] = ()
    """Only these suggestions (none: all)."""
    command: str | None = None
    """The comment command or dashboard box that asked for it (`recreate`, `eval`, `create`)."""
    reply_to: int | None = None
    """The pull request or dashboard issue to answer on, once the cycle finished."""
    actor: str | None = None


class AutoApplyEvent(RepositoryEvent):
    """The bot's own scheduled job: the next step of an auto-applied suggestion
    (`flujo.bot.auto_apply.job`)."""

    EVENT = AUTO_APPLY_EVENT
    number: int
    step: Literal["merge", "watch", "bake"]


MODELS: tuple[type[WebhookEvent], ...] = (
    PushEvent,
    PullRequestEvent,
    PullRequestClosedEvent,
    LabelEvent,
    CheckSuiteEvent,
    CheckRunEvent,
    CheckRunActionEvent,
    InstallationEvent,
    InstallationRepositoriesEvent,
    SuggestEvent,
    AutoApplyEvent,
    IssueCommentEvent,
    IssueEditedEvent,
)
"""Every model, one per routed (event, action) set; a test holds it equal to the routes."""
