"""Flujo: AI pipelines as YAML in git, with telemetry and reviewable self-improvement.

The public API, imported lazily so that `import flujo` stays cheap::

    import flujo

    pipeline = flujo.Pipeline.from_yaml("flows/triage.yaml")  # raises flujo.SpecError
    result = await flujo.run(pipeline, {"ticket": "I was charged twice"})
    result.output, result.total_cost_usd

Everything else (`flujo.spec.*`, `flujo.engine.*`, …) is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flujo.engine.results import PipelineResult
    from flujo.engine.runner import resume, run
    from flujo.spec.errors import Diagnostic, SpecError
    from flujo.spec.model import Pipeline

__all__ = [
    "Diagnostic",
    "Pipeline",
    "PipelineResult",
    "SpecError",
    "__version__",
    "resume",
    "run",
]

# name -> module that defines it
_PUBLIC = {
    "Pipeline": "flujo.spec.model",
    "SpecError": "flujo.spec.errors",
    "Diagnostic": "flujo.spec.errors",
    "run": "flujo.engine.runner",
    "resume": "flujo.engine.runner",
    "PipelineResult": "flujo.engine.results",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
    # Resolved lazily: reading package metadata costs milliseconds on every CLI start.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("flujo")
        except PackageNotFoundError:  # running from a source tree without an install
            return "0.0.0+unknown"
    raise AttributeError(f"module 'flujo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
