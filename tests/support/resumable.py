"""Skills for the resume tests: a step that blocks while a file says so (so that a test
can kill the process running it at a known place)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

BLOCK_ENV = "FLUJO_TEST_BLOCK"
"""A path: while the file is there, `block` writes `<path>.reached` and waits."""


def double(value: Any) -> dict[str, Any]:
    """A context update: the input's `n`, doubled, and a list."""
    return {"doubled": value["n"] * 2, "seen": [value["n"]]}


def block(value: Any) -> Any:
    """`value`, after waiting while the file $FLUJO_TEST_BLOCK exists."""
    flag = os.environ.get(BLOCK_ENV)
    if flag:
        path = Path(flag)
        if path.exists():
            Path(f"{flag}.reached").write_text(str(os.getpid()), encoding="utf-8")
            while path.exists():
                time.sleep(0.05)
    return value
