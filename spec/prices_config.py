"""The `prices:` section of `.github/flujo.yml`: a repository's own model prices.

Data only (no code runs): each entry replaces the built-in price of one model, and
`max_age_days` sets when a price is old enough to draw a warning. The engine turns it into
a `PriceTable` (`flujo.engine.pricing`), whose version every cost shown carries.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_AGE_DAYS = 180
"""Also `flujo.engine.pricing.DEFAULT_MAX_AGE_DAYS` (the engine may not import config)."""


class ModelPrice(BaseModel):
    """USD per 1M tokens for one model, and where and when the price was read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, allow_inf_nan=False, description="USD per 1M input tokens.")
    output: float = Field(ge=0, allow_inf_nan=False, description="USD per 1M output tokens.")
    cached_input: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="USD per 1M input tokens served from the provider's prompt cache "
        "(absent: the input price).",
    )
    source: str | None = Field(default=None, description="Where the price was read (a URL).")
    as_of: datetime.date | None = Field(
        default=None,
        description="When the price was read (YYYY-MM-DD); older than "
        "`max_age_days` draws a warning.",
    )


class PricesConfig(BaseModel):
    """The repository's model prices, replacing the built-in table's for these models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Prices by model (`provider:model`, or bare for OpenAI's), e.g. "
        "`openai:gpt-4o-mini: {input: 0.15, cached_input: 0.075, output: 0.6, as_of: "
        "2025-08-15}`.",
    )
    max_age_days: int = Field(
        default=DEFAULT_MAX_AGE_DAYS,
        ge=1,
        description="A price older than this many days draws a warning beside the costs "
        "it computes.",
    )

    def overrides(self) -> dict[str, dict[str, Any]]:
        """The entries as the mappings `flujo.engine.pricing.to_price` reads."""
        return {
            name: {k: v for k, v in price.model_dump().items() if v is not None}
            for name, price in self.models.items()
        }


def repository_prices(spec_path: Path) -> PricesConfig:
    """The `prices:` of the repository a spec file lives in (defaults without a config).

    Raises SpecError (at the line in `.github/flujo.yml`) when the config is invalid.
    """
    from flujo.spec.config import find_config, load_config

    return load_config(find_config(spec_path)).prices
