"""Model prices (USD per 1M tokens), the cost of a call, and the table's version and age.

The built-in table is `prices.json` (package data: list prices, each with the page it was
read from and its date, and a separate price for cached input tokens). Models
are named `provider:model` or bare (bare names are OpenAI's: `gpt-4o` is `openai:gpt-4o`);
names are case-insensitive, and a dated snapshot such as `gpt-4o-mini-2024-07-18` falls
back to its base model unless it has its own entry. Overrides (from config) take
precedence over the built-in table. An unknown model has no price: `None`, never 0.
Every cost says which table computed it: `PriceTable.version` (date + hash of the prices).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from flujo.spec.prices_config import DEFAULT_MAX_AGE_DAYS, PricesConfig

if TYPE_CHECKING:
    from flujo.spec.model import Pipeline

DEFAULT_PROVIDER = "openai"
_KEYS = {"input", "output", "cached_input", "source", "as_of"}
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Price:
    """USD per 1M input, output and cached input tokens, with where and when it was read.

    `cached_input` is the price of prompt tokens the provider served from its cache; None
    means no discount is known, so cached tokens cost the input price.
    """

    input: float
    output: float
    cached_input: float | None = None
    source: str | None = field(default=None, compare=False)
    as_of: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            if value is None and name == "cached_input":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"price {name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"price {name} must be a finite number >= 0, not {value!r}")
        if self.as_of is not None:
            try:
                datetime.date.fromisoformat(self.as_of)
            except (TypeError, ValueError):
                raise ValueError(f"as_of must be a date YYYY-MM-DD, not {self.as_of!r}") from None

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """USD for a call; `cached_input_tokens` are part of `input_tokens` (as OpenAI counts)."""
        if input_tokens < 0 or output_tokens < 0 or cached_input_tokens < 0:
            raise ValueError("token counts cannot be negative")
        cached = min(cached_input_tokens, input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        usd = (input_tokens - cached) * self.input + cached * cached_price
        return round((usd + output_tokens * self.output) / 1_000_000, 12)

    def age_days(self, today: datetime.date) -> int | None:
        """Days since the price was read, or None when its date is not known."""
        if self.as_of is None:
            return None
        return (today - datetime.date.fromisoformat(self.as_of)).days


PriceLike = Price | Mapping[str, Any]


def model_key(model: str) -> str:
    """Canonical `provider:model` form of a model name (lower case)."""
    name = model.strip().lower()
    return name if ":" in name else f"{DEFAULT_PROVIDER}:{name}"


def to_price(value: PriceLike, *, model: str = "") -> Price:
    """A Price from a Price or a mapping `{"input", "output"}` (optionally `cached_input`,
    `source`, `as_of`)."""
    if isinstance(value, Price):
        return value
    where = f" for {model!r}" if model else ""
    if not isinstance(value, Mapping) or not {"input", "output"} <= set(value) <= _KEYS:
        raise ValueError(
            f"a price{where} needs the keys 'input' and 'output' (and may have "
            "'cached_input', 'source', 'as_of')"
        )
    as_of = value.get("as_of")
    try:
        return Price(
            value["input"],
            value["output"],
            value.get("cached_input"),
            value.get("source"),
            as_of.isoformat() if isinstance(as_of, datetime.date) else as_of,
        )
    except ValueError as exc:
        raise ValueError(f"invalid price{where}: {exc}") from None


@lru_cache(maxsize=1)
def _builtin() -> tuple[str, dict[str, Price]]:
    text = resources.files("flujo.engine").joinpath("prices.json").read_text(encoding="utf-8")
    data = json.loads(text)
    prices = {
        model_key(m): to_price({"as_of": data["as_of"], **p}, model=m)
        for m, p in data["models"].items()
    }
    return str(data["as_of"]), prices


def builtin_prices() -> dict[str, Price]:
    """The built-in table, keyed by `provider:model`."""
    return dict(_builtin()[1])


def prices_as_of() -> str:
    """Date of the built-in table: its newest price (ISO 8601); rows keep their own dates."""
    return _builtin()[0]


class PriceTable:
    """Built-in prices with overrides (keys `provider:model` or bare) taking precedence."""

    def __init__(
        self,
        overrides: Mapping[str, PriceLike] | None = None,
        *,
        base: Mapping[str, PriceLike] | None = None,
        max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    ) -> None:
        source = builtin_prices() if base is None else base
        self._base = {model_key(m): to_price(p, model=m) for m, p in source.items()}
        self._overrides = {model_key(m): to_price(p, model=m) for m, p in (overrides or {}).items()}
        self.max_age_days = max_age_days

    @property
    def overridden(self) -> bool:
        """Whether the repository's own prices replace some built-in ones."""
        return bool(self._overrides)

    @property
    def version(self) -> str:
        """`DATE.HASH`: the newest price date and a hash of every price, so two tables that
        compute different costs never share a version (`-repo` when overridden)."""
        entries = {**self._base, **self._overrides}
        canonical = json.dumps(
            {k: _canonical(p) for k, p in sorted(entries.items())}, sort_keys=True
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
        dates = [p.as_of for p in entries.values() if p.as_of]
        date = max(dates) if dates else "undated"
        return f"{date}.{digest}" + ("-repo" if self._overrides else "")

    def price(self, model: str) -> Price | None:
        """The price of a model, or None when it is unknown."""
        key = model_key(model)
        candidates = [key, _DATED.sub("", key)] if _DATED.search(key) else [key]
        for candidate in candidates:
            for table in (self._overrides, self._base):
                if candidate in table:
                    return table[candidate]
        return None

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> float | None:
        """USD for a call, or None when the model's price is unknown."""
        price = self.price(model)
        if price is None:
            return None
        return price.cost(input_tokens, output_tokens, cached_input_tokens)

    def stale(
        self, models: Iterable[str], today: datetime.date | None = None
    ) -> list[tuple[str, Price, int]]:
        """The models (of those given) whose price is older than `max_age_days`, with age."""
        today = today or datetime.date.today()
        found = []
        for model in sorted(set(models)):
            price = self.price(model)
            age = price.age_days(today) if price is not None else None
            if price is not None and age is not None and age > self.max_age_days:
                found.append((model, price, age))
        return found

    def stale_warning(
        self, models: Iterable[str], today: datetime.date | None = None
    ) -> str | None:
        """A `flujo: warning:` line naming stale prices and how to refresh them, or None."""
        stale = self.stale(models, today)
        if not stale:
            return None
        oldest = max(age for _, _, age in stale)
        named = ", ".join(f"{m} ({p.as_of}, {age} days)" for m, p, age in stale[:3])
        more = f" and {len(stale) - 3} more" if len(stale) > 3 else ""
        return (
            f"flujo: warning: prices older than {_days(self.max_age_days)} (oldest {oldest} "
            f"days) compute these costs: {named}{more}; table {self.version}. Refresh them: "
            "upgrade Flujo, or set today's prices with `as_of` under `prices: models:` in "
            ".github/flujo.yml (or raise `prices: max_age_days:`)"
        )


def _canonical(price: Price) -> list[Any]:
    """A price as hashed for the version: numbers as floats, so 1 and 1.0 are one price."""
    cached = None if price.cached_input is None else float(price.cached_input)
    return [float(price.input), float(price.output), cached, price.source, price.as_of]


def pipeline_models(pipeline: Pipeline) -> list[str]:
    """The models a pipeline's agents (and those of the specs it imports) call."""
    models: set[str] = set()
    pending, seen = [pipeline], set[int]()
    while pending:
        spec = pending.pop()
        if id(spec) in seen:
            continue
        seen.add(id(spec))
        models.update(agent.model for agent in spec.agents.values())
        pending.extend(spec.imported.values())
    return sorted(models)


def table_for(config: PricesConfig) -> PriceTable:
    """The built-in table with a repository's `prices:` applied."""
    return PriceTable(config.overrides(), max_age_days=config.max_age_days)


def price_for(model: str, *, overrides: Mapping[str, PriceLike] | None = None) -> Price | None:
    """The price of a model (overrides first), or None when it is unknown."""
    return _table(overrides).price(model)


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    cached_input_tokens: int = 0,
    overrides: Mapping[str, PriceLike] | None = None,
) -> float | None:
    """USD for a call, or None when the model's price is unknown (never 0 for unknown)."""
    return _table(overrides).cost_usd(model, input_tokens, output_tokens, cached_input_tokens)


def table_version(overrides: Mapping[str, PriceLike] | None = None) -> str:
    """The version of the table these overrides make (see `PriceTable.version`)."""
    return _table(overrides).version


def _table(overrides: Mapping[str, PriceLike] | None) -> PriceTable:
    return PriceTable(overrides) if overrides else _default_table()


@lru_cache(maxsize=1)
def _default_table() -> PriceTable:
    return PriceTable()


def _days(count: int) -> str:
    return f"{count} day" + ("" if count == 1 else "s")
