"""A local git repository as a forge: no GitHub, same checks.

Files are read from the commit with git (not from the working tree); check runs are
written as JSON and Markdown under `.git/flujo/checks/<sha>/` and announced through a
callback (the CLI prints them).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flujo.bot.forge import CheckOutput, CheckRef, Proposal, PullRef, RepoFile
from flujo.spec.errors import EXIT_USAGE, FlujoError


class GitError(FlujoError):
    """A git command failed; the message is git's (exit code 2: not a repository, no such
    commit)."""

    exit_code = EXIT_USAGE


async def git(
    repo: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> bytes:
    process = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        str(repo),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=None if env is None else {**os.environ, **env},
    )
    out, err = await process.communicate(stdin)
    if process.returncode != 0:
        message = err.decode(errors="replace").strip() or f"git {args[0]} failed"
        raise GitError(message)
    return out


@dataclass(frozen=True, slots=True)
class Settled:
    """A local proposal that is no longer open: its branch was merged or deleted."""

    branch: str
    base: str
    merged: bool


class LocalForge:
    """The `Forge` for a git repository on disk."""

    def __init__(
        self,
        repo: Path,
        *,
        overrides: Mapping[str, int] | None = None,
        on_check: Callable[[CheckRef, str, CheckOutput | None], None] | None = None,
    ) -> None:
        self.repo = repo
        self._overrides = dict(overrides or {})
        self._on_check = on_check
        self._checks_root: Path | None = None

    async def resolve(self, rev: str) -> str:
        """The commit SHA a revision names (GitError when it names none)."""
        out = await git(self.repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        return out.decode().strip()

    async def checks_dir(self, sha: str) -> Path:
        if self._checks_root is None:
            git_dir = (await git(self.repo, "rev-parse", "--absolute-git-dir")).decode().strip()
            self._checks_root = Path(git_dir) / "flujo" / "checks"
        return self._checks_root / sha

    async def list_files(self, repo: str, sha: str) -> list[RepoFile]:
        out = await git(self.repo, "ls-tree", "-r", "-l", "-z", "--full-tree", sha)
        files = []
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            parts = meta.split()
            if len(parts) >= 4 and parts[1] == b"blob":
                size = int(parts[3]) if parts[3].isdigit() else 0
                files.append(RepoFile(path.decode("utf-8", "surrogateescape"), size))
        return files

    async def read_files(self, repo: str, sha: str, paths: list[str]) -> dict[str, bytes]:
        if not paths:
            return {}
        request = "".join(f"{sha}:{p}\n" for p in paths).encode()
        out = await git(self.repo, "cat-file", "--batch", stdin=request)
        files, position = {}, 0
        for path in paths:
            header_end = out.index(b"\n", position)
            header = out[position:header_end].split()
            position = header_end + 1
            if len(header) < 3 or header[1] != b"blob":
                continue
            size = int(header[2])
            files[path] = out[position : position + size]
            position += size + 1
        return files

    # -- proposals: a branch per proposal, its "pull request" a file beside the checks --

    async def propose(self, repo: str, proposal: Proposal) -> PullRef:
        base = proposal.base or (await self.default_head(repo))[0]
        base_sha = await self.resolve(base)
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            await git(self.repo, "read-tree", base_sha, env=env)
            for path, content in sorted(proposal.files.items()):
                blob = await git(self.repo, "hash-object", "-w", "--stdin", stdin=content)
                await git(
                    self.repo,
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    f"100644,{blob.decode().strip()},{path}",
                    env=env,
                )
            tree = (await git(self.repo, "write-tree", env=env)).decode().strip()
        ref = f"refs/heads/{proposal.branch}"
        try:
            head: str | None = await self.resolve(ref)
        except GitError:
            head = None
        changed = True
        if head is not None:
            current = (await git(self.repo, "rev-parse", f"{head}^{{tree}}", f"{head}^@")).split()
            changed = [c.decode() for c in current] != [tree, base_sha]
        if changed:
            commit = await git(
                self.repo,
                "commit-tree",
                tree,
                "-p",
                base_sha,
                "-m",
                proposal.message,
                env={
                    "GIT_AUTHOR_NAME": "Flujo",
                    "GIT_AUTHOR_EMAIL": "flujo@localhost",
                    "GIT_COMMITTER_NAME": "Flujo",
                    "GIT_COMMITTER_EMAIL": "flujo@localhost",
                },
            )
            head = commit.decode().strip()
            await git(self.repo, "update-ref", ref, head)
        pulls = await self._pulls_dir()
        record = pulls / f"{_slug(proposal.branch)}.json"
        previous = json.loads(record.read_text()) if record.exists() else None
        if previous is not None and previous.get("body") != proposal.body:
            changed = True
        number = previous["number"] if previous else len(list(pulls.glob("*.json"))) + 1
        record.write_text(
            json.dumps(
                {
                    "number": number,
                    "branch": proposal.branch,
                    "base": base,
                    "head": head,
                    "state": "open",
                    "title": proposal.title,
                    "body": proposal.body,
                    "labels": list(proposal.labels),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        (pulls / f"{_slug(proposal.branch)}.md").write_text(
            f"# {proposal.title}\n\n{proposal.body}", encoding="utf-8"
        )
        return PullRef(number, str(record), proposal.branch, "open", previous is None, changed)

    async def default_head(self, repo: str) -> tuple[str, str]:
        branch = (await git(self.repo, "symbolic-ref", "--short", "HEAD")).decode().strip()
        return branch, await self.resolve(branch)

    async def is_fork(self, repo: str) -> bool:
        return False  # a person's own clone

    async def closing_comment(self, repo: str, number: int, author: str) -> str | None:
        return None  # local "pull requests" have no comments

    async def proposals(self, repo: str, prefix: str) -> list[PullRef]:
        pulls = await self._pulls_dir()
        found = []
        for record in sorted(pulls.glob("*.json")):
            data = json.loads(record.read_text())
            if data.get("state") == "open" and str(data["branch"]).startswith(prefix):
                found.append(PullRef(int(data["number"]), str(record), data["branch"]))
        return found

    async def settle_proposals(self, prefix: str) -> list[Settled]:
        """Open proposals whose branch was merged into the branch it was made from, or
        was deleted unmerged; each is marked `merged` or `closed` so it is reported once.
        A merge is a branch commit reachable from the base branch (a squash merge, which
        leaves none, reads as a deletion)."""
        pulls = await self._pulls_dir()
        settled = []
        for record in sorted(pulls.glob("*.json")):
            data = json.loads(record.read_text())
            branch, base = str(data.get("branch", "")), str(data.get("base", ""))
            if data.get("state") != "open" or not branch.startswith(prefix) or not base:
                continue
            try:
                tip: str | None = await self.resolve(f"refs/heads/{branch}")
            except GitError:
                tip = None
            head = tip or data.get("head")
            merged = False
            if head:
                try:
                    await git(self.repo, "merge-base", "--is-ancestor", head, base)
                    merged = True
                except GitError:
                    merged = False
            if not merged and tip is not None:
                continue  # still there, not merged: still open
            data["state"] = "merged" if merged else "closed"
            record.write_text(json.dumps(data, indent=2), encoding="utf-8")
            settled.append(Settled(branch, base, merged))
        return settled

    async def _pulls_dir(self) -> Path:
        folder = (await self.checks_dir("x")).parent.parent / "pulls"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        return None  # local checks take approvals from `--override`

    async def comment(self, repo: str, number: int, body: str) -> None:
        return None  # local pull requests have no conversation

    async def can_write(self, repo: str, login: str) -> bool:
        return True  # a local repository is its owner's

    async def override_labels(self, repo: str, sha: str) -> dict[str, int]:
        return dict(self._overrides)

    async def upload_sarif(self, repo: str, sha: str, ref: str, sarif: str) -> None:
        """Written beside the checks as `flujo.sarif`, for an editor or another uploader."""
        folder = await self.checks_dir(sha)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "flujo.sarif").write_bytes(gzip.decompress(base64.b64decode(sarif)))

    async def queue_check(self, repo: str, sha: str, name: str) -> CheckRef:
        ref = CheckRef(_slug(name), name, sha)
        await self._record(ref, "queued")
        return ref

    async def start_check(self, repo: str, ref: CheckRef) -> None:
        await self._record(ref, "in_progress")

    async def complete_check(self, repo: str, ref: CheckRef, output: CheckOutput) -> None:
        await self._record(ref, "completed", output)

    async def _record(self, ref: CheckRef, status: str, output: CheckOutput | None = None) -> None:
        folder = await self.checks_dir(ref.sha)
        folder.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {
            "name": ref.name,
            "head_sha": ref.sha,
            "status": status,
            "updated_at": time.time(),
        }
        if output is not None:
            record.update(
                conclusion=output.conclusion,
                output={"title": output.title, "summary": output.summary, "text": output.text},
                annotations=[asdict(a) for a in output.annotations],
            )
            (folder / f"{ref.id}.md").write_text(
                f"# {output.name}: {output.conclusion}\n\n**{output.title}**\n\n{output.summary}",
                encoding="utf-8",
            )
        (folder / f"{ref.id}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        if self._on_check is not None:
            self._on_check(ref, status, output)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name.removeprefix("flujo/"))
