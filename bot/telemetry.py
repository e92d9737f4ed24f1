"""Telemetry the bot receives (OTLP/HTTP), one run store per repository.

Each repository sending telemetry has a bearer token (`flujo bot token`); spans go to
`<db folder>/telemetry/<owner>/<repo>.db`, the same store format `flujo run` writes, so
`flujo suggest` and the bot's suggestion cycle read them alike.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class TelemetryStores:
    """Opens each repository's run store once and keeps it open."""

    def __init__(self, folder: Path, database_url: str | None = None) -> None:
        self.folder = folder
        self.database_url = database_url
        """On PostgreSQL each repository's runs live in a schema of their own."""
        self._stores: dict[str, RunStore] = {}
        self._lock = threading.Lock()

    def path(self, repo: str) -> Path:
        owner, _, name = repo.partition("/")
        return self.folder / _SAFE.sub("_", owner) / f"{_SAFE.sub('_', name)}.db"

    def store(self, repo: str) -> RunStore:
        from flujo.engine.store import RunStore

        with self._lock:
            found = self._stores.get(repo)
            if found is None:
                found = self._stores[repo] = (
                    RunStore(self.database_url, namespace=repo)
                    if self.database_url
                    else RunStore(self.path(repo))
                )
            return found

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
