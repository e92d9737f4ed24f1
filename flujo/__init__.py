"""Flujo: AI pipelines as YAML in git, with telemetry and reviewable self-improvement."""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # Resolved lazily: reading package metadata costs milliseconds on every CLI start.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("flujo")
        except PackageNotFoundError:  # running from a source tree without an install
            return "0.0.0+unknown"
    raise AttributeError(name)
