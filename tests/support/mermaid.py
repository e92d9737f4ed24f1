"""The real Mermaid parser (npm `mermaid` under Node), shared by every test in a session.

One Node process (`tests/support/mermaid_check.mjs`) serves the whole session; diagrams go in
batches. `./dev test` installs the npm packages (`npm ci`). Without Node or the packages
the Mermaid tests fail, unless FLUJO_SKIP_MERMAID=1 opts out (then they are skipped).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("mermaid_check.mjs")


class MermaidParser:
    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is not installed")
        if not (ROOT / "node_modules" / "mermaid").is_dir():
            raise RuntimeError("the npm packages are missing: run `npm ci` (or `./dev test`)")
        self.process = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        ready = self._read()
        if ready != {"ready": True}:
            raise RuntimeError(f"the Mermaid checker did not start: {ready!r}")
        atexit.register(self.close)

    def _read(self) -> object:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the Mermaid checker exited (see its output above)")
        return json.loads(line)

    def errors(self, diagrams: list[str]) -> list[str | None]:
        """Per diagram: None when it parses, else Mermaid's error message."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(diagrams) + "\n")
        self.process.stdin.flush()
        result = self._read()
        assert isinstance(result, list) and len(result) == len(diagrams)
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=10)


@cache
def _parser() -> MermaidParser | str:
    try:
        return MermaidParser()
    except (RuntimeError, OSError) as exc:
        return str(exc)


def mermaid_errors(diagrams: list[str]) -> list[str | None]:
    """Parse every diagram with the real Mermaid; fails the test if Mermaid is unavailable."""
    parser = _parser()
    if isinstance(parser, str):
        if os.environ.get("FLUJO_SKIP_MERMAID") == "1":
            pytest.skip(f"Mermaid parser unavailable ({parser}); FLUJO_SKIP_MERMAID=1")
        pytest.fail(f"Mermaid parser unavailable: {parser} (FLUJO_SKIP_MERMAID=1 skips)")
    return parser.errors(diagrams)


def assert_mermaid(*diagrams: str) -> None:
    """Every diagram parses in Mermaid; otherwise fail showing the diagram and the error."""
    for diagram, error in zip(diagrams, mermaid_errors(list(diagrams)), strict=True):
        assert error is None, f"Mermaid rejects this diagram:\n{diagram}\n{error}"
