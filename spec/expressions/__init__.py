"""Flujo's sandboxed expression language.

One language for test `assertions`, policy `when`/`assert`, `condition_expression`,
`exit_expression` and `map.over`. It is a subset of Python expressions, e.g.
`result.total_cost_usd < 0.01` or `'roses' in result.output.lower()`, and a security
boundary: the GitHub bot evaluates expressions written by strangers.

An expression is parsed with Python's `ast`, checked against an allow-list of node
types, then compiled once into nested closures (cached). What it may use:

* literals: text, integers, floats, `True`, `False`, `None`; list, tuple and dict displays;
* the names the caller binds for that use (`result`, `input`, `previous`, `output`,
  `steps`, `run`, `env`, `item`);
* `a.b` and `a['b']` on dicts (reads key `b`; a missing key is an error naming the path),
  `a.b` on objects whose class declares `__expr_fields__` (a frozenset of readable
  attribute names), `a[i]` and `a[i:j:k]` on lists, tuples and text;
* comparisons (chained too), `in`, `not in`, `is None`, `is not None`; `and`, `or`,
  `not` with Python's short-circuit semantics; `+ - * / // % **`, unary `-`/`+`;
  `x if c else y`;
* the functions `len min max sum abs round any all int float str bool contains` and the
  text methods `lower upper strip lstrip rstrip startswith endswith split count find`.

Nothing else: no names or attributes starting with `_` (except step names right after
`steps.`, never dunders), no imports, lambdas, comprehensions, `:=`, `*x`, f-strings,
`%`-formatting, keyword arguments, calls of anything but the functions and methods
above, and no non-ASCII characters outside string literals (identifiers are not NFKC
tricks). Every value an expression builds is bounded before it is allocated; see the
`MAX_*` limits. A problem raises `ExpressionError` with the 0-based character offset it
points at. Regular expressions are deliberately absent: `regex.compile` itself can take
seconds and gigabytes on a 20-character pattern, which no match timeout covers.

Where each part lives (each module imports only those listed before it):

* `errors`: ExpressionError, ExpressionProblem, StepReference, and `_Refused`;
* `budget`: the `MAX_*` limits and the per-evaluation budget that enforces them;
* `parsing`: parsing, the static checks (size, depth, ASCII, `_` names), step references;
* `builtins`: the operators, FUNCTIONS and STR_METHODS;
* `closures`: what evaluation runs: the compiled closures and how they read data;
* `compiler`: the allow-list of node kinds, name and call checks, constant folding;
* `explain`: why an expression has its value (loaded by the first failing assertion);
* `compiled`: `compile_expression`, `CompiledExpression`, `evaluate` and their cache.
"""

from __future__ import annotations

from flujo.spec.expressions.budget import (
    MAX_BUILT_BYTES,
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_INT_BITS,
    MAX_LENGTH,
    MAX_NODES,
    MAX_WORK,
)
from flujo.spec.expressions.builtins import FUNCTIONS, STR_METHODS
from flujo.spec.expressions.compiled import (
    EXPRESSION_NAMES,
    CompiledExpression,
    compile_expression,
    evaluate,
)
from flujo.spec.expressions.errors import ExpressionError, ExpressionProblem, StepReference
from flujo.spec.expressions.parsing import parse, step_references, template_step_references

__all__ = [
    "EXPRESSION_NAMES",
    "FUNCTIONS",
    "MAX_BUILT_BYTES",
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "MAX_INT_BITS",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_WORK",
    "STR_METHODS",
    "CompiledExpression",
    "ExpressionError",
    "ExpressionProblem",
    "StepReference",
    "compile_expression",
    "evaluate",
    "parse",
    "step_references",
    "template_step_references",
]
