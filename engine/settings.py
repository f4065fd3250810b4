"""Process settings: environment variables ``SLA_ENGINE_*``, or a YAML settings file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from engine.config.yaml_source import YamlError, read_yaml
from engine.events.admission import MAX_AHEAD_S, MAX_EVENTS_PER_TICKET

ENV_PREFIX = "SLA_ENGINE_"
MIN_WEBHOOK_SECRET_BYTES = 16
"""A shorter HMAC key can be guessed offline from a single signed notice."""


class Settings(BaseSettings):
    """How the engine reaches its broker and database, and how it paces itself."""

    # Inputs are left out of validation errors: they would print the URLs and secrets.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, hide_input_in_errors=True
    )

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
        description="events taken and acknowledged together, recorded in at most two "
        "transactions (the tickets no other batch in flight holds first)",
    )
    max_events_per_ticket: int = Field(
        default=MAX_EVENTS_PER_TICKET,
        ge=1,
        description="events one ticket may hold; more are dead-lettered as ticket_limit",
    )
    history_cache_events: int = Field(
        default=100_000,
        ge=0,
        description="events intake keeps in memory (their texts, parsed again only "
        "when a ticket's reading cannot read on), with their tickets' readings and the "
        "clock rows it last wrote: a ticket whose history fell out is read from the "
        "database and parsed again at its next event, and all its clocks written",
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
    startup_backlog_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="at start, longest wait for intake to record the messages waiting in "
        "the queue before the scheduler fires the steps that fell due meanwhile; a minute "
        "of intake (230,000 to 540,000 events) takes an hour or more of peak traffic; a step "
        "falling due during the wait is held back by at most a tenth of the shortest target "
        "in config/ (10 min); 0: no wait",
    )
    startup_catch_up_hold_s: float = Field(
        default=900.0,
        ge=0,
        description="after the start-up wait's bound, longest time steps that would be "
        "catch-ups (due more than 15 minutes before the instant intake has read up to) "
        "wait for intake to take the backlog: firing them meanwhile takes intake's time, "
        "and they are told in digests either way; 0: fire them as intake reads on",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no e-mail")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = Field(default=False, description="upgrade with STARTTLS")
    smtp_tls: bool = Field(default=False, description="implicit TLS (port 465)")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_allow_plain_auth: bool = Field(
        default=False,
        description="allow a login without STARTTLS or TLS, its password in clear on the "
        "wire: only for a relay on this machine or a trusted network",
    )
    smtp_from: str = Field(
        default="SLA-motor <sla-engine@localhost>", description="the From of notices"
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=f"HMAC-SHA256 key of the webhook signature header, at least "
        f"{MIN_WEBHOOK_SECRET_BYTES} bytes; unset: notices are sent unsigned",
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
    feed_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="how long a ticket's version claimed by an SLA feed publisher is held "
        "before another engine publishes it (the same message_id), should the first die",
    )
    http_host: str = Field(
        default="127.0.0.1",
        description="address of the HTTP port (/metrics, /healthz, /readyz, /tickets); "
        "0.0.0.0 exposes it beyond this machine",
    )
    http_port: int = Field(default=8321, ge=0, le=65535, description="the HTTP port")
    http_db_connections: int = Field(
        default=2,
        ge=1,
        le=50,
        description="PostgreSQL connections of the HTTP port's own (read-only) pool: its "
        "requests beyond these wait, and never for intake's connections",
    )
    http_statement_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="longest statement of an HTTP request (a worklist page, a compliance "
        "period); a slower one is cancelled and answered 503",
    )
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
    analyze_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="how often the engine looks for its tables whose planner statistics "
        "fell behind (autovacuum off or lagging) and analyzes their indexed columns; 0: never",
    )
    monthly_reports: bool = Field(
        default=True,
        description="send each department's monthly report on the first working day of "
        "the month (false: this engine sends none; another engine may)",
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
        encrypted = self.smtp_starttls or self.smtp_tls
        if self.smtp_username is not None and not encrypted and not self.smtp_allow_plain_auth:
            raise ValueError(
                f"smtp_username and smtp_password would cross the network in clear: set "
                f"{ENV_PREFIX}SMTP_STARTTLS or {ENV_PREFIX}SMTP_TLS, or, for a relay on this "
                f"machine, {ENV_PREFIX}SMTP_ALLOW_PLAIN_AUTH=true"
            )
        return self

    @model_validator(mode="after")
    def _smtp_from_one_line(self) -> Settings:
        # A line break in the From header would fail every notice, or add headers.
        if any(ord(c) < 32 or ord(c) == 127 for c in self.smtp_from):
            raise ValueError(
                f"{ENV_PREFIX}SMTP_FROM (smtp_from) holds a control character such as a line"
                " break; give one line, like 'SLA-motor <sla-engine@example.org>'"
            )
        return self

    @model_validator(mode="after")
    def _webhook_secret_long_enough(self) -> Settings:
        if self.webhook_secret is None:
            return self
        size = len(self.webhook_secret.get_secret_value().encode())
        if size < MIN_WEBHOOK_SECRET_BYTES:
            # An empty variable used to mean "unsigned" without a word; a short key is
            # one an attacker can find from a single signed notice.
            raise ValueError(
                f"{ENV_PREFIX}WEBHOOK_SECRET (webhook_secret) is {size} bytes long; use at "
                f"least {MIN_WEBHOOK_SECRET_BYTES} (`openssl rand -hex 32`), or leave it "
                "unset to send notices unsigned"
            )
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
        values = {} if settings_file is None else read_settings_file(settings_file)
        return cls(**values)


class SettingsFileError(ValueError):
    """A settings file that cannot be read, or does not hold a mapping of settings."""


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings a YAML file holds, read with the agreement loader's limits."""
    # The agreement loader's reader, not pydantic-settings' yaml.safe_load: that one
    # expands aliases of aliases without a limit (a few lines ran past 5 GB).
    try:
        document = read_yaml(path)
    except YamlError as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else str(path)
        raise SettingsFileError(f"{where}: {exc.message}") from None
    except OSError as exc:
        raise SettingsFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if document.data is None:
        return {}
    if not isinstance(document.data, dict) or not all(isinstance(k, str) for k in document.data):
        raise SettingsFileError(f"{path}: the file must hold a mapping of setting names")
    return document.data


# Query parameters that carry a credential: libpq's password and sslpassword, and the
# token or secret some brokers and proxies take. Matched as parts of the name.
_SECRET_PARAMETER = re.compile(r"pass(word|wd)|secret|token|credential", re.IGNORECASE)
REDACTED = "***"


def redact_url(url: str) -> str:
    """The URL with every credential in it (userinfo, query parameters) replaced by ``***``."""
    # Not urlsplit: it refuses (ValueError on .port) the multi-host netloc libpq and
    # asyncpg accept (postgresql://app:pw@h1:5432,h2:5432/db), and a log line must
    # never be the reason the engine does not start.
    scheme, separator, rest = url.partition("://")
    if not separator:
        return REDACTED  # not a URL at all: nothing in it can be shown safely
    rest, question, query = rest.partition("?")
    # The last @ before the query ends the userinfo, so that a password holding an
    # unencoded / or @ is hidden whole (an @ in the path makes this hide too much,
    # never too little). A password with an unencoded ? or # is not a URL at all.
    userinfo, _, address = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{REDACTED}@{address}" if colon else rest
    if not question:
        return f"{scheme}://{shown}"
    query, hash_mark, fragment = query.partition("#")
    return f"{scheme}://{shown}?{_redact_query(query)}{hash_mark}{fragment}"


def _redact_query(query: str) -> str:
    parameters = []
    for parameter in query.split("&"):
        name, equals, _ = parameter.partition("=")
        if equals and _SECRET_PARAMETER.search(unquote_plus(name)):
            parameter = f"{name}={REDACTED}"
        parameters.append(parameter)
    return "&".join(parameters)
