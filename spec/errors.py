"""Diagnostics: one problem in a spec, with the place it points to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in a spec file.

    `line` and `col` are 1-based; `yaml_path` is empty for problems that are not
    inside a node (a YAML syntax error, an oversized file).
    """

    message: str
    code: str
    file: str = "<string>"
    line: int = 1
    col: int = 1
    yaml_path: str = ""
    severity: Severity = "error"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        where = f" ({self.yaml_path})" if self.yaml_path else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}{where}"


@dataclass(slots=True)
class SpecError(Exception):
    """Raised when a spec cannot be loaded; carries every problem found."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.__str__())

    @classmethod
    def single(cls, diagnostic: Diagnostic) -> SpecError:
        return cls([diagnostic])

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Order by file position, errors before warnings at the same place; drop exact repeats."""
    unique = dict.fromkeys(diagnostics)
    return sorted(unique, key=lambda d: (d.file, d.line, d.col, d.severity != "error", d.message))
