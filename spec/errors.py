"""Errors: `FlujoError`, the base of every error Flujo reports, and diagnostics (one
problem in a spec, with the place it points to)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Literal, TextIO

Severity = Literal["error", "warning"]

# The exit codes of the `flujo` command (see `flujo/cli/__init__.py`).
EXIT_OK = 0
EXIT_INVALID = 1
"""The input is invalid (a spec, patch or config has errors)."""
EXIT_USAGE = 2
"""Usage error: a bad option, a missing or unreadable file, a store or server out of reach."""
EXIT_INTERNAL = 3
"""A bug in Flujo."""
EXIT_PARTIAL = 4
"""Done in part, nothing failed: `flujo migrate` kept steps the current format cannot
say in their 0.x form, or a run paused at a question nobody could answer (resume it with
`flujo runs resume`). A result, never an error's code."""
EXIT_NO_TESTS = 5
"""`flujo test` collected no test (as pytest): a result, never an error's code."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C)."""
EXIT_CODES = frozenset({EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED})
"""The codes an error may exit with (0 is success, never an error's)."""


class FlujoError(Exception):
    """The base of every error Flujo raises for a user to read (like click's
    `ClickException`): the command line prints `show()` and exits with `exit_code`, and
    never shows a traceback for it.

    Subclasses set `exit_code` to one of `EXIT_CODES` and may word their message in
    `format_message()`; by default it is the exception's text after `flujo: `.
    """

    exit_code: ClassVar[int] = EXIT_INVALID

    def format_message(self) -> str:
        """What a user reads (one or more lines, no trailing newline)."""
        return f"flujo: {self}"

    def show(self, file: TextIO | None = None) -> None:
        """Print the message to `file` (standard error by default)."""
        print(self.format_message(), file=file if file is not None else sys.stderr, flush=True)


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
class SpecError(FlujoError):
    """Raised when a spec cannot be loaded; carries every problem found.

    `show()` prints each diagnostic on its own line (`file:line:col: severity: message`).
    """

    exit_code: ClassVar[int] = EXIT_INVALID
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

    def format_message(self) -> str:
        return str(self)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Order by file position, errors before warnings at the same place; drop exact repeats."""
    unique = dict.fromkeys(diagnostics)
    return sorted(unique, key=lambda d: (d.file, d.line, d.col, d.severity != "error", d.message))
