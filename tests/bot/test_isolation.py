"""The fork server that isolated checks start from (`flujo.bot.isolated`, `flujo.bot.isolation`)."""

from __future__ import annotations

import json
import subprocess
import sys

FORK_SERVER = """
import gc, json
import flujo.bot.isolated  # what the fork server preloads
print(json.dumps({"walked": len(gc.get_objects()), "frozen": gc.get_freeze_count()}))
"""


def test_a_child_never_walks_the_objects_it_inherits_from_the_fork_server() -> None:
    # Were they visible, a child whose inherited collection counters call for a full
    # collection would walk (and copy the pages of) the whole warm heap: 20-30 ms of CPU
    # per child, on some checkouts and not others.
    done = subprocess.run(
        [sys.executable, "-c", FORK_SERVER], capture_output=True, text=True, check=True
    )
    heap = json.loads(done.stdout)
    assert heap["frozen"] > 20_000  # the modules and the warm-up's caches
    assert heap["walked"] < 1_000  # what a child's collection still walks
