"""Process settings: environment variables ``SLA_ENGINE_*``, or a YAML settings file."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from engine.events.admission import MAX_AHEAD_S, MAX_EVENTS_PER_TICKET

ENV_PREFIX = "SLA_ENGINE_"


class Settings(BaseSettings):
    """How the engine reaches its broker and database, and how it paces itself."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="RabbitMQ URL; amqps://... with ?cafile=... for TLS",
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/sla_engine"),
        description="PostgreSQL URL; add ?sslmode=verify-full for TLS",
    )
    config_dir: Path = Field(default=Path("config"), description="agreement configuration")
    prefetch: int = Field(
        default=9000,
        ge=1,
        description="unacked messages held at once: enough for the two batches in flight "
        "and the next one",
    )
    batch_size: int = Field(
        default=3000,
        ge=1,
        description="events recorded per transaction; larger batches meet fewer of the "
        "tickets the batch before still holds locked",
    )
    max_events_per_ticket: int = Field(
        default=MAX_EVENTS_PER_TICKET,
        ge=1,
        description="events one ticket may hold; more are dead-lettered as ticket_limit",
    )
    max_ahead_s: float = Field(
        default=MAX_AHEAD_S,
        ge=0,
        description="how far ahead of the engine's clock an event may be dated; later "
        "ones are dead-lettered as out_of_range",
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        gt=0,
        description="time to finish in-flight work after SIGTERM; keep it below the "
        "platform's kill timeout (Kubernetes terminationGracePeriodSeconds, default 30)",
    )
    db_retry_max_s: float = Field(
        default=10.0, gt=0, description="longest pause between attempts while PostgreSQL is away"
    )
    scheduler_batch_size: int = Field(
        default=500, ge=1, description="clocks claimed per firing transaction"
    )
    reconcile_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="longest sleep of the scheduler: a backstop for a lost notification",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no e-mail")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = Field(default=False, description="upgrade with STARTTLS")
    smtp_tls: bool = Field(default=False, description="implicit TLS (port 465)")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(
        default="SLA-motor <sla-engine@localhost>", description="the From of notices"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of the webhook signature header"
    )
    notify_max_attempts: int = Field(
        default=10, ge=1, description="attempts before a notice is left failed"
    )
    notify_backoff_max_s: float = Field(
        default=600.0, gt=0, description="longest pause between attempts of one notice"
    )
    notify_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="how long a claimed notice is held by its sender before another may "
        "send it again (the same id); a delivery is cut off at half of it",
    )
    http_host: str = Field(
        default="127.0.0.1",
        description="address of the HTTP port (/metrics, /healthz, /readyz, /tickets); "
        "0.0.0.0 exposes it beyond this machine",
    )
    http_port: int = Field(default=8321, ge=0, le=65535, description="the HTTP port")
    gauges_refresh_s: float = Field(
        default=15.0,
        gt=0,
        description="how often the gauges read from PostgreSQL and the broker are refreshed",
    )
    personal_data_retention_days: float = Field(
        default=90.0,
        ge=0,
        description="days after a ticket is closed until the requester's name, e-mail and "
        "phone, the subject and the texts of its events are purged (0: at the next purge)",
    )
    personal_data_purge_interval_s: float = Field(
        default=3600.0, gt=0, description="how often closed tickets are looked over for purging"
    )
    log_level: str = "info"
    log_json: bool | None = Field(
        default=None,
        description="JSON log lines (true) or a readable console (false); unset: JSON "
        "unless standard error is a terminal",
    )

    @model_validator(mode="after")
    def _smtp_coherent(self) -> Settings:
        # Refused here, with the setting named, rather than when the channel is built.
        if self.smtp_starttls and self.smtp_tls:
            raise ValueError("smtp_starttls and smtp_tls exclude each other: choose one")
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("smtp_username and smtp_password go together")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over a settings file, which wins over the defaults.
        return env_settings, init_settings

    @classmethod
    def load(cls, settings_file: Path | None = None) -> Settings:
        """Settings from the environment over an optional YAML file."""
        values: dict[str, Any] = {}
        if settings_file is not None:
            values = YamlConfigSettingsSource(cls, yaml_file=settings_file)()
        return cls(**values)


def redact_url(url: str) -> str:
    """The URL with its password replaced, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
