"""Costs in runs: cached input tokens priced apart, the repository's prices, and the
version of the price table recorded with every run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine import telemetry as tm
from flujo.engine.agents import OpenAIModels
from flujo.engine.pricing import PriceTable, table_version
from flujo.engine.session import SessionOptions, run_many
from flujo.engine.store import RunStore
from flujo.spec.load import load_pipeline
from flujo.spec.model import Pipeline

SPEC = """\
name: answering
agents:
  helper: {model: "openai:gpt-4o-mini"}
steps:
  - name: answer
    uses: agents.helper
    input: "{{ input.question }}"
"""


def _reply(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "an answer"},
                }
            ],
            "usage": {
                "prompt_tokens": 1_000_000,
                "completion_tokens": 0,
                "total_tokens": 1_000_000,
                "prompt_tokens_details": {"cached_tokens": 600_000},
            },
        },
    )


async def test_cached_input_tokens_are_counted_and_priced_apart(tmp_path: Path) -> None:
    models = OpenAIModels(
        base_url="http://models.invalid/v1", transport=httpx.MockTransport(_reply), max_retries=0
    )
    pipeline = Pipeline.from_yaml(SPEC)
    from flujo.engine.runner import Runner

    store = RunStore(tmp_path / "runs.db")
    try:
        result = await Runner(pipeline, models=models, store=store).run({"question": "q"})
    finally:
        await models.close()
    # gpt-4o-mini: 0.4M x $0.15 + 0.6M cached x $0.075 = $0.105 (not $0.15 uncached)
    assert result.total_cost_usd == 0.105
    assert result.prices_version == table_version()
    attempt = next(s for s in store.spans(result.run_id) if s["step_name"] == "answer")
    attributes = attempt["attributes"]
    assert attributes[tm.GEN_AI_CACHED_INPUT_TOKENS] == 600_000
    assert attempt["input_tokens"] == 1_000_000
    store.close()


def _repository(tmp_path: Path, prices: str) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "flujo.yml").write_text(prices)
    path = tmp_path / "answer.flujo.yml"
    path.write_text(SPEC)
    return path


async def test_a_repository_prices_its_own_models_and_runs_say_which_table(
    tmp_path: Path,
) -> None:
    spec = _repository(
        tmp_path,
        "prices:\n  models:\n    openai:gpt-4o-mini:\n"
        "      {input: 100, output: 100, source: 'https://example.com/p', as_of: 2026-12-01}\n",
    )
    options = SessionOptions(fake=True, store=tmp_path / "runs.db", export=False)
    (result,) = await run_many(load_pipeline(spec), [{"question": "q"}], options)
    repo_version = PriceTable(
        {
            "openai:gpt-4o-mini": {
                "input": 100,
                "output": 100,
                "source": "https://example.com/p",
                "as_of": "2026-12-01",
            }
        }
    ).version
    assert result.prices_version == repo_version != table_version()
    tokens = result.total_tokens
    assert result.total_cost_usd is not None and tokens > 0
    assert abs(result.total_cost_usd - tokens * 100 / 1_000_000) < 1e-9
    store = RunStore(tmp_path / "runs.db")
    (row,) = store.list_runs()
    assert row["prices_version"] == repo_version
    store.close()

    shown = CliRunner().invoke(
        cli, ["runs", "show", result.run_id, "--store", str(tmp_path / "runs.db")]
    )
    assert shown.exit_code == 0, shown.output
    assert f"prices {repo_version}" in shown.output
    as_json: dict[str, Any] = json.loads(
        CliRunner()
        .invoke(
            cli, ["runs", "show", result.run_id, "--store", str(tmp_path / "runs.db"), "--json"]
        )
        .output
    )
    assert as_json["run"]["prices_version"] == repo_version


def test_bad_repository_prices_are_reported_at_their_line(tmp_path: Path) -> None:
    spec = _repository(
        tmp_path, "prices:\n  models:\n    openai:gpt-4o-mini: {input: -1, output: 1}\n"
    )
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(spec),
            "--fake",
            "--input",
            '{"question": "q"}',
            "--store",
            str(tmp_path / "r.db"),
        ],
    )
    assert result.exit_code == 1, result.output  # an invalid config, like an invalid spec
    assert "flujo.yml:3:26: error: input: must be greater than or equal to 0" in result.output
    assert "Traceback" not in result.output


def test_flujo_run_warns_of_old_prices_on_stderr_unless_the_repository_allows_them(
    tmp_path: Path,
) -> None:
    import datetime

    from flujo.engine.pricing import builtin_prices

    read = builtin_prices()["openai:gpt-4o-mini"].as_of or ""
    age = (datetime.date.today() - datetime.date.fromisoformat(read)).days
    spec = _repository(tmp_path, "prices: {max_age_days: 1}\n")
    args = ["run", str(spec), "--fake", "--input", '{"question": "q"}']
    result = CliRunner().invoke(cli, [*args, "--store", str(tmp_path / "r.db")])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("flujo: warning: prices older than 1 day (oldest")
    assert f"openai:gpt-4o-mini ({read}, {age} days)" in result.stderr
    assert f"(prices {table_version()})" in result.stderr  # the status line says its table
    (tmp_path / ".github" / "flujo.yml").write_text(f"prices: {{max_age_days: {age + 1}}}\n")
    quiet = CliRunner().invoke(cli, [*args, "--store", str(tmp_path / "r.db"), "--json"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["prices_version"] == table_version()
