"""Model prices and call costs."""

from __future__ import annotations

import datetime
import json
import re
from importlib import resources

import pytest

from flujo.engine.pricing import (
    Price,
    PriceLike,
    PriceTable,
    builtin_prices,
    cost_usd,
    price_for,
    prices_as_of,
    table_for,
    table_version,
)
from flujo.spec.prices_config import PricesConfig

COMMON = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini"]


def test_prices_json_is_package_data_with_a_date() -> None:
    data = json.loads(resources.files("flujo.engine").joinpath("prices.json").read_text())
    assert data["unit"] == "USD per 1M tokens"
    assert datetime.date.fromisoformat(prices_as_of()) >= datetime.date(2025, 1, 1)
    assert {f"openai:{m}" for m in [*COMMON, "gpt-3.5-turbo"]} <= set(builtin_prices())


@pytest.mark.parametrize(
    ("model", "input_tokens", "output_tokens", "expected"),
    [
        ("openai:gpt-4o-mini", 1_000_000, 1_000_000, 0.75),
        ("gpt-4o-mini", 1_000_000, 0, 0.15),
        ("openai:gpt-4o", 1_000, 500, 0.0075),
        ("gpt-4.1", 2_000_000, 1_000_000, 12.0),
        ("openai:gpt-4.1-nano", 0, 0, 0.0),
        ("OpenAI:GPT-4.1-Mini", 1_000_000, 1_000_000, 2.0),
        ("o3-mini", 1_000, 1_000, 0.0055),
        ("gpt-3.5-turbo", 1_000_000, 1_000_000, 2.0),
    ],
)
def test_cost_of_known_models(
    model: str, input_tokens: int, output_tokens: int, expected: float
) -> None:
    assert cost_usd(model, input_tokens, output_tokens) == pytest.approx(expected)


@pytest.mark.parametrize(
    "model", ["openai:gpt-99", "llama3", "local:gpt-4o", "azure:gpt-4o-mini", "gpt-4o-mini-tts"]
)
def test_unknown_models_have_no_cost_not_zero(model: str) -> None:
    assert cost_usd(model, 1_000, 1_000) is None
    assert price_for(model) is None


def test_dated_snapshots_use_their_base_price_unless_listed() -> None:
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert price_for("openai:gpt-4o-2024-08-06") == Price(2.5, 10.0, 1.25)
    assert price_for("gpt-4o-2024-05-13") == Price(5.0, 15.0)


def test_overrides_take_precedence() -> None:
    overrides: dict[str, PriceLike] = {
        "gpt-4o": {"input": 1.0, "output": 2.0},
        "openai:gpt-4o-mini": Price(0.0, 0.0),
        "local:llama3": {"input": 0.01, "output": 0.02},
    }
    assert cost_usd("openai:gpt-4o", 1_000_000, 1_000_000, overrides=overrides) == 3.0
    assert cost_usd("gpt-4o-2024-08-06", 1_000_000, 0, overrides=overrides) == 1.0
    assert cost_usd("gpt-4o-mini", 5_000, 5_000, overrides=overrides) == 0.0
    assert cost_usd("local:llama3", 1_000_000, 1_000_000, overrides=overrides) == 0.03
    assert cost_usd("llama3", 1_000_000, 1_000_000, overrides=overrides) is None
    assert cost_usd("gpt-4.1", 1_000_000, 0, overrides=overrides) == 2.0  # built-in still used
    assert cost_usd("openai:gpt-4o", 1_000_000, 1_000_000) == 12.5  # no global state


def test_a_table_can_replace_the_builtin_prices() -> None:
    table = PriceTable({"b": {"input": 2, "output": 2}}, base={"a": Price(1, 1)})
    assert table.cost_usd("a", 1_000_000, 0) == 1.0
    assert table.cost_usd("openai:b", 0, 1_000_000) == 2.0
    assert table.price("gpt-4o") is None


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ({"input": 1.0}, "needs the keys"),
        ({"input": 1.0, "output": 2.0, "cached": 0.5}, "needs the keys"),
        ({"input": -1.0, "output": 2.0}, ">= 0"),
        ({"input": "cheap", "output": 2.0}, "must be a number"),
        ({"input": float("nan"), "output": 2.0}, "finite"),
        ({"input": True, "output": 2.0}, "must be a number"),
    ],
)
def test_invalid_overrides_are_rejected(price: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        PriceTable({"my-model": price})
    assert "'my-model'" in str(caught.value)


def test_negative_token_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        cost_usd("gpt-4o", -1, 0)


def test_costs_are_free_of_float_noise() -> None:
    assert cost_usd("gpt-4o-mini", 1_000, 0) == 0.00015
    assert cost_usd("gpt-4.1-nano", 3, 7) == 0.0000031


def test_every_builtin_price_says_where_and_when_it_was_read() -> None:
    for model, price in builtin_prices().items():
        assert price.source and price.source.startswith("https://"), model
        assert price.as_of is not None and datetime.date.fromisoformat(price.as_of), model


def test_cached_input_tokens_cost_their_own_price() -> None:
    # gpt-4o: 2.5 per 1M input, 1.25 per 1M cached input, 10 per 1M output
    assert (
        cost_usd("gpt-4o", 1_000_000, 0, cached_input_tokens=400_000) == 2.0
    )  # 0.6M x 2.5 + 0.4M x 1.25
    assert cost_usd("gpt-4o", 1_000_000, 0) == 2.5
    # no cached price known: cached tokens cost the input price (never cheaper by guess)
    assert cost_usd("gpt-4", 1_000_000, 0, cached_input_tokens=1_000_000) == 30.0
    with pytest.raises(ValueError, match="negative"):
        cost_usd("gpt-4o", 10, 0, cached_input_tokens=-1)


def test_the_version_names_the_date_and_changes_with_any_price() -> None:
    builtin = PriceTable()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.[0-9a-f]{8}", builtin.version)
    assert builtin.version.startswith(prices_as_of())
    assert table_version() == builtin.version == PriceTable().version
    cheaper = PriceTable({"gpt-4o": {"input": 2.4, "output": 10.0, "as_of": "2026-11-30"}})
    assert cheaper.version.startswith("2026-11-30.") and cheaper.version.endswith("-repo")
    assert cheaper.version != PriceTable({"gpt-4o": {"input": 2.5, "output": 10.0}}).version


def test_old_prices_draw_a_warning_with_their_age_and_the_way_to_refresh() -> None:
    read = builtin_prices()["openai:gpt-4o-mini"].as_of
    assert read is not None
    today = datetime.date.fromisoformat(read) + datetime.timedelta(days=200)
    table = PriceTable(max_age_days=180)
    warning = table.stale_warning(["gpt-4o-mini", "llama3"], today)
    assert warning is not None and warning.startswith("flujo: warning:")
    assert "gpt-4o-mini" in warning and "200 days" in warning and table.version in warning
    assert "prices:" in warning and ".github/flujo.yml" in warning
    assert table.stale_warning(["gpt-4o-mini"], today - datetime.timedelta(days=30)) is None
    assert PriceTable(max_age_days=365).stale_warning(["gpt-4o-mini"], today) is None
    fresh = PriceTable({"gpt-4o-mini": {"input": 0.1, "output": 0.4, "as_of": today}})
    assert fresh.stale_warning(["gpt-4o-mini"], today) is None
    assert table.stale_warning([], today) is None  # no model used: nothing to warn about


def test_a_repository_config_overrides_prices_and_the_age_limit() -> None:
    config = PricesConfig.model_validate(
        {
            "max_age_days": 30,
            "models": {"local:llama3": {"input": 0.01, "output": 0.02, "as_of": "2026-12-01"}},
        }
    )
    table = table_for(config)
    assert table.max_age_days == 30
    assert table.cost_usd("local:llama3", 1_000_000, 1_000_000) == 0.03
    assert table.price("local:llama3") == Price(0.01, 0.02)
    assert table.version.endswith("-repo")
