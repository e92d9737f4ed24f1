"""What the bot remembers besides its queue: installations and policy overrides.

Readers return frozen records with named fields (`InstallationRecord`, `TokenOwner`,
`ProposalRecord`), never raw rows. The tables are in the bot's records (`records.py`): a
SQLite file, or PostgreSQL shared by every bot process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from flujo.bot.commit_report import Override
from flujo.bot.records import Records, write

if TYPE_CHECKING:
    from flujo.bot.pacing import Waiting
    from flujo.learn.proposal import SuggestionView


@dataclass(frozen=True, slots=True)
class InstallationRecord:
    """An installation of the App, as the installation events left it."""

    id: int
    account: str | None
    suspended: bool
    repositories: tuple[str, ...]


class TokenOwner(NamedTuple):
    """Whose telemetry a bearer token sends."""

    installation: int
    repo: str


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A suggestion pull request the bot opened, and what became of it."""

    spec: str
    suggestion: str
    patch: list[Any]
    """The JSON Patch it proposes."""
    number: int | None
    state: str
    """`open`, `merged` or `rejected`."""


class BotState(Records):
    """The bot's records (a SQLite path or a PostgreSQL URL), written off the event loop."""

    # -- installations -------------------------------------------------------------------

    async def save_installation(
        self, installation_id: int, account: str | None, repositories: list[str] | None = None
    ) -> None:
        await self._write(
            "INSERT INTO installations (id, account, repositories, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET account = excluded.account, suspended = 0,"
            " repositories = CASE WHEN ? THEN excluded.repositories"
            " ELSE installations.repositories END,"
            " updated_at = excluded.updated_at",
            (
                installation_id,
                account,
                json.dumps(sorted(repositories or [])),
                time.time(),
                repositories is not None,
            ),
        )

    async def remove_installation(self, installation_id: int) -> None:
        await self._write("DELETE FROM installations WHERE id = ?", (installation_id,))

    async def suspend(self, installation_id: int, suspended: bool) -> None:
        await self._write(
            "UPDATE installations SET suspended = ?, updated_at = ? WHERE id = ?",
            (int(suspended), time.time(), installation_id),
        )

    async def change_repositories(
        self, installation_id: int, added: list[str], removed: list[str]
    ) -> None:
        def change() -> None:
            with self._db.transaction() as db:
                now = time.time()
                db.execute(
                    "INSERT INTO installations (id, updated_at) VALUES (?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (installation_id, now),
                )
                lock = " FOR UPDATE" if self._db.dialect == "postgresql" else ""
                row = db.execute(
                    f"SELECT repositories FROM installations WHERE id = ?{lock}",
                    (installation_id,),
                ).fetchone()
                repos = (set(json.loads(row[0])) | set(added)) - set(removed)
                db.execute(
                    "UPDATE installations SET repositories = ?, updated_at = ? WHERE id = ?",
                    (json.dumps(sorted(repos)), now, installation_id),
                )

        await asyncio.to_thread(change)

    async def installations(self) -> list[InstallationRecord]:
        rows = await self._read(
            "SELECT id, account, suspended, repositories FROM installations ORDER BY id"
        )
        return [
            InstallationRecord(int(r[0]), r[1], bool(r[2]), tuple(json.loads(r[3]))) for r in rows
        ]

    # -- commits already checked ---------------------------------------------------------

    async def was_checked(self, repo: str, sha: str, overrides: str) -> bool:
        rows = await self._read(
            "SELECT 1 FROM checked WHERE repo = ? AND sha = ? AND overrides = ?",
            (repo, sha, overrides),
        )
        return bool(rows)

    async def mark_checked(self, repo: str, sha: str, overrides: str) -> None:
        await self._write(
            "INSERT INTO checked VALUES (?, ?, ?, ?)"
            " ON CONFLICT (repo, sha, overrides) DO UPDATE SET at = excluded.at",
            (repo, sha, overrides, time.time()),
        )

    # -- telemetry tokens (OTLP ingest) ---------------------------------------------------

    def issue_token(self, installation: int, repo: str) -> str:
        """A new bearer token for sending `repo`'s telemetry; only its hash is kept."""
        token = "flujo_" + secrets.token_urlsafe(32)
        write(
            self._db,
            "INSERT INTO telemetry_tokens VALUES (?, ?, ?, ?)",
            (_digest(token), installation, repo, time.time()),
        )
        return token

    async def token_owner(self, token: str) -> TokenOwner | None:
        """(installation, repository) of a token, or None."""
        if not token:
            return None
        rows = await self._read(
            "SELECT installation, repo FROM telemetry_tokens WHERE token_sha256 = ?",
            (_digest(token),),
        )
        return TokenOwner(int(rows[0][0]), str(rows[0][1])) if rows else None

    # -- evaluation spend (`flujo eval` before proposing) -----------------------------------

    async def record_eval_spend(
        self, installation: int, repo: str, usd: float, examples: int, month: str | None = None
    ) -> None:
        """Add what an evaluation spent to the repository's total for the month (UTC)."""
        await self._write(
            "INSERT INTO eval_spend VALUES (?, ?, ?, ?, ?) ON CONFLICT (installation, repo, "
            "month) DO UPDATE SET usd = eval_spend.usd + excluded.usd, examples = "
            "eval_spend.examples + excluded.examples",
            (installation, repo, month or this_month(), usd, examples),
        )

    async def eval_spend(self, installation: int, month: str | None = None) -> dict[str, float]:
        """What evaluations spent this month (UTC), per repository of the installation."""
        rows = await self._read(
            "SELECT repo, usd FROM eval_spend WHERE installation = ? AND month = ?",
            (installation, month or this_month()),
        )
        return {str(repo): float(usd) for repo, usd in rows}

    # -- proposals (suggestion pull requests) --------------------------------------------

    async def record_proposal(
        self,
        repo: str,
        branch: str,
        spec: str,
        suggestion: str,
        patch: list[Any],
        number: int,
        view: dict[str, Any] | None = None,
    ) -> None:
        await self._write(
            "INSERT INTO proposals VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)"
            " ON CONFLICT (repo, branch) DO UPDATE SET spec = excluded.spec,"
            " suggestion = excluded.suggestion, patch = excluded.patch,"
            " number = excluded.number, state = excluded.state,"
            " updated_at = excluded.updated_at, view = excluded.view",
            (
                repo,
                branch,
                spec,
                suggestion,
                json.dumps(patch),
                number,
                time.time(),
                json.dumps(view) if view is not None else None,
            ),
        )

    async def views(self, repo: str) -> list[tuple[str, SuggestionView]]:
        """The pages of the suggestions proposed on `repo`: (suggestion id, what it shows)."""
        from flujo.learn.proposal import SuggestionView

        rows = await self._read(
            "SELECT suggestion, view FROM proposals WHERE repo = ? AND view IS NOT NULL"
            " ORDER BY updated_at DESC",
            (repo,),
        )
        return [(suggestion, SuggestionView(**json.loads(view))) for suggestion, view in rows]

    async def proposal(self, repo: str, branch: str) -> ProposalRecord | None:
        rows = await self._read(
            "SELECT spec, suggestion, patch, number, state FROM proposals"
            " WHERE repo = ? AND branch = ?",
            (repo, branch),
        )
        if not rows:
            return None
        spec, suggestion, patch, number, state = rows[0]
        return ProposalRecord(spec, suggestion, json.loads(patch), number, state)

    async def open_proposals(self, repo: str) -> list[tuple[int, str, str]]:
        """The suggestion pull requests open on `repo`: (number, title, spec), newest first."""
        rows = await self._read(
            "SELECT number, view, spec FROM proposals WHERE repo = ? AND state = 'open'"
            " AND number IS NOT NULL ORDER BY updated_at DESC",
            (repo,),
        )
        return [
            (int(number), str(json.loads(view).get("title", "")) if view else "", str(spec))
            for number, view, spec in rows
        ]

    async def close_proposal(self, repo: str, branch: str, state: str) -> None:
        await self._write(
            "UPDATE proposals SET state = ?, updated_at = ? WHERE repo = ? AND branch = ?",
            (state, time.time(), repo, branch),
        )

    # -- pacing (`pull_requests:` limits and schedule) -----------------------------------

    async def record_opening(self, repo: str, branch: str, at: float) -> None:
        """The bot opened the suggestion pull request of `branch` at `at` (the hourly limit
        counts these; those older than a day are forgotten)."""
        await self._write("INSERT INTO suggestion_openings VALUES (?, ?, ?)", (repo, branch, at))
        await self._write(
            "DELETE FROM suggestion_openings WHERE repo = ? AND at < ?", (repo, at - 86400)
        )

    async def openings(self, repo: str, since: float) -> list[float]:
        """When the bot opened suggestion pull requests on `repo` at or after `since`."""
        rows = await self._read(
            "SELECT at FROM suggestion_openings WHERE repo = ? AND at >= ? ORDER BY at",
            (repo, since),
        )
        return [float(r[0]) for r in rows]

    async def set_waiting(self, repo: str, waiting: list[Waiting], at: float) -> None:
        """The suggestions of `repo` its last cycle did not propose, held back by pacing or
        by the cycle's own rules (replacing the earlier list); one that was waiting already
        keeps the time it was first held back."""

        def replace_all() -> None:
            with self._db.transaction() as db:
                _replace_waiting(db, repo, waiting, at)

        await asyncio.to_thread(replace_all)

    async def waiting(self, repo: str) -> list[Waiting]:
        """The suggestions of `repo` waiting, and why (`bot.pacing.Waiting`: `reason` is
        `schedule`, `max_open` or `max_per_hour` for those pacing holds back,
        `not_proposed` for those the cycle did not propose), first held back first. The
        one list of what waits: the pacing wakes cycles for it, the dashboard shows it."""
        from flujo.bot.pacing import Waiting

        rows = await self._read(
            "SELECT suggestion, spec, title, branch, reason, detail, until, since, patch"
            " FROM suggestion_waiting WHERE repo = ? ORDER BY since, suggestion",
            (repo,),
        )
        return [
            Waiting(s, spec, title, branch, reason, detail, until, since, json.loads(patch))
            for s, spec, title, branch, reason, detail, until, since, patch in rows
        ]

    async def remove_waiting(self, repo: str, suggestions: Iterable[str]) -> None:
        """These suggestions of `repo` wait no more (proposed, or ignored by a person)."""
        for suggestion in suggestions:
            await self._write(
                "DELETE FROM suggestion_waiting WHERE repo = ? AND suggestion = ?",
                (repo, suggestion),
            )

    # -- overrides -----------------------------------------------------------------------

    async def record_override(
        self, repo: str, pull: int, policy: str, by: str, at: str, sha: str
    ) -> None:
        """`by` (who has write access) approved `policy` on pull `pull` at head `sha`."""
        await self._write(
            "INSERT INTO overrides (repo, pull, policy, by, at, sha) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (repo, pull, policy) DO UPDATE SET by = excluded.by,"
            " at = excluded.at, sha = excluded.sha",
            (repo, pull, policy, by, at, sha),
        )

    async def remove_override(self, repo: str, pull: int, policy: str) -> None:
        await self._write(
            "DELETE FROM overrides WHERE repo = ? AND pull = ? AND policy = ?",
            (repo, pull, policy),
        )

    async def overrides(
        self, repo: str, labels: Mapping[str, int], sha: str
    ) -> dict[str, Override]:
        """Approvals that hold for commit `sha`: the label is on the pull request now, and a
        person with write access added it (or pressed Approve) while `sha` was its head. A
        label the bot never saw added, or an approval of an earlier commit, counts for
        nothing."""
        found = {}
        for policy, pull in labels.items():
            rows = await self._read(
                "SELECT by, at FROM overrides"
                " WHERE repo = ? AND pull = ? AND policy = ? AND sha = ?",
                (repo, pull, policy, sha),
            )
            if rows:
                by, at = rows[0]
                found[policy] = Override(policy, by, at)
        return found


def _replace_waiting(db: Any, repo: str, waiting: list[Waiting], at: float) -> None:
    before = dict(
        db.execute(
            "SELECT suggestion, since FROM suggestion_waiting WHERE repo = ?", (repo,)
        ).fetchall()
    )
    db.execute("DELETE FROM suggestion_waiting WHERE repo = ?", (repo,))
    db.executemany(
        "INSERT INTO suggestion_waiting VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                repo,
                w.suggestion,
                w.spec,
                w.title,
                w.branch,
                w.reason,
                w.detail,
                w.until,
                before.get(w.suggestion, at),
                json.dumps(w.patch),
            )
            for w in waiting
        ],
    )


def this_month() -> str:
    """The current month (UTC), as budgets count it: `2026-12`."""
    return time.strftime("%Y-%m", time.gmtime())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
