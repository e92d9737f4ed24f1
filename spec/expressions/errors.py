"""What goes wrong in an expression: `ExpressionError` with the offset it points at, the
records `ExpressionProblem` and `StepReference`, and `_Refused`, which an operation raises
for the closure running it to turn into an ExpressionError. Plain classes and two frozen
dataclasses, whose generated methods are most of this package's own import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from flujo.spec.errors import EXIT_INVALID, FlujoError

ErrorKind: TypeAlias = Literal["syntax", "refused", "limit", "runtime"]


class ExpressionError(FlujoError, ValueError):
    """An expression that cannot be compiled or evaluated (exit code 1: invalid input).

    `kind` is `syntax` (does not parse), `refused` (uses something the language does not
    allow), `limit` (too large, or would build too much) or `runtime` (a missing key, a
    type mismatch...). `offset` is the 0-based character in `source` it points at.
    """

    exit_code = EXIT_INVALID

    def __init__(
        self, message: str, source: str = "", offset: int = 0, kind: ErrorKind = "runtime"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.offset = offset
        self.kind: ErrorKind = kind

    def caret(self) -> str:
        """The source line the error points at, with a `^` under the offset."""
        start = self.source.rfind("\n", 0, self.offset) + 1
        end = self.source.find("\n", self.offset)
        line = self.source[start : end if end >= 0 else len(self.source)]
        return f"{line}\n{' ' * (self.offset - start)}^"


@dataclass(frozen=True, slots=True)
class ExpressionProblem:
    """A problem in an expression; `offset` is the 0-based character it points at."""

    message: str
    offset: int = 0


@dataclass(frozen=True, slots=True)
class StepReference:
    """A step named by an expression or template, and where the name starts."""

    name: str
    offset: int


class _Refused(Exception):
    """Raised inside an operation; the node running it turns it into ExpressionError.

    Not a FlujoError: internal control flow that never leaves this package.
    """

    def __init__(self, message: str, kind: ErrorKind = "runtime") -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind


_CAUGHT = (_Refused, TypeError, ValueError, ArithmeticError, LookupError)
"""What an operation may raise that the closure running it reports as an ExpressionError."""


def _runtime(exc: BaseException) -> tuple[str, ErrorKind]:
    if isinstance(exc, _Refused):
        return exc.message, exc.kind
    if isinstance(exc, OverflowError):
        return f"number too large: {exc}", "limit"
    return str(exc) or type(exc).__name__, "runtime"
