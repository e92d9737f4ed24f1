"""Compiling a checked syntax tree into closures: only the node kinds in `_DISPATCH`
compile (anything else is refused with a reason), names, calls and operators are checked,
and parts without names are evaluated once (constant folding), so that a hostile constant
such as `'a' * 10**9` is refused before it ever runs. Runs once per distinct expression
(the result is cached), and folding is bounded like one evaluation.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from flujo.spec.expressions.budget import (
    MAX_BUILT_BYTES,
    MAX_INT_BITS,
    _Budget,
    _type_name,
    _weight,
)
from flujo.spec.expressions.builtins import (
    _BINARY,
    _OPERATOR_SYMBOLS,
    _PLAIN_COMPARE,
    FUNCTIONS,
    LITERAL_NAMES,
    STR_METHODS,
    _compare_op,
    _Function,
    _number,
)
from flujo.spec.expressions.closures import (
    _all_of,
    _any_of,
    _call,
    _chain,
    _compare,
    _compare_constant,
    _Fail,
    _Fn,
    _item,
    _Link,
    _membership,
    _path_reader,
    _reader,
    _slice,
)
from flujo.spec.expressions.errors import _CAUGHT, ErrorKind, ExpressionError, _Refused, _runtime
from flujo.spec.expressions.parsing import (
    _check_ascii,
    _check_private,
    _check_size,
    _is_dunder,
    _is_steps,
    _parse,
    _private,
    _Text,
)

FOLD_LIMIT = 4096
"""Largest constant (estimated bytes) folded at compile time and kept in the cache."""
FOLD_TOTAL = 16_384
"""Most constant bytes one compiled expression keeps."""


_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda expressions are",
    ast.ListComp: "comprehensions are",
    ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "generator expressions are",
    ast.NamedExpr: "assignment expressions (:=) are",
    ast.Starred: "starred expressions (*x) are",
    ast.JoinedStr: "f-strings are",
    ast.FormattedValue: "f-strings are",
    ast.Set: "set literals are",
    ast.Await: "'await' is",
    ast.Yield: "'yield' is",
    ast.YieldFrom: "'yield' is",
}


def _operands(node: ast.AST) -> list[ast.AST]:
    """The sub-expressions a node's closure evaluates."""
    if isinstance(node, ast.Call):
        receiver = [node.func.value] if isinstance(node.func, ast.Attribute) else []
        return [*receiver, *node.args]
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        bounds = (node.slice.lower, node.slice.upper, node.slice.step)
        return [node.value, *(bound for bound in bounds if bound is not None)]
    return [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)]


def _constant_key(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (str, int)


def _foldable(value: Any) -> bool:
    """Immutable and small: safe to share between evaluations and keep in the cache."""
    if type(value) is tuple:
        return _weight(value, FOLD_LIMIT) <= FOLD_LIMIT and all(_foldable(v) for v in value)
    if value is None or type(value) in (int, float, bool):
        return True
    return type(value) is str and len(value) <= FOLD_LIMIT


class _Compiler:
    """Turns a checked syntax tree into closures `fn(bindings, budget) -> value`.

    Sub-expressions without names are evaluated once here (constant folding), so a
    hostile constant such as `'a' * 10**9` is refused at compile time.
    """

    def __init__(self, text: _Text, names: frozenset[str]) -> None:
        self.text = text
        self.names = names
        self.fns: dict[ast.AST, _Fn] = {}
        self.constants: dict[ast.AST, Any] = {}  # folded: small and immutable
        self.small: set[ast.AST] = set()  # without names, small, but mutable: not folded
        self.spent = 0  # what folding has built and scanned so far
        self.parts = 0  # syntax-tree nodes, for the cache's accounting
        self.kept = 0  # estimated bytes of the folded constants

    def compile(self, node: ast.AST) -> _Fn:
        method = _DISPATCH.get(type(node))
        if method is None:
            what = _CONSTRUCTS.get(type(node), f"{type(node).__name__} expressions are")
            raise self.refuse(node, f"{what} not allowed")
        fn = method(self, node)
        if not isinstance(node, ast.Constant | ast.Name) and all(
            operand in self.constants or operand in self.small for operand in _operands(node)
        ):
            fn = self.fold(node, fn)
        self.fns[node] = fn
        return fn

    def fold(self, node: ast.AST, fn: _Fn) -> _Fn:
        """Evaluate a part without names now: refuse it if it breaks a limit, and turn
        it into a constant if its value is small and immutable."""
        if self.spent > MAX_BUILT_BYTES:  # folding is bounded like one evaluation
            return fn
        budget = [0, 0]
        try:
            value = fn({}, budget)
        except ExpressionError as exc:
            if exc.kind in ("limit", "refused"):
                raise
            return fn  # e.g. 1/0 behind a guard: an error only if it runs
        except (*_CAUGHT, RecursionError, MemoryError):
            return fn
        finally:
            self.spent += budget[0] + budget[1]
        size = _weight(value, FOLD_LIMIT)
        if _foldable(value) and self.kept + size <= FOLD_TOTAL:
            self.kept += size
            self.constants[node] = value
            return lambda env, budget: value
        if size <= FOLD_LIMIT:
            self.small.add(node)
        return fn

    def refuse(
        self, node: ast.AST, message: str, kind: ErrorKind = "refused", offset: int = -1
    ) -> ExpressionError:
        where = self.text.start(node) if offset < 0 else offset
        return ExpressionError(message, self.text.source, where, kind)

    def failer(self, offset: int) -> _Fail:
        """Turns an exception raised by an operation into an ExpressionError at `offset`."""
        source = self.text.source

        def fail(exc: BaseException) -> ExpressionError:
            message, kind = _runtime(exc)
            return ExpressionError(message, source, offset, kind)

        return fail

    # -- leaves -----------------------------------------------------------------------

    def constant(self, node: ast.Constant) -> _Fn:
        value = node.value
        if value is not None and type(value) not in (str, int, float, bool):
            raise self.refuse(node, f"{type(value).__name__} literals are not allowed")
        if type(value) is int and value.bit_length() > MAX_INT_BITS:
            raise self.refuse(node, f"integer literal over {MAX_INT_BITS} bits", "limit")
        self.constants[node] = value
        return lambda env, budget: value

    def check_name(self, node: ast.Name) -> str:
        ident = node.id
        if ident in FUNCTIONS:
            raise self.refuse(node, f"'{ident}' is a function; call it, e.g. {ident}(…)")
        if ident not in self.names:
            raise self.refuse(node, _unknown_name(ident, self.names))
        return ident

    def name(self, node: ast.Name) -> _Fn:
        if node.id in LITERAL_NAMES and node.id not in self.names:  # flujo 0.x's dialect
            value = LITERAL_NAMES[node.id]
            self.constants[node] = value
            return lambda env, budget: value
        return _path_reader(self.check_name(node), self.failer(self.text.start(node)), ())

    # -- data access --------------------------------------------------------------------

    def attribute(self, node: ast.Attribute) -> _Fn:
        return self.path(node)

    def path(self, node: ast.expr) -> _Fn:
        """`a.b[0].c`: one closure walking constant keys from a name or an expression."""
        links: list[_Link] = []
        while isinstance(node, ast.Attribute) or (
            isinstance(node, ast.Subscript) and _constant_key(node.slice)
        ):
            links.append(self.link(node))
            node = node.value
        links.reverse()
        if isinstance(node, ast.Name):
            return _path_reader(self.check_name(node), self.failer(self.text.start(node)), links)
        return _reader(self.compile(node), tuple(links))

    def link(self, node: ast.Attribute | ast.Subscript) -> _Link:
        path = self.text.segment(node.value)
        if isinstance(node, ast.Subscript):
            key: str | int = node.slice.value  # type: ignore[attr-defined]
            return key, path, self.failer(self.text.start(node.slice)), "item"
        attr = node.attr
        offset = self.text.end(node) - len(attr)
        step = _is_steps(node.value)
        if _is_dunder(attr) or (attr.startswith("_") and not step):
            raise self.refuse(node, _private(attr), offset=offset)
        return attr, path, self.failer(offset), "step" if step else "field"

    def subscript(self, node: ast.Subscript) -> _Fn:
        if _constant_key(node.slice):
            return self.path(node)
        base = self.compile(node.value)
        path = self.text.segment(node.value)
        if isinstance(node.slice, ast.Slice):
            return self.slice(node.slice, base, path)
        key_fn = self.compile(node.slice)
        fail = self.failer(self.text.start(node.slice))

        def index(env: Mapping[str, Any], budget: _Budget) -> Any:
            obj = base(env, budget)
            key = key_fn(env, budget)
            try:
                return _item(obj, key, path)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return index

    def slice(self, node: ast.Slice, base: _Fn, path: str) -> _Fn:
        lower, upper, step = (self.optional(part) for part in (node.lower, node.upper, node.step))
        fail = self.failer(self.text.start(node))

        def cut(env: Mapping[str, Any], budget: _Budget) -> Any:
            obj = base(env, budget)
            bounds = (lower(env, budget), upper(env, budget), step(env, budget))
            try:
                return _slice(budget, obj, bounds, path)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return cut

    def optional(self, node: ast.expr | None) -> _Fn:
        return (lambda env, budget: None) if node is None else self.compile(node)

    # -- calls ----------------------------------------------------------------------------

    def call(self, node: ast.Call) -> _Fn:
        if node.keywords:
            raise self.refuse(node.keywords[0], "keyword arguments are not allowed")
        func = node.func
        if isinstance(func, ast.Name) and func.id in FUNCTIONS:
            impl, low, high = FUNCTIONS[func.id]
            self.arity(node, func.id, low, high)
            args = [self.compile(arg) for arg in node.args]
            return _call(impl, args, self.failer(self.text.start(node)))
        if isinstance(func, ast.Attribute) and func.attr == "get":
            self.arity(node, "get", 1, 2)
            return self.mapping_get(node, func)
        if isinstance(func, ast.Attribute) and func.attr in STR_METHODS:
            impl, low, high = STR_METHODS[func.attr]
            self.arity(node, func.attr, low, high)
            return self.method(node, func, impl)
        raise self.refuse(node, _uncallable(func), offset=self.callee_offset(func))

    def callee_offset(self, func: ast.expr) -> int:
        if isinstance(func, ast.Attribute):
            return self.text.end(func) - len(func.attr)
        return self.text.start(func)

    def arity(self, node: ast.Call, name: str, low: int, high: int) -> None:
        count = len(node.args)
        if not low <= count <= high:
            expected = f"{low}" if low == high else f"{low} to {high}"
            raise self.refuse(node, f"{name}() takes {expected} arguments, got {count}")

    def mapping_get(self, node: ast.Call, func: ast.Attribute) -> _Fn:
        """`m.get(key[, default])` on a mapping (flujo 0.x's dialect): no error when the
        key is missing. Only reads: the bounds of every other read apply."""
        receiver = self.compile(func.value)
        key_fn = self.compile(node.args[0])
        default_fn = self.compile(node.args[1]) if len(node.args) > 1 else None
        path = self.text.segment(func.value)
        fail = self.failer(self.text.end(func) - 3)

        def get(env: Mapping[str, Any], budget: _Budget) -> Any:
            mapping = receiver(env, budget)
            key = key_fn(env, budget)
            if not isinstance(mapping, dict):  # data only: never an object's fields
                raise fail(_Refused(f"get() works on mappings; {path} is {_type_name(mapping)}"))
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise fail(_Refused(f"get() key must be text or a number, got {_type_name(key)}"))
            if key in mapping:
                return mapping[key]
            return default_fn(env, budget) if default_fn is not None else None

        return get

    def method(self, node: ast.Call, func: ast.Attribute, impl: _Function) -> _Fn:
        receiver = self.compile(func.value)
        args = [self.compile(arg) for arg in node.args]
        name, path = func.attr, self.text.segment(func.value)
        fail = self.failer(self.text.end(func) - len(name))

        def text_of(value: Any) -> str:
            if isinstance(value, str):
                return value
            raise _Refused(f"{name}() works on text; {path} is {_type_name(value)}")

        if not args:

            def call_bare(env: Mapping[str, Any], budget: _Budget) -> Any:
                value = receiver(env, budget)
                try:
                    return impl(budget, text_of(value))
                except _CAUGHT as exc:
                    raise fail(exc) from None

            return call_bare

        if len(args) == 1:
            (only,) = args

            def call_one(env: Mapping[str, Any], budget: _Budget) -> Any:
                value = receiver(env, budget)
                argument = only(env, budget)
                try:
                    return impl(budget, text_of(value), argument)
                except _CAUGHT as exc:
                    raise fail(exc) from None

            return call_one

        def call(env: Mapping[str, Any], budget: _Budget) -> Any:
            value = receiver(env, budget)
            values = [arg(env, budget) for arg in args]
            try:
                return impl(budget, text_of(value), *values)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return call

    # -- operators ------------------------------------------------------------------------

    def compare(self, node: ast.Compare) -> _Fn:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not (
                isinstance(right, ast.Constant) and right.value is None
            ):
                raise self.refuse(node, "'is' only compares with None; use == instead")
        left = self.compile(node.left)
        rights = [self.compile(right) for right in node.comparators]
        fail = self.failer(self.text.start(node))
        if len(node.ops) == 1:
            return self.single_compare(node.ops[0], left, node.comparators[0], rights[0], fail)
        links = [(_compare_op(op), right) for op, right in zip(node.ops, rights, strict=True)]
        return _chain(left, links, fail)

    def single_compare(
        self, op: ast.cmpop, left: _Fn, right_node: ast.expr, right: _Fn, fail: _Fail
    ) -> _Fn:
        if isinstance(op, ast.In | ast.NotIn):
            return _membership(left, right, isinstance(op, ast.NotIn), fail)
        plain = _PLAIN_COMPARE[type(op)]
        if right_node in self.constants:
            return _compare_constant(left, self.constants[right_node], plain, fail)
        return _compare(left, right, plain, fail)

    def boolop(self, node: ast.BoolOp) -> _Fn:
        operands = [self.compile(value) for value in node.values]
        return _any_of(operands) if isinstance(node.op, ast.Or) else _all_of(operands)

    def unaryop(self, node: ast.UnaryOp) -> _Fn:
        if type(node.op) in _OPERATOR_SYMBOLS:
            symbol = _OPERATOR_SYMBOLS[type(node.op)]
            raise self.refuse(node, f"operator '{symbol}' is not allowed")
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env, budget: not operand(env, budget)
        sign = operator.neg if isinstance(node.op, ast.USub) else operator.pos
        fail = self.failer(self.text.start(node))

        def signed(env: Mapping[str, Any], budget: _Budget) -> Any:
            value = operand(env, budget)
            try:
                return sign(_number(value, "unary - and +"))
            except _CAUGHT as exc:
                raise fail(exc) from None

        return signed

    def binop(self, node: ast.BinOp) -> _Fn:
        impl = _BINARY.get(type(node.op))
        if impl is None:
            symbol = _OPERATOR_SYMBOLS[type(node.op)]
            raise self.refuse(node, f"operator '{symbol}' is not allowed")
        formats = isinstance(node.left, ast.JoinedStr) or (
            isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
        )
        if isinstance(node.op, ast.Mod) and formats:
            raise self.refuse(node, "'%' formatting is not allowed; % works on numbers")
        left, right = self.compile(node.left), self.compile(node.right)
        fail = self.failer(self.text.start(node))

        def arithmetic(env: Mapping[str, Any], budget: _Budget) -> Any:
            a = left(env, budget)
            b = right(env, budget)
            try:
                return impl(budget, a, b)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return arithmetic

    def ifexp(self, node: ast.IfExp) -> _Fn:
        test, body, orelse = (self.compile(n) for n in (node.test, node.body, node.orelse))
        return lambda env, budget: body(env, budget) if test(env, budget) else orelse(env, budget)

    # -- displays -------------------------------------------------------------------------

    def list_display(self, node: ast.List) -> _Fn:
        items = [self.compile(element) for element in node.elts]
        return lambda env, budget: [item(env, budget) for item in items]

    def tuple_display(self, node: ast.Tuple) -> _Fn:
        items = [self.compile(element) for element in node.elts]
        return lambda env, budget: tuple([item(env, budget) for item in items])

    def dict_display(self, node: ast.Dict) -> _Fn:
        pairs: list[tuple[_Fn, _Fn]] = []
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.refuse(value, "'**' unpacking is not allowed")
            pairs.append((self.compile(key), self.compile(value)))
        fail = self.failer(self.text.start(node))

        def build(env: Mapping[str, Any], budget: _Budget) -> Any:
            entries = [(key(env, budget), value(env, budget)) for key, value in pairs]
            try:
                return dict(entries)
            except TypeError as exc:
                raise fail(exc) from None

        return build


_DISPATCH: dict[type[ast.AST], Callable[[_Compiler, Any], _Fn]] = {
    ast.Constant: _Compiler.constant,
    ast.Name: _Compiler.name,
    ast.Attribute: _Compiler.attribute,
    ast.Subscript: _Compiler.subscript,
    ast.Call: _Compiler.call,
    ast.Compare: _Compiler.compare,
    ast.BoolOp: _Compiler.boolop,
    ast.UnaryOp: _Compiler.unaryop,
    ast.BinOp: _Compiler.binop,
    ast.IfExp: _Compiler.ifexp,
    ast.List: _Compiler.list_display,
    ast.Tuple: _Compiler.tuple_display,
    ast.Dict: _Compiler.dict_display,
}


def _unknown_name(ident: str, names: frozenset[str]) -> str:
    if ident.startswith("_"):
        return _private(ident)
    import difflib

    close = difflib.get_close_matches(ident, sorted(names), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    usable = ", ".join(sorted(names)) or "none"
    return f"unknown name '{ident}'{hint} (names here: {usable})"


def _uncallable(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"method '{func.attr}' is not allowed; text methods: {', '.join(STR_METHODS)}"
    if isinstance(func, ast.Name):
        return f"function '{func.id}' is not allowed; functions: {', '.join(FUNCTIONS)}"
    return "only the allowed functions and text methods can be called"


def _compile(source: str, names: frozenset[str]) -> tuple[ast.Expression, _Text, _Compiler]:
    """Parse, check and compile; the compiler keeps every part's closure."""
    text = _Text(source)
    tree = _parse(source)
    parts = _check_size(tree, text)
    _check_ascii(tree, text)
    _check_private(tree, text)
    compiler = _Compiler(text, names)
    compiler.parts = parts
    compiler.compile(tree.body)
    return tree, text, compiler
