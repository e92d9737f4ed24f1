"""Money and counts as a person writes them, and one helper for money everywhere."""

from __future__ import annotations

import re

import pytest

from flujo.spec.figures import count, money
from tests.support.specs import ROOT


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (0, "$0"),
        (3e-05, "$0.00003"),
        (3.3e-05, "$0.000033"),
        (8.7e-05, "$0.000087"),
        (0.0031, "$0.0031"),
        (0.0999, "$0.10"),
        (0.1, "$0.10"),
        (12.5, "$12.50"),
        (99.999, "$100"),
        (1234.5, "$1,234"),
        (-0.2, "-$0.20"),
        (1e-10, "under $0.00000001"),
        (None, "unknown"),
    ],
)
def test_money_reads_plainly(usd: float | None, shown: str) -> None:
    assert money(usd) == shown


def test_counts_agree_with_their_number() -> None:
    assert (count(1, "run"), count(2, "run"), count(1200, "reply", "replies")) == (
        "1 run",
        "2 runs",
        "1,200 replies",
    )


PRODUCT = ("spec", "engine", "learn", "bot", "templates", "flujo")
AD_HOC_MONEY = re.compile(r"\$\{[^}]*:[,.]?\.?\d*[fge]\}|\$%")
AD_HOC_TEMPLATE_MONEY = re.compile(r"\$\{\{[^}]*\|\s*(format|round)\b")


def test_money_is_formatted_in_one_place() -> None:
    """No product module formats dollars itself (`f"${x:.4f}"`): `money` does."""
    offenders = []
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "spec" / "figures.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if AD_HOC_MONEY.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
        for path in (ROOT / folder).rglob("*.j2"):  # templates: the `money` filter
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if AD_HOC_TEMPLATE_MONEY.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
