"""Import what a command needs at once, with Python's cyclic garbage collector paused.

A cold `flujo validate` imports pydantic, the spec model, ruamel.yaml and the checks:
hundreds of thousands of objects that live until the process ends. While they are being
made, the collector runs over them again and again (and once more at exit) and frees
nothing. `preload` imports modules with the collector paused, then moves everything alive
into the permanent generation (`gc.freeze()`), which later collections and the ones at
exit skip. Objects made afterwards (a spec's model, its diagnostics) are collected as
usual, so the memory a check uses does not change; only the imports' own cyclic garbage,
a fixed amount, stays until exit.

`flujo run` and `flujo test` preload the same way (the check's modules and the engine's).
Measured on `examples/support_triage.yaml` with valgrind's callgrind (instructions, two
runs each, preload vs none): `flujo run --fake` 1.451 G vs 1.562 G (-7.1%), `flujo test`
3.757 G vs 3.835 G (-2.1%). CPU time of cold processes, 8 and 12 interleaved rounds on a
loaded 2-core machine: `run` medians -30% and -12%; `test` -21% and +1.5% (noise).
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
