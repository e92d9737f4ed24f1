"""`FakeGitHub`: a stateful GitHub REST API on loopback, checked against GitHub's OpenAPI."""

from __future__ import annotations

import fnmatch
import itertools
import json
import secrets
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.fakegithub import code_scanning, webhooks  # noqa: F401 (code_scanning: its routes)
from tests.support.fakegithub.endpoints import HANDLERS
from tests.support.fakegithub.git import Entry, GitRepo
from tests.support.fakegithub.openapi import OpenAPI, Operation, load_openapi
from tests.support.fakegithub.state import (
    CheckRun,
    CheckSuite,
    Comment,
    GitHubError,
    Installation,
    Issue,
    Pull,
    RawBody,
    Repo,
    RequiredChecks,
    Review,
    Status,
    now_iso,
)

Json = Any
TOKEN_LIFETIME = 3600
RATE_LIMIT = 5000


@cache
def app_private_key() -> rsa.RSAPrivateKey:
    """One RSA key per test session (generating one takes ~50-100 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def app_private_key_pem() -> str:
    """`app_private_key()` as PEM, as a GitHub App's settings hold it."""
    return (
        app_private_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )


@dataclass(frozen=True)
class Request:
    """One request the fake answered (`template` is the OpenAPI path it matched, or None)."""

    method: str
    path: str
    query: dict[str, str]
    body: Json
    status: int
    template: str | None = None


@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    headers: dict[str, str]
    body: Json
    times: int | None

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self.method not in ("*", method):
            return False
        return fnmatch.fnmatchcase(path, self.pattern) or self.pattern == template


@dataclass
class Call:
    """What a handler sees: the matched operation, path values, query, body and caller."""

    op: Operation
    params: dict[str, str]
    query: dict[str, str]
    body: Json
    installation_id: int | None
    repo: Repo | None = None
    path: str = ""
    accept: str = ""

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except (KeyError, ValueError):
            raise GitHubError(404, "Not Found") from None


class FakeGitHub:
    """GitHub for tests: `async with FakeGitHub() as gh:` then point a client at `gh.base_url`."""

    def __init__(
        self,
        *,
        app_id: int = 1001,
        app_slug: str = "flujo-test",
        webhook_secret: str = "fake-webhook-secret",
        root: Path | None = None,
        api_prefix: str = "",
    ) -> None:
        self.api_prefix = api_prefix.rstrip("/")
        """Where the REST API is served: `` as on github.com, `/api/v3` as on GitHub
        Enterprise Server."""
        self.app_id = app_id
        self.app_slug = app_slug
        self.app_name = "Flujo Test"
        self.webhook_secret = webhook_secret
        self.private_key_pem = app_private_key_pem()
        self.private_key = app_private_key()
        self.spec: OpenAPI = load_openapi()
        self._own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="fakegithub-"))
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.installations: dict[int, Installation] = {}
        self.repos: dict[str, Repo] = {}
        self.check_runs: dict[int, CheckRun] = {}
        self.check_suites: dict[int, CheckSuite] = {}
        self.tokens: dict[str, tuple[int, float]] = {}
        self.rate_remaining = RATE_LIMIT
        self.manifest_codes: dict[str, tuple[dict[str, Json], float]] = {}
        self._faults: list[Fault] = []
        self._valid_bodies: set[tuple[str, str, int, str]] = set()
        self._ids = itertools.count(1001)
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> FakeGitHub:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    async def __aenter__(self) -> FakeGitHub:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>[/api/v3]` (no trailing slash): gidgethub's `base_url`."""
        if not self._port:
            raise RuntimeError("FakeGitHub is not started")
        return f"http://127.0.0.1:{self._port}{self.api_prefix}"

    def new_id(self) -> int:
        return next(self._ids)

    # --- world setup (test helpers) -----------------------------------------------------

    def add_installation(
        self, installation_id: int, account: str, *, account_type: str = "Organization"
    ) -> Installation:
        """Install the app on `account` (a user or organization login)."""
        found = Installation(installation_id, account, self.user_id(account), account_type)
        self.installations[installation_id] = found
        return found

    def user_id(self, login: str) -> int:
        """A stable numeric id for a login."""
        return 10_000 + int.from_bytes(login.encode()[:6].ljust(6, b"\0"), "big") % 9_000_000

    def create_repo(
        self,
        full_name: str,
        files: dict[str, str] | None = None,
        *,
        default_branch: str = "main",
        installation_id: int | None = None,
        private: bool = False,
        fork: bool = False,
    ) -> str:
        """A repository whose default branch has one commit holding `files`; returns its SHA.

        Without `installation_id` the repository joins the only installation (if one exists).
        """
        if full_name in self.repos:
            raise ValueError(f"repository {full_name} already exists")
        owner, name = full_name.split("/")
        if installation_id is None and len(self.installations) == 1:
            installation_id = next(iter(self.installations))
        if installation_id is not None and installation_id not in self.installations:
            raise ValueError(f"no installation {installation_id}: call add_installation first")
        git = GitRepo(self.root / f"{owner}+{name}.git", default_branch)
        self.repos[full_name] = Repo(
            id=self.new_id(),
            owner=owner,
            owner_id=self.user_id(owner),
            name=name,
            default_branch=default_branch,
            installation_id=installation_id,
            git=git,
            private=private,
            fork=fork,
        )
        return self.commit(
            full_name, dict(files or {}), branch=default_branch, message="Initial commit"
        )

    def register_from_manifest(self, manifest: dict[str, Json]) -> str:
        """What github.com does when a person posts a manifest form and confirms: checks the
        manifest as GitHub does and returns the code it puts in the redirect URL (one use,
        one hour). The conversion then answers with this fake's own App (its id, key and
        webhook secret), so a bot given them talks to this fake."""
        problems = []
        for key in ("name", "url", "hook_attributes", "redirect_url"):
            if not manifest.get(key):
                problems.append(f"{key} is required")
        hook = manifest.get("hook_attributes") or {}
        if not isinstance(hook, dict) or not hook.get("url"):
            problems.append("hook_attributes.url is required")
        for scope, level in (manifest.get("default_permissions") or {}).items():
            if level not in ("read", "write", "admin"):
                problems.append(f"default_permissions.{scope}: {level!r} is not read or write")
        if not all(isinstance(e, str) for e in manifest.get("default_events") or ()):
            problems.append("default_events must be event names")
        if problems:
            raise ValueError("GitHub would refuse this manifest: " + "; ".join(problems))
        code = secrets.token_hex(10)
        self.manifest_codes[code] = (dict(manifest), time.time() + 3600)
        return code

    def set_permission(self, full_name: str, login: str, role: str) -> None:
        """Give `login` a role on the repository (admin, maintain, write, triage, read)."""
        self.repo(full_name).permissions[login] = role

    def repo(self, full_name: str) -> Repo:
        try:
            return self.repos[full_name]
        except KeyError:
            raise KeyError(f"no repository {full_name!r}; create_repo first") from None

    def commit(
        self,
        full_name: str,
        files: dict[str, str | None],
        *,
        branch: str = "main",
        message: str = "Update files",
    ) -> str:
        """Commit on `branch` (created from the default branch if missing): each path gets the
        text given, or is deleted for None. Returns the new commit SHA."""
        repo = self.repo(full_name)
        git = repo.git
        parent = git.ref(f"refs/heads/{branch}") or git.ref(f"refs/heads/{repo.default_branch}")
        current = git.flat_files(parent) if parent else {}
        for path, text in files.items():
            if text is None:
                current.pop(path, None)
            else:
                sha = git.write_blob(text.encode())
                current[path] = Entry("100644", "blob", sha, path)
        tree = git.write_tree(current).strip()
        sha = git.commit_tree(tree, [parent] if parent else [], message)
        git.set_ref(f"refs/heads/{branch}", sha)
        return sha

    def commits(
        self,
        full_name: str,
        changes: list[dict[str, str | None]],
        *,
        branch: str = "main",
        message: str = "Update files",
    ) -> list[str]:
        """`commit` for each of `changes` in turn (one git process for them all); returns
        the new commit SHAs, oldest first."""
        repo = self.repo(full_name)
        git = repo.git
        parent = git.ref(f"refs/heads/{branch}") or git.ref(f"refs/heads/{repo.default_branch}")
        encoded = [
            {path: None if text is None else text.encode() for path, text in files.items()}
            for files in changes
        ]
        return git.import_commits(f"refs/heads/{branch}", parent, encoded, message)

    def open_pull(
        self,
        full_name: str,
        head: str,
        base: str | None = None,
        title: str = "A pull request",
        *,
        body: str | None = None,
        user: str = "octocat",
        draft: bool = False,
        labels: list[str] | None = None,
    ) -> int:
        """Open a pull request from `head` into `base` (default branch); returns its number."""
        repo = self.repo(full_name)
        for branch in (head, base or repo.default_branch):
            if repo.git.ref(f"refs/heads/{branch}") is None:
                raise ValueError(f"no branch {branch!r} in {full_name}")
        number = repo.next_number()
        pull = Pull(
            id=self.new_id(),
            number=number,
            title=title,
            body=body,
            head=head,
            base=base or repo.default_branch,
            user=user,
            draft=draft,
            labels=list(labels or []),
        )
        for label in pull.labels:
            self.ensure_label(repo, label)
        repo.pulls[number] = pull
        return number

    def add_review(
        self,
        full_name: str,
        number: int,
        state: str = "APPROVED",
        *,
        user: str = "alice",
        body: str = "",
    ) -> int:
        """A submitted review (APPROVED, CHANGES_REQUESTED, COMMENTED) on the pull's head."""
        repo = self.repo(full_name)
        pull = repo.pulls[number]
        head = repo.git.ref(f"refs/heads/{pull.head}") or ""
        review = Review(self.new_id(), user, state, body, head)
        pull.reviews.append(review)
        return review.id

    def protect(
        self, full_name: str, branch: str, contexts: list[str], *, strict: bool = False
    ) -> None:
        """Branch protection requiring these status checks (the fake enforces them on merge)."""
        self.repo(full_name).protection[branch] = RequiredChecks(list(contexts), strict)

    def add_rule(
        self, full_name: str, branch: str, contexts: list[str], *, strict: bool = False
    ) -> None:
        """A repository ruleset's `required_status_checks` rule on `branch` (enforced too)."""
        self.repo(full_name).rules[branch] = RequiredChecks(list(contexts), strict)

    def set_status(
        self, full_name: str, sha: str, context: str, state: str, *, creator: str = "ci-bot"
    ) -> None:
        """A commit status from another CI (success, failure, error or pending)."""
        repo = self.repo(full_name)
        repo.statuses.append(Status(self.new_id(), sha, state, context, None, None, creator))

    def add_check_run(
        self, full_name: str, sha: str, name: str, conclusion: str | None, *, status: str = ""
    ) -> int:
        """A check run (e.g. another App's CI) on `sha`: completed with `conclusion`, or
        `status` (queued, in_progress) when `conclusion` is None."""
        from tests.support.fakegithub.endpoints import suite_for

        repo = self.repo(full_name)
        suite = suite_for(self, repo, sha)
        run = CheckRun(self.new_id(), full_name, suite.id, sha, name)
        run.status = "completed" if conclusion else (status or "queued")
        run.conclusion = conclusion
        self.check_runs[run.id] = run
        return run.id

    def statuses(self, full_name: str, sha: str) -> list[Status]:
        """Commit statuses posted for `sha`, oldest first."""
        return [s for s in self.repo(full_name).statuses if s.sha == sha]

    def add_comment(self, full_name: str, number: int, body: str, *, user: str = "octocat") -> int:
        """A comment on issue/pull `number` written by `user`; returns its id."""
        repo = self.repo(full_name)
        comment = Comment(self.new_id(), number, body, user)
        repo.comments[comment.id] = comment
        return comment.id

    def ensure_label(self, repo: Repo, name: str, color: str = "ededed") -> dict[str, Json]:
        if name not in repo.labels:
            repo.labels[name] = {
                "id": self.new_id(),
                "name": name,
                "color": color,
                "description": None,
                "default": False,
            }
        return repo.labels[name]

    # --- read-back accessors ------------------------------------------------------------

    def check_runs_for(self, full_name: str, sha: str, name: str | None = None) -> list[CheckRun]:
        """Every check run on `sha` (optionally only those called `name`), oldest first."""
        return [
            run
            for run in self.check_runs.values()
            if run.repo == full_name and run.head_sha == sha and (name is None or run.name == name)
        ]

    def check_run(self, full_name: str, sha: str, name: str) -> CheckRun:
        """The latest check run called `name` on `sha` (annotations: ALL of them)."""
        runs = self.check_runs_for(full_name, sha, name)
        if not runs:
            raise KeyError(f"no check run {name!r} on {sha[:7]} in {full_name}")
        return runs[-1]

    def pull(self, full_name: str, number: int) -> Pull:
        return self.repo(full_name).pulls[number]

    def pulls(self, full_name: str) -> list[Pull]:
        return list(self.repo(full_name).pulls.values())

    def labels(self, full_name: str, number: int | None = None) -> list[str]:
        """Label names on issue/pull `number`, or every label of the repository."""
        repo = self.repo(full_name)
        if number is None:
            return list(repo.labels)
        found = repo.issues.get(number)
        return list(found.labels if found is not None else repo.pulls[number].labels)

    def issues(self, full_name: str) -> list[Issue]:
        """Issues that are not pull requests, oldest first."""
        return list(self.repo(full_name).issues.values())

    def edit_issue(self, full_name: str, number: int, body: str) -> Issue:
        """A person edits the body of issue `number` on github.com."""
        issue = self.repo(full_name).issues[number]
        issue.body = body
        issue.updated_at = now_iso()
        return issue

    def reactions(self, full_name: str, comment_id: int) -> list[str]:
        """The reactions (`+1`, `eyes`, …) on an issue comment, oldest first."""
        return [r.content for r in self.repo(full_name).reactions if r.comment_id == comment_id]

    def comments(self, full_name: str, number: int) -> list[Comment]:
        return [c for c in self.repo(full_name).comments.values() if c.issue_number == number]

    def refs(self, full_name: str) -> dict[str, str]:
        """Full ref name → SHA (e.g. `refs/heads/main`)."""
        return dict(self.repo(full_name).git.refs())

    def branch_sha(self, full_name: str, branch: str) -> str | None:
        return self.repo(full_name).git.ref(f"refs/heads/{branch}")

    def files(self, full_name: str, ref: str | None = None) -> dict[str, str]:
        """Path → text of every file at `ref` (branch, tag or SHA; default branch by default)."""
        repo = self.repo(full_name)
        sha = repo.git.resolve(ref or repo.default_branch)
        if sha is None:
            raise KeyError(f"no ref {ref!r} in {full_name}")
        return {
            path: repo.git.read_blob(entry.sha).decode(errors="replace")
            for path, entry in repo.git.flat_files(sha).items()
        }

    def calls(self, method: str | None = None, path: str = "*") -> list[Request]:
        """Logged requests with this method whose path matches a glob or an OpenAPI template."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (fnmatch.fnmatchcase(r.path, path) or r.template == path)
        ]

    def take_violations(self) -> list[str]:
        """The violations so far, cleared (for tests that provoke one on purpose)."""
        found, self.violations = self.violations, []
        return found

    # --- fault injection ----------------------------------------------------------------

    def fail(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: Json = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` matching requests (None: all) with `status` instead.

        `path_pattern` is a glob on the path (`/repos/o/r/check-runs*`) or an OpenAPI template
        (`/repos/{owner}/{repo}/check-runs`); `method` may be `*`.
        """
        if body is None:
            body = {
                "message": _REASONS.get(status, "Error"),
                "documentation_url": "https://docs.github.com/rest",
            }
        self._faults.append(
            Fault(method.upper(), path_pattern, status, dict(headers or {}), body, times)
        )

    def fail_secondary_rate_limit(
        self, method: str, path_pattern: str, *, retry_after: int = 1, times: int | None = 1
    ) -> None:
        """403 with `Retry-After`, as GitHub's secondary (abuse) rate limit answers."""
        self.fail(
            method,
            path_pattern,
            403,
            headers={"Retry-After": str(retry_after)},
            body={
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            },
            times=times,
        )

    def fail_rate_limit(
        self, method: str, path_pattern: str, *, reset_in: int = 60, times: int | None = 1
    ) -> None:
        """403 with `x-ratelimit-remaining: 0`: the primary rate limit is exhausted."""
        self.fail(
            method,
            path_pattern,
            403,
            headers={
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(time.time()) + reset_in),
            },
            body={
                "message": "API rate limit exceeded for installation.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits",
            },
            times=times,
        )

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    def expire_tokens(self) -> None:
        """Every installation token issued so far is expired: its next use gets 401."""
        self.tokens = {token: (inst, 0.0) for token, (inst, _) in self.tokens.items()}

    def _take_fault(self, method: str, path: str, template: str | None) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, path, template):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # --- webhooks -----------------------------------------------------------------------

    def webhook(self, event: str, name: str, *, repo: str, **adjust: Any) -> dict[str, Json]:
        """A real payload adjusted to `repo` as this fake knows it (see `webhooks.from_fake`):
        ids, installation, and the SHAs/branches of the pull, check suite, check run or
        comment named in `adjust` are filled in; explicit `adjust` values win."""
        return webhooks.from_fake(self, event, name, repo=repo, **adjust)

    async def deliver(
        self, url: str, event: str, payload: dict[str, Json], *, delivery_id: str | None = None
    ) -> tuple[int, str]:
        """POST a signed webhook delivery to `url`; returns (status, response text)."""
        headers, body = webhooks.signed(event, payload, self.webhook_secret, delivery_id)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status, await response.text()

    # --- tokens -------------------------------------------------------------------------

    def issue_token(self, installation_id: int) -> tuple[str, str]:
        token = "ghs_" + secrets.token_urlsafe(27)[:36]
        expires = time.time() + TOKEN_LIFETIME
        self.tokens[token] = (installation_id, expires)
        return token, datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _check_jwt(self, token: str) -> None:
        try:
            claims = jwt.decode(
                token,
                self.private_key.public_key(),
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=60,
            )
        except jwt.ExpiredSignatureError:
            raise GitHubError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future "
                "time at which the assertion expires",
            ) from None
        except jwt.PyJWTError:
            raise GitHubError(401, "A JSON web token could not be decoded") from None
        if str(claims["iss"]) != str(self.app_id):
            raise GitHubError(401, "A JSON web token could not be decoded")
        if claims["exp"] - claims["iat"] > 660:
            raise GitHubError(
                401,
                "'Expiration time' claim ('exp') is too far in the future",
            )

    def _authenticate(self, header: str | None, template: str) -> int | None:
        """The installation id behind the request (None for an App JWT); raises 401."""
        if template == "/app-manifests/{code}/conversions":
            return None  # the one-time code is the credential
        scheme, _, credential = (header or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("token", "bearer") or not credential:
            if template == "/rate_limit":
                return None
            raise GitHubError(401, "Requires authentication")
        is_jwt = credential.count(".") == 2
        app_level = template.startswith("/app") or template == "/repos/{owner}/{repo}/installation"
        if app_level:
            if not is_jwt:
                raise GitHubError(401, "A JSON web token could not be decoded")
            self._check_jwt(credential)
            return None
        if is_jwt:
            self._check_jwt(credential)
            if template == "/rate_limit":
                return None
            raise GitHubError(403, "Resource not accessible by integration")
        found = self.tokens.get(credential)
        if found is None or found[1] < time.time():
            raise GitHubError(401, "Bad credentials")
        return found[0]

    # --- dispatch -----------------------------------------------------------------------

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        used = RATE_LIMIT - self.rate_remaining
        headers = {
            "content-type": "application/json; charset=utf-8",
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": uuid.uuid4().hex[:8].upper() + ":0000:0000000:0000000:00000000",
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(self.rate_remaining),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-used": str(used),
            "x-ratelimit-resource": "core",
            "access-control-expose-headers": _EXPOSED,
        }
        headers.update({key.lower(): value for key, value in extra.items()})
        return headers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.method.upper()
        path = request.rel_url.raw_path
        if self.api_prefix:  # GitHub Enterprise Server: everything under /api/v3
            if not path.startswith(self.api_prefix + "/"):
                self.violations.append(f"{method} {path}: outside {self.api_prefix}")
                return web.json_response({"message": "Not Found"}, status=404)
            path = path[len(self.api_prefix) :]
        query = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        raw = await request.read()
        matched = self.spec.match(method, path)
        template = matched[0].template if matched else None
        body: Json = None
        try:
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise GitHubError(400, "Problems parsing JSON") from None
            status, payload, headers = self._answer(
                method, path, matched, query, body, bool(raw.strip()), request.headers
            )
        except GitHubError as error:
            if error.violation:
                self.violations.append(
                    f"{method} {template or path}: {error.errors or error.message}"
                )
            status, payload, headers = error.status, error.body(), {}
        except Exception as crash:  # a bug in the fake: answer 500 and fail the test
            detail = "".join(traceback.format_exception(crash)[-3:]).strip()
            self.violations.append(f"{method} {path}: the fake crashed: {detail}")
            status, payload, headers = 500, {"message": "Server Error"}, {}
        self.requests.append(Request(method, path, query, body, status, template))
        answer = self._headers(headers)
        if isinstance(payload, RawBody):
            answer["content-type"] = payload.content_type
            return web.Response(status=status, body=payload.text.encode(), headers=answer)
        text = None if payload is None else json.dumps(payload)
        return web.Response(status=status, text=text, headers=answer)

    def _answer(
        self,
        method: str,
        path: str,
        matched: tuple[Operation, dict[str, str]] | None,
        query: dict[str, str],
        body: Json,
        has_body: bool,
        headers: Mapping[str, str],
    ) -> tuple[int, Json, dict[str, str]]:
        """Fault, authentication, request checks, the handler, then response checks."""
        if matched is None:
            self.violations.append(f"{method} {path}: not in GitHub's REST API description")
            raise GitHubError(404, "Not Found")
        op, params = matched
        fault = self._take_fault(method, path, op.template)
        if fault is not None:
            self.rate_remaining = max(0, self.rate_remaining - 1)
            return fault.status, fault.body, fault.headers
        installation = self._authenticate(headers.get("Authorization"), op.template)
        self.rate_remaining = max(0, self.rate_remaining - 1)
        problems = self.spec.check_request(op, params, query.items(), body, has_body=has_body)
        if problems:
            self.violations.extend(problems)
            if any("request body" in p for p in problems):
                message = "Invalid request.\n\n" + "\n".join(problems)
                raise GitHubError(422, message, docs=_docs(op))
        handler = HANDLERS.get((method, op.template))
        if handler is None:
            self.violations.append(f"{method} {op.template}: not implemented by the fake")
            raise GitHubError(404, "Not Found")
        accept = headers.get("Accept", "")
        call = Call(op, params, query, body, installation, path=path, accept=accept)
        if op.template.startswith("/repos/{owner}/{repo}"):
            call.repo = self._repo_for(params, installation)
        status, payload, extra = handler(self, call)
        if 200 <= status < 300 and not isinstance(payload, RawBody):
            self._check_response(op, status, payload)
        return status, payload, extra

    def _check_response(self, op: Operation, status: int, payload: Json) -> None:
        """Validate a success body; identical bodies (polling) are validated once."""
        key = (op.method, op.template, status, json.dumps(payload, sort_keys=True))
        if key in self._valid_bodies:
            return
        found = self.spec.check_response(op, status, payload)
        if found:
            self.violations.extend(found)
        elif len(self._valid_bodies) < 10_000:
            self._valid_bodies.add(key)

    def _repo_for(self, params: dict[str, str], installation: int | None) -> Repo:
        repo = self.repos.get(f"{params['owner']}/{params['repo']}")
        if repo is None:
            raise GitHubError(404, "Not Found")
        if installation is not None and repo.installation_id != installation:
            raise GitHubError(404, "Not Found")
        return repo

    def installation_repos(self, installation_id: int) -> Iterator[Repo]:
        return (r for r in self.repos.values() if r.installation_id == installation_id)


def _docs(op: Operation) -> str:
    return f"https://docs.github.com/rest#{op.operation_id}"


_EXPOSED = (
    "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, X-OAuth-Scopes, "
    "X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, X-GitHub-SSO, "
    "X-GitHub-Request-Id, Deprecation, Sunset"
)
_REASONS = {
    400: "Bad Request",
    401: "Bad credentials",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
}
