"""`imports:`: load the spec files a pipeline names, safely.

A path is relative to the importing file and must stay inside the repository (the
nearest folder above the spec holding `.git`, else the spec's own folder); a file may
not import itself through any chain; a missing file is an error at its `imports:` entry.
Imported steps keep the yaml_paths and lines of their own files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from flujo.spec import paths
from flujo.spec.errors import Diagnostic, SpecError

if TYPE_CHECKING:
    from flujo.spec.model import Pipeline
    from flujo.spec.registry import StepRegistry


def repository_root(folder: Path) -> Path:
    """The nearest folder at or above `folder` that holds `.git`; `folder` if none does."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def lexical_repository_root(path: Path) -> Path | None:
    """The repository a path is in by its name, not by where symlinks in it lead: the
    nearest folder above it holding `.git`, skipping folders that are symlinks (and those
    reached through one, which a committed symlink could point at another repository)."""
    absolute = Path(os.path.abspath(path))
    ancestors = list(absolute.parents)  # nearest first
    link = next((i for i, folder in enumerate(ancestors) if folder.is_symlink()), -1)
    above = None  # the repository holding the nearest symlinked folder, if any
    if link >= 0:
        above = next((a for a in ancestors[link + 1 :] if (a / ".git").exists()), None)
    for index, candidate in enumerate(ancestors):
        if (candidate / ".git").exists():
            return above if index <= link and above is not None else candidate
    return None


def escapes_repository(path: Path, root: Path | None = None) -> Path | None:
    """The repository root that `path` leaves by following symlinks (None if it stays
    inside, or is in no repository). `root` defaults to `lexical_repository_root`."""
    root = root if root is not None else lexical_repository_root(path)
    if root is None:
        return None
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return root
    return None if inside else root


def load_imports(
    pipeline: Pipeline,
    spec_path: Path | None,
    *,
    registry: StepRegistry | None,
    importers: tuple[Path, ...],
    loaded: dict[Path, tuple[Pipeline | None, list[Diagnostic]]] | None = None,
) -> list[Diagnostic]:
    """Load every file in `pipeline.imports` into `pipeline.imported`; return problems.

    `loaded` memoises by resolved path (shared by the whole check): a file imported
    from many places, or twice, is read and checked once, so a chain of files that each
    import the next twice costs linear, not exponential, time."""
    if loaded is None:
        loaded = {}
    from flujo.spec.display import display_name
    from flujo.spec.load import check

    document = pipeline.source
    base = spec_path.resolve().parent if spec_path is not None else Path.cwd().resolve()
    root = repository_root(base)
    found: list[Diagnostic] = []

    def problem(alias: str, message: str, code: str) -> None:
        path = paths.child("imports", alias)
        if document is None:
            found.append(Diagnostic(message, code, "<string>", 1, 1, path))
        else:
            found.append(document.diagnostic(path, message, code))

    for alias, relative in pipeline.imports.items():
        try:
            target = (base / relative).resolve()
            exists = target.is_file()
        except (ValueError, OSError) as exc:  # a NUL byte, a name too long, a loop
            reason = str(exc) if isinstance(exc, ValueError) else exc.strerror or str(exc)
            problem(alias, f"{relative[:200]!r} is not a usable path ({reason})", "unsafe-path")
            continue
        if not target.is_relative_to(root):
            problem(alias, f"'{relative}' is outside the repository ({root})", "unsafe-path")
            continue
        if target in importers:
            chain = " -> ".join(display_name(p) for p in (*importers, target))
            problem(alias, f"import cycle: {chain}", "import-cycle")
            continue
        if not exists:
            problem(alias, f"imported file '{relative}' does not exist", "missing-file")
            continue
        if target in loaded:
            imported, diagnostics = loaded[target]
            diagnostics = []  # reported where the file was first loaded
        else:
            try:
                imported, diagnostics = check(
                    target, registry=registry, _importers=importers, _loaded=loaded
                )
            except SpecError as exc:
                loaded[target] = (None, [])
                found.extend(exc.diagnostics)
                continue
            except OSError as exc:
                problem(alias, f"cannot read '{relative}': {exc.strerror or exc}", "missing-file")
                continue
            loaded[target] = (imported, diagnostics)
        found.extend(diagnostics)
        if imported is None:
            problem(alias, f"imported file '{relative}' is invalid", "invalid-import")
        else:
            pipeline._imported[alias] = imported
    return found
