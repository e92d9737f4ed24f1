"""The `flujo: warning:` about old prices, shown beside the costs they computed.

A price older than the repository's `prices: max_age_days` (180 by default) may no longer
be what the provider bills, so `flujo run` and `flujo test` say so on stderr, naming the
models, their ages, the table version and how to refresh or override the prices.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from flujo.spec.model import Pipeline


def warn_if_stale(pipeline: Pipeline, spec: Path | None) -> None:
    """Print the old-prices warning on stderr when the pipeline's models have old prices."""
    from flujo.engine.pricing import pipeline_models, table_for
    from flujo.spec.prices_config import PricesConfig, repository_prices

    table = table_for(repository_prices(spec) if spec is not None else PricesConfig())
    warning = table.stale_warning(pipeline_models(pipeline))
    if warning is not None:
        click.echo(warning, err=True)
