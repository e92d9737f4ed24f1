"""A bare git repository driven through the `git` command: real SHAs, trees and blobs."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Flujo Test",
    "GIT_AUTHOR_EMAIL": "test@flujo.invalid",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


_STATUS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "T": "changed"}
_SHA = re.compile(r"[0-9a-f]{40}")


def is_sha(text: str) -> bool:
    return _SHA.fullmatch(text) is not None


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
    """A bare repository at `path` (created if missing).

    Objects named by full SHA never change, so what is read about them is cached; refs are
    kept in memory too (only this object moves them). A git call costs ~3 ms, a hit ~1 µs.
    """

    def __init__(self, path: Path, default_branch: str = "main") -> None:
        self.path = path
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._refs: dict[str, str] | None = None
        if not (path / "HEAD").exists():
            path.mkdir(parents=True, exist_ok=True)
            self.run(
                "init", "--bare", "--quiet", "--template=", f"--initial-branch={default_branch}"
            )
            self._refs = {}

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
        sha = self.run("hash-object", "-w", "--stdin", stdin=content).strip()
        self._cache[("blob", sha)] = content
        self._cache[("type", sha)] = "blob"
        return sha

    def read_blob(self, sha: str) -> bytes:
        key = ("blob", sha)
        if key not in self._cache:
            done = subprocess.run(
                ["git", "cat-file", "blob", sha], cwd=self.path, capture_output=True, check=False
            )
            if done.returncode != 0:
                raise GitError(f"no blob {sha}")
            self._cache[key] = done.stdout
        data: bytes = self._cache[key]
        return data

    def object_type(self, sha: str) -> str | None:
        """`blob`, `tree`, `commit` or `tag` for a full SHA; None if there is no such object."""
        if not is_sha(sha):
            return None
        key = ("type", sha)
        if key not in self._cache:
            try:
                self._cache[key] = self.run("cat-file", "-t", sha).strip()
            except GitError:
                return None
        kind: str = self._cache[key]
        return kind

    def resolve(self, ref: str) -> str | None:
        """The commit SHA a branch, tag, full ref or (abbreviated) SHA names, or None."""
        refs = self._ref_map()
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
            if candidate in refs and self.object_type(refs[candidate]) == "commit":
                return refs[candidate]
        if is_sha(ref):
            return ref if self.object_type(ref) == "commit" else None
        try:
            return self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except GitError:
            return None

    def ls_tree(self, tree: str, *, recursive: bool = False, path: str = "") -> list[Entry]:
        """Entries of a tree (or a commit's tree), optionally recursive or only `path`."""
        key = ("tree", tree, recursive, path)
        if is_sha(tree) and key in self._cache:
            return list(self._cache[key])
        entries = self._ls_tree(tree, recursive=recursive, path=path)
        if is_sha(tree):
            self._cache[key] = entries
        return list(entries)

    def _ls_tree(self, tree: str, *, recursive: bool, path: str) -> list[Entry]:
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
        return self.run(
            "mktree", "-z", stdin="".join(f"{line}\0" for line in lines).encode()
        ).strip()

    def commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree.strip()]
        for parent in parents:
            args += ["-p", parent]
        return self.run(*args, stdin=message.encode()).strip()

    def import_commits(
        self,
        ref: str,
        parent: str | None,
        changes: list[dict[str, bytes | None]],
        message: str,
    ) -> list[str]:
        """Commit each of `changes` (path -> content, None deletes) in turn on `ref`, the
        first on top of `parent`, in one `git fast-import`: the same commits as one
        `commit-tree` each (a blob, trees, a commit, the ref: ~5 git calls per commit),
        for one process in all. Returns the new commit SHAs, oldest first."""
        when = f"{int(time.time())} {time.strftime('%z')}"
        author = f"{_IDENTITY['GIT_AUTHOR_NAME']} <{_IDENTITY['GIT_AUTHOR_EMAIL']}> {when}"
        committer = f"{_IDENTITY['GIT_COMMITTER_NAME']} <{_IDENTITY['GIT_COMMITTER_EMAIL']}> {when}"
        text = message.encode()
        stream = bytearray()
        for mark, files in enumerate(changes, 1):
            stream += (
                f"commit {ref}\nmark :{mark}\nauthor {author}\ncommitter {committer}\n".encode()
            )
            stream += b"data %d\n%s\n" % (len(text), text)
            if mark == 1 and parent:
                stream += f"from {parent}\n".encode()
            for path, content in files.items():
                if content is None:
                    stream += f"D {path}\n".encode()
                else:
                    stream += b"M 100644 inline %s\ndata %d\n%s\n" % (
                        path.encode(),
                        len(content),
                        content,
                    )
        with tempfile.TemporaryDirectory() as folder:
            marks = Path(folder) / "marks"
            self.run("fast-import", "--quiet", f"--export-marks={marks}", stdin=bytes(stream))
            found = dict(line.split() for line in marks.read_text().splitlines())
        shas = [found[f":{mark}"] for mark in range(1, len(changes) + 1)]
        if not shas:
            return shas
        self._ref_map()[ref] = shas[-1]
        # What `read_commit` would ask git for, known already but for the trees (one call).
        trees = dict(
            line.split()
            for line in self.run("log", f"-{len(shas)}", "--format=%H %T", shas[-1]).splitlines()
        )
        epoch = when.split()[0]
        people = [
            (_IDENTITY[f"GIT_{who}_NAME"], _IDENTITY[f"GIT_{who}_EMAIL"], epoch)
            for who in ("AUTHOR", "COMMITTER")
        ]
        for before, sha in zip([parent, *shas], shas, strict=False):
            self._cache[("type", sha)] = "commit"
            parents = [before] if before else []
            self._cache[("commit", sha)] = CommitInfo(
                sha, trees[sha], parents, people[0], people[1], message
            )
        return shas

    def read_commit(self, sha: str) -> CommitInfo:
        key = ("commit", sha)
        if key not in self._cache:
            self._cache[key] = self._read_commit(sha)
        info: CommitInfo = self._cache[key]
        return info

    def _read_commit(self, sha: str) -> CommitInfo:
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

    def _ref_map(self) -> dict[str, str]:
        if self._refs is None:
            out = self.run("for-each-ref", "--format=%(refname) %(objectname)")
            self._refs = dict(line.split(" ", 1) for line in out.splitlines())
        return self._refs

    def refs(self, prefix: str = "refs/") -> list[tuple[str, str]]:
        """(full ref name, SHA) for every ref starting with `prefix`, sorted by name."""
        return sorted((n, sha) for n, sha in self._ref_map().items() if n.startswith(prefix))

    def ref(self, name: str) -> str | None:
        return self._ref_map().get(name)

    def set_ref(self, name: str, sha: str) -> None:
        self.run("update-ref", name, sha)
        self._ref_map()[name] = sha

    def delete_ref(self, name: str) -> None:
        self.run("update-ref", "-d", name)
        self._ref_map().pop(name, None)

    # --- history ------------------------------------------------------------------------

    def _memo(self, key: tuple[Any, ...], *shas: str) -> tuple[bool, Any]:
        if all(is_sha(s) for s in shas) and key in self._cache:
            return True, self._cache[key]
        return False, None

    def _keep(self, key: tuple[Any, ...], value: Any, *shas: str) -> Any:
        if all(is_sha(s) for s in shas):
            self._cache[key] = value
        return value

    def merge_base(self, a: str, b: str) -> str | None:
        hit, value = self._memo(("merge-base", a, b), a, b)
        if hit:
            return value  # type: ignore[no-any-return]
        try:
            found: str | None = self.run("merge-base", a, b).strip()
        except GitError:
            found = None
        return self._keep(("merge-base", a, b), found, a, b)  # type: ignore[no-any-return]

    def rev_list(self, base: str, head: str) -> list[str]:
        """Commits reachable from `head` but not from `base`, oldest first."""
        hit, value = self._memo(("rev-list", base, head), base, head)
        if hit:
            return list(value)
        found = self.run("rev-list", "--reverse", f"{base}..{head}").split()
        return list(self._keep(("rev-list", base, head), found, base, head))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        try:
            self.run("merge-base", "--is-ancestor", ancestor, descendant)
        except GitError:
            return False
        return True

    def merge_tree(self, ours: str, theirs: str) -> str | None:
        """The tree of merging `theirs` into `ours`, or None on conflicts."""
        hit, value = self._memo(("merge-tree", ours, theirs), ours, theirs)
        if hit:
            return value  # type: ignore[no-any-return]
        try:
            found: str | None = self.run("merge-tree", "--write-tree", ours, theirs).split()[0]
        except GitError:
            found = None
        return self._keep(("merge-tree", ours, theirs), found, ours, theirs)  # type: ignore[no-any-return]

    def changes(self, old: str, new: str) -> list[Change]:
        """Files changed from commit `old` to commit `new` with line counts and patches."""
        hit, value = self._memo(("changes", old, new), old, new)
        if hit:
            return list(value)
        return list(self._keep(("changes", old, new), self._changes(old, new), old, new))

    def _changes(self, old: str, new: str) -> list[Change]:
        status = self.run("diff", "--name-status", "-M", "-z", old, new).split("\0")
        numstat = self.run("diff", "--numstat", "-M", "-z", old, new).split("\0")
        counts: list[tuple[int, int]] = []
        index = 0
        while index < len(numstat) and numstat[index]:
            plus, minus, name = numstat[index].split("\t", 2)
            counts.append((int(plus) if plus != "-" else 0, int(minus) if minus != "-" else 0))
            index += 1 if name else 3
        patches = re.split(r"^diff --git .*\n", self.run("diff", "-M", old, new), flags=re.M)[1:]
        files = self.flat_files(new)
        changes: list[Change] = []
        index = 0
        while index < len(status) and status[index]:
            code = status[index]
            previous: str | None = None
            if code.startswith("R"):
                previous, path = status[index + 1], status[index + 2]
                index += 3
            else:
                path = status[index + 1]
                index += 2
            number = len(changes)
            patch = patches[number] if number < len(patches) else ""
            hunk = patch.find("@@")
            added, deleted = counts[number] if number < len(counts) else (0, 0)
            blob = files[path].sha if path in files else None
            changes.append(
                Change(
                    _STATUS.get(code[0], "modified"),
                    path,
                    previous,
                    added,
                    deleted,
                    patch[hunk:].rstrip("\n") if hunk >= 0 else "",
                    blob,
                )
            )
        return changes

    def diff(self, old: str, new: str) -> str:
        """`git diff` from `old` to `new`, as GitHub's diff media type shows it."""
        return self.run("diff", "-M", old, new)

    def blob_sha(self, commit: str, path: str) -> str | None:
        found = self.ls_tree(commit, path=path)
        return found[0].sha if found and found[0].path == path else None
