"""A cache of `flujo validate` results, so that a pre-commit hook answers in milliseconds.

An entry holds what checking one file found (its diagnostics, spec_sha256 and number of
steps) under a key that covers everything the result depends on:

- the file's bytes and the name it is shown by (diagnostics carry it);
- Flujo itself: the installed version and a fingerprint (path, size, mtime) of every
  source file of `flujo.spec`, so an entry from another version or a changed checkout is
  never used;
- the registry: the repository config the spec sees (`.github/flujo.yml`, found as
  `flujo.spec.config.find_config` does, or `--config`) by content, and the environment's
  plugins (entry points) through the modification times of the folders on `sys.path`
  (installing or removing a package changes them).

Specs with `imports:` are not cached (their result depends on other files). Nothing in
this module imports the spec model, pydantic or YAML: a hit costs a hash and a read.

Where: `$FLUJO_CACHE_DIR` if set; otherwise `.flujo/cache/validate/` in the repository
(the nearest folder above the spec with `.git`); otherwise
`$XDG_CACHE_HOME/flujo/validate` (`~/.cache/flujo/validate`). At most `MAX_ENTRIES`
entries per folder (the oldest go first). `FLUJO_NO_CACHE=1` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flujo.spec.errors import Diagnostic

FORMAT = 1
MAX_ENTRIES = 512
CONFIG_NAMES = (".github/flujo.yml", ".github/flujo.yaml")  # as flujo.spec.config


@dataclass(frozen=True)
class CachedCheck:
    """What checking a file found, as `flujo validate` reports it."""

    diagnostics: list[Diagnostic]
    spec_sha256: str | None
    steps: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "spec_sha256": self.spec_sha256,
            "steps": self.steps,
        }

    @classmethod
    def from_json(cls, data: Any) -> CachedCheck | None:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        try:
            diagnostics = [Diagnostic(**d) for d in data["diagnostics"]]
        except (TypeError, KeyError):
            return None
        return cls(diagnostics, data.get("spec_sha256"), data.get("steps"))


def enabled() -> bool:
    return os.environ.get("FLUJO_NO_CACHE", "") in ("", "0")


def find_config(spec: Path) -> Path | None:
    """The repository config a spec sees (the same search as flujo.spec.config)."""
    directory = spec.resolve().parent
    for folder in (directory, *directory.parents):
        for name in CONFIG_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
        if (folder / ".git").exists():
            return None
    return None


def cache_dir(spec: Path) -> Path:
    """Where the entries for `spec` are kept (see the module)."""
    explicit = os.environ.get("FLUJO_CACHE_DIR")
    if explicit:
        return Path(explicit)
    for folder in spec.resolve().parents:
        if (folder / ".git").exists():
            return folder / ".flujo" / "cache" / "validate"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flujo" / "validate"


_flujo_fingerprint: str | None = None


def flujo_fingerprint() -> str:
    """The installed Flujo and its validation code, and the environment's packages."""
    global _flujo_fingerprint
    if _flujo_fingerprint is None:
        digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0".encode())
        package = Path(__file__).resolve().parent
        for root, dirs, files in os.walk(package):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".py", ".json")):
                    stat = os.stat(os.path.join(root, name))
                    digest.update(f"{root}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        for entry in sys.path:  # installs and plugins (entry points) change these folders
            try:
                digest.update(f"{entry}\0{os.stat(entry or '.').st_mtime_ns}\0".encode())
                if entry.endswith("-packages"):
                    names = [n for n in os.listdir(entry) if n.startswith("flujo-")]
                    digest.update("\0".join(sorted(names)).encode())  # its version
            except OSError:
                continue
        _flujo_fingerprint = digest.hexdigest()
    return _flujo_fingerprint


def cache_key(spec: Path, data: bytes, shown_as: str, config: Path | None) -> str:
    """The key of `spec`'s result; `config` is `--config` (None: the repository's)."""
    digest = hashlib.sha256(flujo_fingerprint().encode())
    digest.update(f"\0{shown_as}\0{os.getcwd()}\0".encode())
    digest.update(hashlib.sha256(data).digest())
    config_file = config if config is not None else find_config(spec)
    if config_file is not None:
        digest.update(f"\0config\0{config_file.resolve()}\0".encode())
        digest.update(hashlib.sha256(config_file.read_bytes()).digest())
    return digest.hexdigest()


class CheckCache:
    """Entries of one `flujo validate` invocation (`--config` applies to every file)."""

    def __init__(self, config: Path | None = None) -> None:
        self.config = config
        self.enabled = enabled()

    def key(self, spec: Path, shown_as: str) -> str | None:
        if not self.enabled:
            return None
        try:
            return cache_key(spec, spec.read_bytes(), shown_as, self.config)
        except OSError:
            return None

    def get(self, spec: Path, key: str | None) -> CachedCheck | None:
        if key is None:
            return None
        try:
            text = (cache_dir(spec) / f"{key}.json").read_text(encoding="utf-8")
            return CachedCheck.from_json(json.loads(text))
        except (OSError, ValueError):
            return None

    def put(self, spec: Path, key: str | None, check: CachedCheck) -> None:
        """Store an entry (best effort: a read-only or full disk only loses the cache)."""
        if key is None:
            return
        import tempfile

        folder = cache_dir(spec)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            gitignore = folder / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("*\n", encoding="utf-8")
            handle, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(check.to_json(), out)
            os.replace(temp, folder / f"{key}.json")
            _prune(folder)
        except OSError:
            return


def _prune(folder: Path) -> None:
    """Keep the newest MAX_ENTRIES entries."""
    entries = [entry for entry in os.scandir(folder) if entry.name.endswith(".json")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda entry: entry.stat().st_mtime_ns)
    for entry in entries[: len(entries) - MAX_ENTRIES // 2]:
        try:
            os.unlink(entry.path)
        except OSError:
            continue
