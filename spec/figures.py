"""How figures read to people: money and counts, written as a person would write them.

`money(0.000033)` is `$0.000033`, never `3.3e-05` or `$0.0000`; `count(3, "run")` is
`3 runs`. Every message, table and page that shows money uses `money` (a test checks
the product code for other ways). In `spec` because every layer shows figures; it
imports nothing.
"""

from __future__ import annotations

SMALLEST = 1e-8
"""Amounts below this (but not zero) read "under $0.00000001"."""


def money(usd: float | None, *, unknown: str = "unknown") -> str:
    """`$1,234`, `$12.50`, `$0.10`, `$0.0031`, `$0.000033`, `-$0.20`, `$0`: two
    significant digits below ten cents, in plain decimals; `unknown` for None."""
    if usd is None:
        return unknown
    sign = "-" if usd < 0 else ""
    amount = abs(usd)
    if amount == 0:
        return "$0"
    if amount < SMALLEST:
        return f"{sign}under $0.00000001"
    if amount < 0.1:
        digits = 1
        while amount * 10**digits < 10:  # two significant digits
            digits += 1
        amount = round(amount, digits)
        if amount < 0.1:
            return f"{sign}${amount:.{digits}f}".rstrip("0").rstrip(".")
    if round(amount, 2) < 100:
        return f"{sign}${amount:,.2f}"
    return f"{sign}${amount:,.0f}"


def count(n: int, singular: str, plural: str | None = None) -> str:
    """`1 run`, `3 runs`, `1,200 replies` (`plural` when adding an s is wrong)."""
    word = singular if n == 1 else (plural or singular + "s")
    return f"{n:,} {word}"
