"""Model prices (USD per 1M tokens) and the cost of a call.

The built-in table is `prices.json` (package data, list prices with their date). Models
are named `provider:model` or bare (bare names are OpenAI's: `gpt-4o` is `openai:gpt-4o`);
names are case-insensitive, and a dated snapshot such as `gpt-4o-mini-2024-07-18` falls
back to its base model unless it has its own entry. Overrides (from config) take
precedence over the built-in table. An unknown model has no price: `None`, never 0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

DEFAULT_PROVIDER = "openai"
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Price:
    """USD per 1M input tokens and per 1M output tokens."""

    input: float
    output: float

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"price {name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"price {name} must be a finite number >= 0, not {value!r}")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a call with these token counts."""
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts cannot be negative")
        return round((input_tokens * self.input + output_tokens * self.output) / 1_000_000, 12)


PriceLike = Price | Mapping[str, Any]


def model_key(model: str) -> str:
    """Canonical `provider:model` form of a model name (lower case)."""
    name = model.strip().lower()
    return name if ":" in name else f"{DEFAULT_PROVIDER}:{name}"


def to_price(value: PriceLike, *, model: str = "") -> Price:
    """A Price from a Price or a mapping `{"input": ..., "output": ...}`."""
    if isinstance(value, Price):
        return value
    where = f" for {model!r}" if model else ""
    if not isinstance(value, Mapping) or set(value) != {"input", "output"}:
        raise ValueError(f"a price{where} needs exactly the keys 'input' and 'output'")
    try:
        return Price(value["input"], value["output"])
    except ValueError as exc:
        raise ValueError(f"invalid price{where}: {exc}") from None


@lru_cache(maxsize=1)
def _builtin() -> tuple[str, dict[str, Price]]:
    text = resources.files("flujo.engine").joinpath("prices.json").read_text(encoding="utf-8")
    data = json.loads(text)
    prices = {model_key(m): to_price(p, model=m) for m, p in data["models"].items()}
    return str(data["as_of"]), prices


def builtin_prices() -> dict[str, Price]:
    """The built-in table, keyed by `provider:model`."""
    return dict(_builtin()[1])


def prices_as_of() -> str:
    """Date of the built-in list prices (ISO 8601)."""
    return _builtin()[0]


class PriceTable:
    """Built-in prices with overrides (keys `provider:model` or bare) taking precedence."""

    def __init__(
        self,
        overrides: Mapping[str, PriceLike] | None = None,
        *,
        base: Mapping[str, PriceLike] | None = None,
    ) -> None:
        source = builtin_prices() if base is None else base
        self._base = {model_key(m): to_price(p, model=m) for m, p in source.items()}
        self._overrides = {model_key(m): to_price(p, model=m) for m, p in (overrides or {}).items()}

    def price(self, model: str) -> Price | None:
        """The price of a model, or None when it is unknown."""
        key = model_key(model)
        candidates = [key, _DATED.sub("", key)] if _DATED.search(key) else [key]
        for candidate in candidates:
            for table in (self._overrides, self._base):
                if candidate in table:
                    return table[candidate]
        return None

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """USD for a call, or None when the model's price is unknown."""
        price = self.price(model)
        return None if price is None else price.cost(input_tokens, output_tokens)


def price_for(model: str, *, overrides: Mapping[str, PriceLike] | None = None) -> Price | None:
    """The price of a model (overrides first), or None when it is unknown."""
    return _table(overrides).price(model)


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    overrides: Mapping[str, PriceLike] | None = None,
) -> float | None:
    """USD for a call, or None when the model's price is unknown (never 0 for unknown)."""
    return _table(overrides).cost_usd(model, input_tokens, output_tokens)


def _table(overrides: Mapping[str, PriceLike] | None) -> PriceTable:
    return PriceTable(overrides) if overrides else _default_table()


@lru_cache(maxsize=1)
def _default_table() -> PriceTable:
    return PriceTable()
