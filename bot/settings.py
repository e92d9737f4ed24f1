"""The bot's settings, from `FLUJO_BOT_*` environment variables (or a `.env` file).

Secrets are `SecretStr`: they print as `**********` in reprs, logs and error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flujo.spec.errors import EXIT_USAGE, FlujoError

if TYPE_CHECKING:
    from flujo.bot.isolation import IsolationLimits
    from flujo.bot.suggestion_cycle import Evaluation

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB


class SettingsError(FlujoError, ValueError):
    """The bot cannot start with these settings; the message says what to set (exit code 2)."""

    exit_code = EXIT_USAGE


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLUJO_BOT_", env_file=".env", extra="ignore", frozen=True
    )

    webhook_secret: SecretStr | None = Field(
        None, description="The App's webhook secret; the server refuses to start without it."
    )
    app_id: str | None = Field(None, description="The GitHub App's id.")
    private_key: SecretStr | None = Field(None, description="The App's private key (PEM).")
    private_key_file: Path | None = Field(None, description="A file holding the private key.")
    github_url: str = Field("https://api.github.com", description="GitHub's REST API root.")
    public_url: str | None = Field(
        None, description="Where people reach the bot, e.g. https://flujo.example.com (links)."
    )
    db: Path = Field(Path(".flujo") / "bot.db", description="Queue and bot state (SQLite).")
    db_sync: Literal["normal", "full"] = Field(
        "normal",
        description="`normal`: acknowledged deliveries survive a crash of the bot; `full`: "
        "also a power failure (an fsync per grouped commit).",
    )
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = Field(4, ge=1, description="Repositories worked on at once.")
    max_attempts: int = Field(5, ge=1, description="Tries before a job is dead-lettered.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles each time.")
    max_rate_limit_wait_s: float = Field(
        60.0, ge=0, description="Wait this long inline for a rate limit; longer waits re-queue."
    )
    skills_allow: list[str] = Field(
        default_factory=list,
        description="Import paths specs may use beyond built-ins and plugins. A repository's "
        "own `.github/flujo.yml` cannot widen this: the bot runs strangers' YAML.",
    )
    suggest_interval_s: float = Field(
        3600.0, gt=0, description="At most one suggestion cycle per repository this often."
    )
    suggest_delay_s: float = Field(
        120.0, ge=0, description="Wait this long after telemetry arrives before suggesting."
    )
    suggest_max_open: int = Field(
        3, ge=0, description="Open suggestion pull requests per repository at most."
    )
    max_snapshot_files: int = Field(500, ge=1, description="Files fetched per commit at most.")
    max_snapshot_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Bytes per commit at most.")
    isolation_memory_mb: int = Field(
        2048, ge=256, description="Memory (address space) of the process checking one spec, MiB."
    )
    isolation_cpu_s: int = Field(300, ge=1, description="CPU seconds to check one spec.")
    isolation_wall_s: float = Field(600.0, gt=0, description="Seconds to check one spec.")
    isolation_open_files: int = Field(256, ge=32, description="Open files while checking a spec.")
    isolation_output_mb: int = Field(32, ge=1, description="Largest report of one spec, MiB.")
    isolation_commit_s: float = Field(
        900.0, gt=0, description="Seconds all the specs of one commit may take together."
    )

    eval_base_url: str | None = Field(
        None,
        description="An OpenAI-compatible model provider for measuring suggestions before "
        "they are proposed (`flujo eval` on captured examples); none: not measured.",
    )
    eval_api_key: SecretStr | None = Field(
        None, description="The evaluation provider's key (never logged, shown or exported)."
    )
    eval_monthly_budget_usd: float = Field(
        5.0, ge=0, description="What evaluations may spend per installation per month (UTC)."
    )
    eval_min_agreement: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A suggestion whose measured agreement is below this is not proposed.",
    )
    eval_max_examples: int = Field(
        50, ge=1, description="Captured examples evaluated per suggestion at most."
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> BotSettings:
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError("set FLUJO_BOT_PRIVATE_KEY or FLUJO_BOT_PRIVATE_KEY_FILE, not both")
        return self

    def isolation_limits(self) -> IsolationLimits:
        """The limits of the child process that checks each spec (see `isolation.py`)."""
        from flujo.bot.isolation import IsolationLimits

        return IsolationLimits(
            memory_mb=self.isolation_memory_mb,
            cpu_s=self.isolation_cpu_s,
            wall_s=self.isolation_wall_s,
            open_files=self.isolation_open_files,
            output_mb=self.isolation_output_mb,
            commit_s=self.isolation_commit_s,
        )

    def evaluation(self) -> Evaluation | None:
        """How suggestion cycles measure suggestions (None when no provider is configured)."""
        from flujo.bot.suggestion_cycle import Evaluation

        if not self.eval_base_url:
            return None
        key = self.eval_api_key.get_secret_value() if self.eval_api_key else ""
        return Evaluation(
            base_url=self.eval_base_url,
            api_key=key,
            budget_usd=self.eval_monthly_budget_usd,
            min_agreement=self.eval_min_agreement,
            max_examples=self.eval_max_examples,
        )

    def secret(self) -> str:
        """The webhook secret; SettingsError when none is configured."""
        if self.webhook_secret is None or not self.webhook_secret.get_secret_value():
            raise SettingsError(
                "no webhook secret: set FLUJO_BOT_WEBHOOK_SECRET to the secret of your GitHub "
                "App (the bot never accepts unsigned deliveries)"
            )
        return self.webhook_secret.get_secret_value()

    def key(self) -> str:
        """The App's private key; SettingsError when missing or unreadable."""
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        if self.private_key_file is None:
            raise SettingsError(
                "no App private key: set FLUJO_BOT_PRIVATE_KEY_FILE (or FLUJO_BOT_PRIVATE_KEY)"
            )
        try:
            return self.private_key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(
                f"cannot read the App private key {self.private_key_file}: {exc.strerror or exc}"
            ) from None

    def app(self) -> str:
        if not self.app_id:
            raise SettingsError("no App id: set FLUJO_BOT_APP_ID")
        return self.app_id

    def secrets(self) -> list[str]:
        """Every secret value, for the log redactor."""
        values = [self.webhook_secret, self.private_key, self.eval_api_key]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
