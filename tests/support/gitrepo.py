"""Real git repositories for tests: `git(repo, *args)` and `repo_with(files)`."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` as a test author; its standard output (CalledProcessError on
    failure)."""
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def repo_with(root: Path, files: dict[str, str], branch: str = "main") -> Path:
    """A new repository at `root` whose first commit on `branch` holds `files`."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    git(root, "init", "-q", "-b", branch)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return root
