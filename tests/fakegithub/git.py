"""A bare git repository driven through the `git` command: real SHAs, trees and blobs."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Flujo Test",
    "GIT_AUTHOR_EMAIL": "test@flujo.invalid",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


class GitError(Exception):
    """A git command failed (unknown object, conflicting merge, …)."""


@dataclass(frozen=True)
class Entry:
    """One tree entry: `mode`, `type` (blob|tree|commit), `sha`, `path`, `size` (blobs)."""

    mode: str
    type: str
    sha: str
    path: str
    size: int | None = None


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: tuple[str, str, str]
    committer: tuple[str, str, str]
    message: str


@dataclass(frozen=True)
class Change:
    """One file changed between two commits (`status` as GitHub names it)."""

    status: str
    path: str
    previous_path: str | None
    additions: int
    deletions: int
    patch: str
    sha: str | None


class GitRepo:
    """A bare repository at `path` (created if missing)."""

    def __init__(self, path: Path, default_branch: str = "main") -> None:
        self.path = path
        if not (path / "HEAD").exists():
            path.mkdir(parents=True, exist_ok=True)
            self.run("init", "--bare", "--quiet", f"--initial-branch={default_branch}")

    def run(self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=self.path,
            input=stdin,
            capture_output=True,
            env={**os.environ, **_IDENTITY, **(env or {})},
            check=False,
        )
        if done.returncode != 0:
            raise GitError(done.stderr.decode(errors="replace").strip() or f"git {args[0]} failed")
        return done.stdout.decode(errors="replace")

    # --- objects ------------------------------------------------------------------------

    def write_blob(self, content: bytes) -> str:
        return self.run("hash-object", "-w", "--stdin", stdin=content).strip()

    def read_blob(self, sha: str) -> bytes:
        done = subprocess.run(
            ["git", "cat-file", "blob", sha], cwd=self.path, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise GitError(f"no blob {sha}")
        return done.stdout

    def object_type(self, sha: str) -> str | None:
        try:
            return self.run("cat-file", "-t", sha).strip()
        except GitError:
            return None

    def resolve(self, ref: str) -> str | None:
        """The commit SHA a branch, tag, full ref or (abbreviated) SHA names, or None."""
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
            try:
                return self.run("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}").strip()
            except GitError:
                continue
        return None

    def ls_tree(self, tree: str, *, recursive: bool = False, path: str = "") -> list[Entry]:
        args = ["ls-tree", "-l", "-z"]
        if recursive:
            args += ["-r", "-t"]
        args.append(tree)
        if path:
            args += ["--", path]
        entries = []
        for line in self.run(*args).split("\0"):
            if not line:
                continue
            meta, name = line.split("\t", 1)
            mode, kind, sha, size = meta.split()
            entries.append(Entry(mode, kind, sha, name, None if size == "-" else int(size)))
        return entries

    def flat_files(self, tree: str) -> dict[str, Entry]:
        """Every non-tree entry under `tree`, keyed by full path."""
        return {e.path: e for e in self.ls_tree(tree, recursive=True) if e.type != "tree"}

    def write_tree(self, files: dict[str, Entry]) -> str:
        """Nested trees for a flat path → entry map; returns the root tree SHA."""
        here: dict[str, Entry] = {}
        below: dict[str, dict[str, Entry]] = {}
        for path, entry in files.items():
            head, _, rest = path.partition("/")
            if rest:
                below.setdefault(head, {})[rest] = entry
            else:
                here[head] = entry
        lines = [f"{e.mode} {e.type} {e.sha}\t{name}" for name, e in here.items()]
        for name, children in below.items():
            lines.append(f"040000 tree {self.write_tree(children)}\t{name}")
        return self.run("mktree", "-z", stdin="".join(f"{line}\0" for line in lines).encode()).strip()

    def commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree.strip()]
        for parent in parents:
            args += ["-p", parent]
        return self.run(*args, stdin=message.encode()).strip()

    def read_commit(self, sha: str) -> CommitInfo:
        text = self.run("cat-file", "commit", sha)
        header, _, message = text.partition("\n\n")
        tree = ""
        parents: list[str] = []
        people: dict[str, tuple[str, str, str]] = {}
        for line in header.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key in ("author", "committer"):
                name, _, rest = value.partition(" <")
                email, _, when = rest.partition("> ")
                people[key] = (name, email, when.split()[0])
        return CommitInfo(sha, tree, parents, people["author"], people["committer"], message)

    # --- refs ---------------------------------------------------------------------------

    def refs(self, prefix: str = "refs/") -> list[tuple[str, str]]:
        out = self.run("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return [tuple(line.split(" ", 1)) for line in out.splitlines()]  # type: ignore[misc]

    def ref(self, name: str) -> str | None:
        found = [sha for ref, sha in self.refs(name) if ref == name]
        return found[0] if found else None

    def set_ref(self, name: str, sha: str) -> None:
        self.run("update-ref", name, sha)

    def delete_ref(self, name: str) -> None:
        self.run("update-ref", "-d", name)

    # --- history ------------------------------------------------------------------------

    def merge_base(self, a: str, b: str) -> str | None:
        try:
            return self.run("merge-base", a, b).strip()
        except GitError:
            return None

    def rev_list(self, spec: str) -> list[str]:
        """Commits in `spec` (e.g. `base..head`), oldest first."""
        return self.run("rev-list", "--reverse", spec).split()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        try:
            self.run("merge-base", "--is-ancestor", ancestor, descendant)
        except GitError:
            return False
        return True

    def merge_tree(self, ours: str, theirs: str) -> str | None:
        """The tree of merging `theirs` into `ours`, or None on conflicts."""
        try:
            return self.run("merge-tree", "--write-tree", ours, theirs).split()[0]
        except GitError:
            return None

    def changes(self, old: str, new: str) -> list[Change]:
        """Files changed from commit `old` to commit `new` with line counts and patches."""
        status = self.run("diff", "--name-status", "-M", "-z", old, new).split("\0")
        numstat = self.run("diff", "--numstat", "-M", "-z", old, new).split("\0")
        counts: list[tuple[int, int]] = []
        index = 0
        while index < len(numstat) and numstat[index]:
            added, deleted, name = numstat[index].split("\t", 2)
            counts.append((int(added) if added != "-" else 0, int(deleted) if deleted != "-" else 0))
            index += 1 if name else 3
        changes = []
        index = 0
        names = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "T": "changed"}
        while index < len(status) and status[index]:
            code = status[index]
            if code.startswith("R"):
                previous, path = status[index + 1], status[index + 2]
                index += 3
            else:
                previous, path = None, status[index + 1]
                index += 2
            patch = self.run("diff", "-M", old, new, "--", *([previous] if previous else []), path)
            hunks = patch.split("\n@@", 1)
            body = "@@" + hunks[1] if len(hunks) == 2 else ""
            added, deleted = counts[len(changes)] if len(changes) < len(counts) else (0, 0)
            blob = None if code == "D" else self.blob_sha(new, path)
            changes.append(
                Change(names.get(code[0], "modified"), path, previous, added, deleted, body, blob)
            )
        return changes

    def blob_sha(self, commit: str, path: str) -> str | None:
        found = self.ls_tree(commit, path=path)
        return found[0].sha if found and found[0].path == path else None
