"""Import what a command needs at once, with Python's cyclic garbage collector paused.

A cold `flujo validate` imports pydantic, the spec model, ruamel.yaml and the checks:
hundreds of thousands of objects that live until the process ends. While they are being
made, the collector runs over them again and again (and once more at exit) and frees
nothing. `preload` imports modules with the collector paused, then moves everything alive
into the permanent generation (`gc.freeze()`), which later collections and the ones at
exit skip. Objects made afterwards (a spec's model, its diagnostics) are collected as
usual, so the memory a check uses does not change; only the imports' own cyclic garbage,
a fixed amount, stays until exit.
"""

from __future__ import annotations

import gc
import importlib
import sys


def preload(*modules: str) -> None:
    """Import `modules` (dotted names) with the collector paused, then freeze what exists;
    nothing when they are all imported already (a later call must not freeze the garbage
    of the work done since)."""
    if all(name in sys.modules for name in modules):
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
