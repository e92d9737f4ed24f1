"""The bot's settings, from `FLUJO_BOT_*` environment variables (or a `.env` file).

Secrets are `SecretStr`: they print as `**********` in reprs, logs and error messages.
`load_settings` reads them and reports every missing or malformed one at once, each by
its variable's name (`SettingsError`, exit code 2), never with a value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from flujo.spec.errors import EXIT_USAGE, FlujoError

if TYPE_CHECKING:
    from flujo.bot.isolation import IsolationLimits
    from flujo.bot.suggestion_cycle import Evaluation

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB


class SettingsError(FlujoError, ValueError):
    """The bot cannot start with these settings; the message says what to set (exit code 2)."""

    exit_code = EXIT_USAGE


ENV_FILE = ".env"  # read from the working directory; `flujo bot setup` writes the App's here
APP_ID_IS_A_NUMBER = (
    "must be a number: the App ID shown on the App's settings page (not its client ID)"
)
BOTH_KEYS = "set FLUJO_BOT_PRIVATE_KEY or FLUJO_BOT_PRIVATE_KEY_FILE, not both"


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLUJO_BOT_", env_file=ENV_FILE, extra="ignore", frozen=True
    )

    webhook_secret: SecretStr | None = Field(
        None, description="The App's webhook secret; the server refuses to start without it."
    )
    app_id: str | None = Field(None, description="The GitHub App's id (a number).")
    private_key: SecretStr | None = Field(None, description="The App's private key (PEM).")
    private_key_file: Path | None = Field(None, description="A file holding the private key.")
    github_url: str = Field("https://api.github.com", description="GitHub's REST API root.")
    public_url: str | None = Field(
        None, description="Where people reach the bot, e.g. https://flujo.example.com (links)."
    )
    db: Path = Field(
        Path(".flujo") / "bot.db",
        description="Queue and bot records (SQLite), when `database_url` is not set.",
    )
    db_sync: Literal["normal", "full"] = Field(
        "normal",
        description="`normal`: acknowledged deliveries survive a crash of the bot; `full`: "
        "also a power failure (an fsync per grouped commit).",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object per log line (for log collectors)."
    )
    database_url: str | None = Field(
        None,
        description="A postgresql:// URL: the queue (procrastinate), the bot's records and "
        "the telemetry run stores go to PostgreSQL, and several `flujo bot serve` / `flujo "
        "bot worker` processes share the work. Unset: the embedded SQLite queue, one process.",
    )
    lease_s: float = Field(
        30.0, gt=0, description="A worker silent this long (killed) loses its job to another."
    )
    ack_connections: int = Field(
        1,
        ge=1,
        le=8,
        description="On PostgreSQL, groups of webhook deliveries being committed at once, one "
        "connection each: with 2, the next group is stored while the previous one waits for "
        "the disk (a repository's deliveries stay in order).",
    )
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = Field(4, ge=1, description="Repositories worked on at once.")
    max_attempts: int = Field(5, ge=1, description="Tries before a job is dead-lettered.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles each time.")
    max_rate_limit_wait_s: float = Field(
        60.0, ge=0, description="Wait this long inline for a rate limit; longer waits re-queue."
    )
    skills_allow: Annotated[list[str], NoDecode] = Field(
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

    @field_validator("skills_allow", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value) if value.strip() else []
        except ValueError:
            raise ValueError('not JSON (a list is written ["a.module", "b.module"])') from None

    @field_validator("app_id")
    @classmethod
    def _numeric_app_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().isdecimal():
            raise ValueError(APP_ID_IS_A_NUMBER)
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("FLUJO_BOT_DATABASE_URL must be a postgresql:// URL")
        return url

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
            raise ValueError(BOTH_KEYS)
        return self

    def records(self) -> str | Path:
        """Where the bot's own records are (`records.py`): the queue's PostgreSQL database
        when there is one (shared by every process), else the SQLite file `db`."""
        return self.database_url or self.db

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


def env_name(field: str) -> str:
    """The environment variable of a setting: `app_id` → `FLUJO_BOT_APP_ID`."""
    return f"FLUJO_BOT_{field.upper()}"


def load_settings(*, serving: bool = False) -> BotSettings:
    """The settings from the environment (and `.env`); with `serving`, also what
    `flujo bot serve` needs (webhook secret, numeric App id, a readable PEM key).

    Raises SettingsError naming every problem, one line each (`FLUJO_BOT_X: what is
    wrong`); values are never shown, as any of them may be a secret.
    """
    problems: dict[str, str] = {}
    fixed: dict[str, Any] = {}
    settings: BotSettings | None = None
    for _ in range(len(BotSettings.model_fields) + 2):
        try:
            settings = BotSettings(**fixed)
            break
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else "private_key"
                message = str(error["msg"]).removeprefix("Value error, ")
                if field == "private_key" and not error["loc"]:
                    message = BOTH_KEYS
                problems.setdefault(env_name(field), message)
                fixed[field] = _default(field)
        except SourceError as exc:  # a source that cannot be read at all
            raise SettingsError(f"settings: {exc}") from None
    if settings is not None and serving:
        for name, message in serving_problems(settings).items():
            problems.setdefault(name, message)
    if problems or settings is None:
        lines = [f"  {name}: {message}" for name, message in problems.items()]
        count = f"{len(lines)} setting{'s' if len(lines) != 1 else ''}"
        raise SettingsError(f"{count} to fix:\n" + "\n".join(lines))
    return settings


def serving_problems(settings: BotSettings) -> dict[str, str]:
    """What `flujo bot serve` lacks: variable name → what to do about it."""
    from flujo.bot.github import load_private_key

    problems: dict[str, str] = {}
    try:
        settings.secret()
    except SettingsError:
        problems[env_name("webhook_secret")] = (
            "missing: the webhook secret of your GitHub App (the bot never accepts unsigned "
            "deliveries)"
        )
    if not settings.app_id:
        problems[env_name("app_id")] = "missing: the App ID shown on the App's settings page"
    if settings.private_key is None and settings.private_key_file is None:
        problems[env_name("private_key_file")] = (
            "missing: the path of the App's private key (.pem), or set FLUJO_BOT_PRIVATE_KEY "
            "to the key itself"
        )
        return problems
    try:
        load_private_key(settings.key())
    except SettingsError as exc:
        name = "private_key" if settings.private_key is not None else "private_key_file"
        problems[env_name(name)] = str(exc)
    return problems


def _default(field: str) -> Any:
    return BotSettings.model_fields[field].get_default(call_default_factory=True)
