"""`flujo bot serve` refuses to start without what it needs; `flujo bot token` makes
telemetry tokens whose hash alone is kept."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.bot.state import BotState
from flujo.cli import cli

KEYLESS = {"FLUJO_BOT_APP_ID": "123", "FLUJO_BOT_WEBHOOK_SECRET": "s3cret"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLUJO_BOT_APP_ID": "123"}, "FLUJO_BOT_PRIVATE_KEY_FILE"),
        ({"FLUJO_BOT_PRIVATE_KEY": "x"}, "FLUJO_BOT_APP_ID"),
        ({**KEYLESS, "FLUJO_BOT_PRIVATE_KEY": "not a key"}, "not a PEM private key"),
        ({**KEYLESS, "FLUJO_BOT_PRIVATE_KEY_FILE": "/nonexistent.pem"}, "cannot read"),
        ({"FLUJO_BOT_WORKERS": "zero"}, "FLUJO_BOT_WORKERS"),
    ],
    ids=["no-key", "no-app-id", "bad-key", "missing-key-file", "bad-setting"],
)
def test_serve_refuses_to_start_and_says_what_to_set(
    env: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file around
    for name in ("FLUJO_BOT_WEBHOOK_SECRET", "FLUJO_BOT_APP_ID", "FLUJO_BOT_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["bot", "serve"], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and "not a key" not in result.output


def test_serve_refuses_to_start_without_a_webhook_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    monkeypatch.chdir(tmp_path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "app.pem").write_bytes(key)
    env = {"FLUJO_BOT_APP_ID": "123", "FLUJO_BOT_PRIVATE_KEY_FILE": str(tmp_path / "app.pem")}
    result = CliRunner().invoke(cli, ["bot", "serve"], env=env)
    assert result.exit_code == 2
    assert "FLUJO_BOT_WEBHOOK_SECRET" in result.output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set FLUJO_BOT_DATABASE_URL (postgresql://…)"),
        ({"FLUJO_BOT_DATABASE_URL": "mysql://x"}, "must be a postgresql:// URL"),
        ({"FLUJO_BOT_DATABASE_URL": "postgresql://u@127.0.0.1/x"}, "FLUJO_BOT_PRIVATE_KEY_FILE"),
    ],
    ids=["no-database", "not-postgres", "no-key"],
)
def test_worker_refuses_to_start_and_says_what_to_set(
    env: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("FLUJO_BOT_DATABASE_URL", "FLUJO_BOT_PRIVATE_KEY", "FLUJO_BOT_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["bot", "worker"], env={"FLUJO_BOT_APP_ID": "1", **env})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_token_prints_a_token_and_keeps_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    env = {"FLUJO_BOT_DB": str(db)}
    result = CliRunner().invoke(
        cli, ["bot", "token", "acme/flows", "--installation", "42"], env=env
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("flujo_") and len(token) > 30
    assert token not in db.read_bytes().decode("latin-1")
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM telemetry_tokens").fetchone() == (1,)
    state = BotState(db)
    assert asyncio.run(state.token_owner(token)) == (42, "acme/flows")
    assert asyncio.run(state.token_owner("flujo_nope")) is None
    state.close()
    bad = CliRunner().invoke(cli, ["bot", "token", "acme", "--installation", "42"], env=env)
    assert bad.exit_code == 2 and "OWNER/NAME" in bad.output
