"""GitHub: the only module with GitHub's URLs and auth.

`AppAuth` makes App JWTs and caches installation tokens until shortly before they
expire; `GitHubClient` (gidgethub) waits out rate limits and retries 5xx with jittered
backoff; `GitHubForge` implements the `Forge` interface for one installation and
refreshes its token once on a 401.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import gidgethub
from gidgethub.aiohttp import GitHubAPI

from flujo.bot.forge import (
    MAX_ANNOTATIONS_PER_REQUEST,
    CheckOutput,
    CheckRef,
    CheckState,
    MergeRefused,
    Proposal,
    PullRef,
    PullState,
    RepoFile,
    RequiredChecks,
)
from flujo.bot.queue import Permanent, RetryLater

log = logging.getLogger("flujo.bot.github")
T = TypeVar("T")
USER_AGENT = "flujo-bot"
TOKEN_MARGIN_S = 300  # refresh installation tokens this long before they expire


class GitHubClient(GitHubAPI):
    """gidgethub's client, patient with GitHub's limits."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        oauth_token: str | None = None,
        max_wait_s: float = 60.0,
        max_retries: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_headers: Callable[[Mapping[str, str]], None] | None = None,
    ) -> None:
        super().__init__(session, USER_AGENT, oauth_token=oauth_token, base_url=base_url)
        self._max_wait_s = max_wait_s
        self._max_retries = max_retries
        self._sleep = sleep
        self._on_headers = on_headers

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        """gidgethub's request, its answer's headers shown to `on_headers` (rate limits)."""
        status, answer, content = await super()._request(method, url, headers, body)
        if self._on_headers is not None:
            self._on_headers(answer)
        return status, answer, content

    async def handle_rate_limit_error(
        self, *, method: str, url: str, exception: gidgethub.HTTPException, attempt: int
    ) -> bool:
        wait = retry_delay(exception, attempt)
        if wait is None or attempt > self._max_retries:
            return False
        if wait > self._max_wait_s:
            raise RetryLater(
                f"GitHub rate limit on {method} {_path(url)}: retrying in {wait:.0f}s",
                time.time() + wait,
            )
        log.warning(
            "GitHub answered %d to %s %s; retrying in %.1fs (attempt %d)",
            exception.status_code,
            method,
            _path(url),
            wait,
            attempt,
        )
        await self.sleep(wait)
        return True


def retry_delay(exception: gidgethub.HTTPException, attempt: int) -> float | None:
    """How long to wait before retrying, or None when retrying cannot help.

    Secondary rate limits send `Retry-After`; the primary limit sends
    `x-ratelimit-remaining: 0` and the reset time; 5xx errors are retried with jittered
    exponential backoff.
    """
    status = int(exception.status_code)
    headers = exception.headers
    if status in (403, 429):
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            return max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 1.0
        if status == 429:
            return 60.0
        return None
    if status >= 500:
        return float(min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
    return None


class AppAuth:
    """App JWTs and installation tokens (cached per installation)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        app_id: str,
        private_key: str,
        base_url: str,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_headers: Callable[[str, Mapping[str, str]], None] | None = None,
    ) -> None:
        self._session = session
        self._on_headers = on_headers
        self._app_id = app_id
        self._private_key = load_private_key(private_key)
        self.base_url = base_url
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._tokens: dict[int, tuple[str, float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._slug: str | None = None

    def __repr__(self) -> str:  # never show the key
        return f"AppAuth(app_id={self._app_id!r}, base_url={self.base_url!r})"

    def client(self, token: str | None = None, installation: int | None = None) -> GitHubClient:
        """A client with `token` (none: the App's JWT is passed per request); the answers'
        headers go to `on_headers` under the installation's id, or "app"."""
        on_headers = self._on_headers
        observe = None
        if on_headers is not None:
            label = "app" if installation is None else str(installation)

            def observe(headers: Mapping[str, str]) -> None:
                on_headers(label, headers)

        return GitHubClient(
            self._session,
            base_url=self.base_url,
            oauth_token=token,
            max_wait_s=self._max_wait_s,
            sleep=self._sleep,
            on_headers=observe,
        )

    async def token(self, installation_id: int) -> str:
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached[1] - TOKEN_MARGIN_S > time.time():
                return cached[0]
            from gidgethub.apps import get_installation_access_token

            try:
                answer = await get_installation_access_token(
                    self.client(),
                    installation_id=str(installation_id),
                    app_id=self._app_id,
                    private_key=self._private_key,
                )
            except gidgethub.BadRequest as exc:
                if int(exc.status_code) in (401, 403, 404):
                    raise Permanent(
                        f"cannot get a token for installation {installation_id}: "
                        f"GitHub answered {int(exc.status_code)} ({exc}); check the App id, "
                        "its private key and that the App is still installed"
                    ) from None
                raise
            expires = _parse_time(answer.get("expires_at")) or time.time() + 3600
            self._tokens[installation_id] = (str(answer["token"]), expires)
            return str(answer["token"])

    def forget(self, installation_id: int) -> None:
        """Drop a cached token (after GitHub refused it)."""
        self._tokens.pop(installation_id, None)

    async def app_slug(self) -> str:
        """The App's slug (`GET /app`, with the App's JWT), read once."""
        if self._slug is None:
            from gidgethub.apps import get_jwt

            jwt = get_jwt(app_id=self._app_id, private_key=self._private_key)
            found = await self.client().getitem("/app", jwt=jwt)
            self._slug = str(found["slug"])
        return self._slug

    async def forge(self, installation_id: int) -> GitHubForge:
        return GitHubForge(self, installation_id)


@functools.lru_cache(maxsize=4)
def load_private_key(pem: str) -> Any:
    """Parse the App's PEM key once per process (PyJWT would parse it, slowly, for every
    JWT; checking an RSA key takes ~60-100 ms, and settings checks and every `Bot` ask for
    it). The parsed key is immutable, so it is shared.

    Raises SettingsError when it is not a PEM private key; the message never shows it.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from flujo.bot.settings import SettingsError

    try:
        return load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise SettingsError(
            "the App private key is not a PEM private key (download a new one from the App's "
            "settings page)"
        ) from None


class GitHubForge:
    """The `Forge` for one installation of the App."""

    def __init__(self, auth: AppAuth, installation_id: int) -> None:
        self._auth = auth
        self.installation_id = installation_id
        self._blobs: dict[tuple[str, str], dict[str, str]] = {}

    async def _call(
        self, request: Callable[[GitHubClient], Awaitable[T]], *, missing_ok: bool = False
    ) -> T:
        """Run a request with the installation's token; once more with a new one on 401.

        404 and 422 answers are logged (a 404 only when `missing_ok` is false) and raised.
        """
        for attempt in (1, 2):
            token = await self._auth.token(self.installation_id)
            client = self._auth.client(token, self.installation_id)
            try:
                return await request(client)
            except gidgethub.BadRequest as exc:
                if int(exc.status_code) == 401 and attempt == 1:
                    log.info(
                        "installation %s token refused; getting a new one", self.installation_id
                    )
                    self._auth.forget(self.installation_id)
                    continue
                status = int(exc.status_code)
                if status == 422 or (status == 404 and not missing_ok):
                    log.warning(
                        "GitHub answered %d for installation %s: %s",
                        status,
                        self.installation_id,
                        exc,
                    )
                raise
        raise AssertionError("unreachable")

    # -- reading a commit --------------------------------------------------------------

    async def list_files(self, repo: str, sha: str) -> list[RepoFile]:
        tree = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/git/trees/{sha}?recursive=1"))
        if tree.get("truncated"):
            log.warning(
                "the tree of %s@%s is too large for one request; some files are missing",
                repo,
                sha[:12],
            )
        blobs = {e["path"]: e["sha"] for e in tree["tree"] if e.get("type") == "blob"}
        self._blobs[(repo, sha)] = blobs
        return [
            RepoFile(e["path"], int(e.get("size") or 0))
            for e in tree["tree"]
            if e.get("type") == "blob"
        ]

    async def read_files(self, repo: str, sha: str, paths: list[str]) -> dict[str, bytes]:
        if (repo, sha) not in self._blobs:
            await self.list_files(repo, sha)
        blobs = self._blobs[(repo, sha)]
        limit = asyncio.Semaphore(8)

        async def one(path: str) -> tuple[str, bytes]:
            async with limit:
                blob = await self._call(
                    lambda gh: gh.getitem(f"/repos/{repo}/git/blobs/{blobs[path]}")
                )
            return path, base64.b64decode(blob["content"])

        return dict(await asyncio.gather(*(one(p) for p in paths if p in blobs)))

    # -- proposals (suggestion pull requests) -------------------------------------------

    async def propose(self, repo: str, proposal: Proposal) -> PullRef:
        base = (
            proposal.base
            or (await self._call(lambda gh: gh.getitem(f"/repos/{repo}")))["default_branch"]
        )
        base_sha = await self._ref_sha(repo, base)
        if base_sha is None:
            raise Permanent(f"{repo} has no branch {base!r} to propose changes to")
        base_tree = (
            await self._call(lambda gh: gh.getitem(f"/repos/{repo}/git/commits/{base_sha}"))
        )["tree"]["sha"]
        entries = [
            {"path": path, "mode": "100644", "type": "blob", "content": content.decode()}
            for path, content in sorted(proposal.files.items())
        ]
        tree = await self._call(
            lambda gh: gh.post(
                f"/repos/{repo}/git/trees", data={"base_tree": base_tree, "tree": entries}
            )
        )
        head_sha = await self._ref_sha(repo, proposal.branch)
        changed = True
        if head_sha is not None:
            head = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/git/commits/{head_sha}"))
            same_parent = [p["sha"] for p in head.get("parents", ())] == [base_sha]
            changed = not (head["tree"]["sha"] == tree["sha"] and same_parent)
        if changed:
            commit = await self._call(
                lambda gh: gh.post(
                    f"/repos/{repo}/git/commits",
                    data={"message": proposal.message, "tree": tree["sha"], "parents": [base_sha]},
                )
            )
            if head_sha is None:
                await self._call(
                    lambda gh: gh.post(
                        f"/repos/{repo}/git/refs",
                        data={"ref": f"refs/heads/{proposal.branch}", "sha": commit["sha"]},
                    )
                )
            else:
                await self._call(
                    lambda gh: gh.patch(
                        f"/repos/{repo}/git/refs/heads/{proposal.branch}",
                        data={"sha": commit["sha"], "force": True},
                    )
                )
        owner = repo.split("/", 1)[0]
        query = urlencode({"head": f"{owner}:{proposal.branch}", "state": "open"})
        existing = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/pulls?{query}"))
        if existing:
            pull = existing[0]
            if pull.get("body") != proposal.body or pull.get("title") != proposal.title:
                changed = True
                await self._call(
                    lambda gh: gh.patch(
                        f"/repos/{repo}/pulls/{pull['number']}",
                        data={"title": proposal.title, "body": proposal.body},
                    )
                )
            created = False
        else:
            pull = await self._call(
                lambda gh: gh.post(
                    f"/repos/{repo}/pulls",
                    data={
                        "title": proposal.title,
                        "head": proposal.branch,
                        "base": base,
                        "body": proposal.body,
                        "maintainer_can_modify": True,
                    },
                )
            )
            created = True
        if proposal.labels:
            await self._call(
                lambda gh: gh.post(
                    f"/repos/{repo}/issues/{pull['number']}/labels",
                    data={"labels": list(proposal.labels)},
                )
            )
        return PullRef(
            int(pull["number"]), pull["html_url"], proposal.branch, "open", created, changed
        )

    async def default_head(self, repo: str) -> tuple[str, str]:
        branch = (await self._call(lambda gh: gh.getitem(f"/repos/{repo}")))["default_branch"]
        sha = await self._ref_sha(repo, branch)
        if sha is None:
            raise Permanent(f"{repo} has no commit on its default branch {branch!r}")
        return str(branch), sha

    async def is_fork(self, repo: str) -> bool:
        return bool((await self._call(lambda gh: gh.getitem(f"/repos/{repo}"))).get("fork"))

    async def closing_comment(self, repo: str, number: int, author: str) -> str | None:
        async def comments(gh: GitHubClient) -> list[dict[str, Any]]:
            return [
                c async for c in gh.getiter(f"/repos/{repo}/issues/{number}/comments?per_page=100")
            ]

        mine = [
            c for c in await self._call(comments) if (c.get("user") or {}).get("login") == author
        ]
        return str(mine[-1].get("body") or "") or None if mine else None

    async def proposals(self, repo: str, prefix: str) -> list[PullRef]:
        async def listing(gh: GitHubClient) -> list[dict[str, Any]]:
            return [p async for p in gh.getiter(f"/repos/{repo}/pulls?state=open&per_page=100")]

        return [
            PullRef(int(p["number"]), p["html_url"], p["head"]["ref"])
            for p in await self._call(listing)
            if str(p["head"]["ref"]).startswith(prefix)
        ]

    async def _ref_sha(self, repo: str, branch: str) -> str | None:
        try:
            ref = await self._call(
                lambda gh: gh.getitem(f"/repos/{repo}/git/ref/heads/{branch}"), missing_ok=True
            )
        except gidgethub.BadRequest as exc:
            if int(exc.status_code) == 404:
                return None
            raise
        return str(ref["object"]["sha"])

    async def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        await self._call(
            lambda gh: gh.post(f"/repos/{repo}/issues/{number}/labels", data={"labels": labels})
        )

    async def comment(self, repo: str, number: int, body: str) -> None:
        await self._call(
            lambda gh: gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": body})
        )

    async def upload_sarif(self, repo: str, sha: str, ref: str, sarif: str) -> None:
        data = {"commit_sha": sha, "ref": ref, "sarif": sarif, "tool_name": "flujo"}
        await self._call(lambda gh: gh.post(f"/repos/{repo}/code-scanning/sarifs", data=data))

    async def can_write(self, repo: str, login: str) -> bool:
        """GitHub's `permission` is admin, write, read or none (maintain shows as write)."""
        try:
            found = await self._call(
                lambda gh: gh.getitem(f"/repos/{repo}/collaborators/{quote(login)}/permission"),
                missing_ok=True,
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:  # not a collaborator, or not a user at all
                return False
            raise
        return found.get("permission") in ("admin", "write")

    async def override_labels(self, repo: str, sha: str) -> dict[str, int]:
        """`flujo/override:<policy>` labels on open pull requests whose head is `sha`."""
        pulls = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/commits/{sha}/pulls"))
        found: dict[str, int] = {}
        for pull in pulls:
            if pull.get("state") != "open" or pull.get("head", {}).get("sha") != sha:
                continue
            for label in pull.get("labels") or ():
                policy = override_policy(label.get("name", ""))
                if policy:
                    found.setdefault(policy, int(pull["number"]))
        return found

    # -- merging (auto-apply) ----------------------------------------------------------

    async def pull(self, repo: str, number: int) -> PullState:
        p = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/pulls/{number}"))
        return PullState(
            number=int(p["number"]),
            state=str(p["state"]),
            merged=bool(p.get("merged")),
            head_sha=str(p["head"]["sha"]),
            head_branch=str(p["head"]["ref"]),
            base_branch=str(p["base"]["ref"]),
            labels=tuple(str(label.get("name", "")) for label in p.get("labels") or ()),
            body=str(p.get("body") or ""),
            merge_commit_sha=p.get("merge_commit_sha") if p.get("merged") else None,
        )

    async def required_checks(self, repo: str, branch: str) -> RequiredChecks:
        contexts: list[str] = []
        strict = False
        sources: list[str] = []
        name = quote(branch, safe="")
        try:
            protection = await self._call(
                lambda gh: gh.getitem(
                    f"/repos/{repo}/branches/{name}/protection/required_status_checks"
                ),
                missing_ok=True,
            )
        except gidgethub.BadRequest as exc:
            if int(exc.status_code) != 404:  # 404: no protection (or no checks required)
                raise
        else:
            contexts += [str(c) for c in protection.get("contexts") or ()]
            contexts += [str(c["context"]) for c in protection.get("checks") or ()]
            strict = bool(protection.get("strict"))
            sources.append("branch protection")

        async def rules(gh: GitHubClient) -> list[dict[str, Any]]:
            return [
                r async for r in gh.getiter(f"/repos/{repo}/rules/branches/{name}?per_page=100")
            ]

        for rule in await self._call(rules):
            if rule.get("type") != "required_status_checks":
                continue
            parameters = rule.get("parameters") or {}
            contexts += [str(c["context"]) for c in parameters.get("required_status_checks") or ()]
            strict = strict or bool(parameters.get("strict_required_status_checks_policy"))
            if "rulesets" not in sources:
                sources.append("rulesets")
        return RequiredChecks(tuple(dict.fromkeys(contexts)), strict, tuple(sources))

    async def check_states(self, repo: str, sha: str) -> list[CheckState]:
        async def runs(gh: GitHubClient) -> list[dict[str, Any]]:
            return [
                r
                async for r in gh.getiter(
                    f"/repos/{repo}/commits/{sha}/check-runs?filter=latest&per_page=100",
                    iterable_key="check_runs",
                )
            ]

        states = {
            str(r["name"]): CheckState(str(r["name"]), sha, str(r["status"]), r.get("conclusion"))
            for r in sorted(await self._call(runs), key=lambda r: int(r["id"]))
        }
        combined = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/commits/{sha}/status"))
        for status in combined.get("statuses") or ():  # newest first: keep the first of each
            context = str(status["context"])
            if context in states:
                continue
            state = str(status["state"])
            done = state != "pending"
            states[context] = CheckState(
                context, sha, "completed" if done else "pending", state if done else None
            )
        return list(states.values())

    async def merge(self, repo: str, number: int, sha: str, title: str, message: str) -> str:
        body = {
            "sha": sha,
            "merge_method": "squash",
            "commit_title": title,
            "commit_message": message,
        }
        try:
            done = await self._call(
                lambda gh: gh.put(f"/repos/{repo}/pulls/{number}/merge", data=body)
            )
        except gidgethub.BadRequest as exc:
            if int(exc.status_code) in (405, 409, 422):
                raise MergeRefused(str(exc)) from None
            raise
        return str(done["sha"])

    async def update_branch(self, repo: str, number: int, expected_head: str) -> None:
        try:
            await self._call(
                lambda gh: gh.put(
                    f"/repos/{repo}/pulls/{number}/update-branch",
                    data={"expected_head_sha": expected_head},
                    accept="application/vnd.github+json",
                )
            )
        except gidgethub.BadRequest as exc:
            if int(exc.status_code) in (403, 422):
                raise MergeRefused(str(exc)) from None
            raise

    async def branch_sha(self, repo: str, branch: str) -> str | None:
        return await self._ref_sha(repo, branch)

    async def set_body(self, repo: str, number: int, body: str) -> None:
        await self._call(lambda gh: gh.patch(f"/repos/{repo}/pulls/{number}", data={"body": body}))

    async def parents(self, repo: str, sha: str) -> list[str]:
        commit = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/git/commits/{sha}"))
        return [str(p["sha"]) for p in commit.get("parents") or ()]

    async def remove_label(self, repo: str, number: int, label: str) -> None:
        try:
            await self._call(
                lambda gh: gh.delete(
                    f"/repos/{repo}/issues/{number}/labels/{quote(label, safe='')}"
                ),
                missing_ok=True,
            )
        except gidgethub.BadRequest as exc:
            if int(exc.status_code) != 404:  # 404: the label was not there (anymore)
                raise

    # -- the dashboard issue and comment commands ----------------------------------------

    async def app_slug(self) -> str:
        return await self._auth.app_slug()

    async def create_issue(self, repo: str, title: str, body: str) -> int:
        data = {"title": title, "body": body}
        found = await self._call(lambda gh: gh.post(f"/repos/{repo}/issues", data=data))
        return int(found["number"])

    async def issue_body(self, repo: str, number: int) -> tuple[str, str]:
        found = await self._call(lambda gh: gh.getitem(f"/repos/{repo}/issues/{number}"))
        return str(found.get("body") or ""), str(found.get("state") or "open")

    async def set_issue_body(self, repo: str, number: int, body: str) -> None:
        await self._call(lambda gh: gh.patch(f"/repos/{repo}/issues/{number}", data={"body": body}))

    async def react(self, repo: str, comment_id: int, content: str) -> None:
        await self._call(
            lambda gh: gh.post(
                f"/repos/{repo}/issues/comments/{comment_id}/reactions", data={"content": content}
            )
        )

    async def close_pull(self, repo: str, number: int) -> None:
        await self._call(
            lambda gh: gh.patch(f"/repos/{repo}/pulls/{number}", data={"state": "closed"})
        )

    # -- check runs --------------------------------------------------------------------

    async def queue_check(self, repo: str, sha: str, name: str) -> CheckRef:
        external_id = f"{name}@{sha}"
        query = urlencode({"check_name": name, "filter": "all", "per_page": 100})
        existing = await self._call(
            lambda gh: gh.getitem(f"/repos/{repo}/commits/{sha}/check-runs?{query}")
        )
        for run in existing.get("check_runs", ()):
            if run.get("external_id") == external_id:
                ref = CheckRef(str(run["id"]), name, sha, fresh=False)
                await self._patch(repo, ref, {"status": "queued"})
                return ref
        created = await self._call(
            lambda gh: gh.post(
                f"/repos/{repo}/check-runs",
                data={
                    "name": name,
                    "head_sha": sha,
                    "status": "queued",
                    "external_id": external_id,
                },
            )
        )
        return CheckRef(str(created["id"]), name, sha)

    async def start_check(self, repo: str, ref: CheckRef) -> None:
        await self._patch(repo, ref, {"status": "in_progress", "started_at": _now()})

    async def complete_check(self, repo: str, ref: CheckRef, output: CheckOutput) -> None:
        shown: set[tuple[str, int, str, str]] = set()
        if not ref.fresh:

            async def existing(gh: GitHubClient) -> list[dict[str, Any]]:
                return [
                    a
                    async for a in gh.getiter(
                        f"/repos/{repo}/check-runs/{ref.id}/annotations?per_page=100"
                    )
                ]

            shown = {
                (a["path"], a["start_line"], a["annotation_level"], a["message"])
                for a in await self._call(existing)
            }
        new = [a.to_github() for a in output.annotations if a.fingerprint not in shown]
        chunks = [
            new[i : i + MAX_ANNOTATIONS_PER_REQUEST]
            for i in range(0, len(new), MAX_ANNOTATIONS_PER_REQUEST)
        ] or [[]]
        body: dict[str, Any] = {
            "status": "completed",
            "conclusion": output.conclusion,
            "completed_at": _now(),
            "output": _output(output, chunks[0]),
        }
        # Always sent: a re-run without buttons must remove the previous run's.
        body["actions"] = [
            {
                "label": a.label[:20],
                "identifier": a.identifier[:20],
                "description": a.description[:40],
            }
            for a in output.actions[:3]
        ]
        await self._patch(repo, ref, body)
        for chunk in chunks[1:]:  # GitHub appends annotations across updates
            await self._patch(repo, ref, {"output": _output(output, chunk)})

    async def _patch(self, repo: str, ref: CheckRef, body: dict[str, Any]) -> None:
        await self._call(lambda gh: gh.patch(f"/repos/{repo}/check-runs/{ref.id}", data=body))


async def convert_manifest(
    session: aiohttp.ClientSession, base_url: str, code: str
) -> dict[str, Any]:
    """The App GitHub created from a manifest (with its `id`, `pem` and `webhook_secret`),
    for the temporary `code` GitHub gave the browser. Needs no credentials; a code works
    once, within an hour (else GitHub answers 404 or 422: `gidgethub.BadRequest`)."""
    client = GitHubClient(session, base_url=base_url)
    answer = await client.post(f"/app-manifests/{quote(code, safe='')}/conversions", data=b"")
    return dict(answer)


def install_url(app_html_url: str) -> str:
    """The page where a person installs the App (`html_url` from GitHub's App object)."""
    return f"{app_html_url.rstrip('/')}/installations/new"


def web_url(api_url: str) -> str:
    """Where people use GitHub, from its REST API root: `https://api.github.com` →
    `https://github.com`, `https://HOST/api/v3` (Enterprise Server) → `https://HOST`;
    any other root (a test server) is both."""
    root = api_url.rstrip("/")
    if root == "https://api.github.com":
        return "https://github.com"
    return root.removesuffix("/api/v3")


def override_policy(label: str) -> str | None:
    """The policy id of an override label (`flujo/override:<policy-id>`), else None."""
    prefix = "flujo/override:"
    return label[len(prefix) :].strip() or None if label.startswith(prefix) else None


def _output(output: CheckOutput, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    payload: dict[str, Any] = {"title": output.title[:255], "summary": output.summary}
    if output.text:
        payload["text"] = output.text
    if annotations:
        payload["annotations"] = annotations
    return payload


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _path(url: str) -> str:
    """A URL without its query (tokens never travel in URLs, but keep logs short)."""
    return url.split("?", 1)[0]
