"""Process settings: environment over file over defaults; secrets never shown."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from engine.cli import EXIT_CONFIG, main
from engine.config import yaml_source
from engine.intake.consumer import IntakeOptions
from engine.notify.sender import SenderOptions
from engine.scheduler.loop import SchedulerOptions
from engine.settings import Settings, SettingsFileError, redact_url


def test_defaults_fit_the_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLA_ENGINE_AMQP_URL", "SLA_ENGINE_DATABASE_URL", "SLA_ENGINE_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load()
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.batch_size == 3000


def test_the_http_port_listens_on_this_host_only_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The port has no logins: reaching it from elsewhere is a choice made in the
    # settings, behind a reverse proxy or a firewall (README).
    for name in ("SLA_ENGINE_HTTP_HOST", "SLA_ENGINE_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load()
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8321)


def test_environment_wins_over_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("batch_size: 200\nprefetch: 700\nconfig_dir: /etc/sla-engine\n")
    monkeypatch.setenv("SLA_ENGINE_BATCH_SIZE", "300")
    settings = Settings.load(path)
    assert (settings.batch_size, settings.prefetch) == (300, 700)
    assert settings.config_dir == Path("/etc/sla-engine")


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("batch_sise: 200\n")
    with pytest.raises(ValueError, match="batch_sise"):
        Settings.load(path)


def test_passwords_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLA_ENGINE_AMQP_URL", "amqp://engine:s3cret-amqp@mq.example:5671/")
    monkeypatch.setenv("SLA_ENGINE_DATABASE_URL", "postgresql://engine:s3cret-pg@db/sla")
    settings = Settings.load()
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "s3cret" not in text
    assert redact_url(settings.amqp_url.get_secret_value()) == "amqp://engine:***@mq.example:5671/"
    assert redact_url(settings.database_url.get_secret_value()) == "postgresql://engine:***@db/sla"
    assert redact_url("postgresql://postgres@db/sla") == "postgresql://postgres@db/sla"


def test_smtp_settings_that_exclude_each_other_are_refused() -> None:
    with pytest.raises(ValueError, match="smtp_starttls and smtp_tls"):
        Settings(smtp_host="mail", smtp_starttls=True, smtp_tls=True)
    with pytest.raises(ValueError, match="go together"):
        Settings(smtp_host="mail", smtp_username="sla")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app@h/x?password=S3CRET", "postgresql://app@h/x?password=***"),
        (
            "postgresql://app@h/x?sslmode=verify-full&sslpassword=S3CRET&passfile=/etc/pgpass",
            "postgresql://app@h/x?sslmode=verify-full&sslpassword=***&passfile=/etc/pgpass",
        ),
        (
            "postgresql://app:S3CRET@h1:5432,h2:5432/db?target_session_attrs=read-write",
            "postgresql://app:***@h1:5432,h2:5432/db?target_session_attrs=read-write",
        ),
        ("amqps://u:S3CRET@mq:5671/vh?cafile=/ca.pem", "amqps://u:***@mq:5671/vh?cafile=/ca.pem"),
        ("amqp://u@mq/?auth_token=S3CRET&x=1#f", "amqp://u@mq/?auth_token=***&x=1#f"),
        ("amqp://mq/?Client_Secret=S3CRET", "amqp://mq/?Client_Secret=***"),
        ("postgresql://h/db?password=S3@CRET", "postgresql://h/db?password=***"),
        ("postgresql://app:S3/CR@ET@h/db", "postgresql://app:***@h/db"),
        ("host=h password=S3CRET", "***"),
    ],
)
def test_every_credential_in_a_url_is_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_settings_errors_do_not_repeat_their_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLA_ENGINE_AMQP_URL", "amqp://engine:s3cret-amqp@mq.example:5671/")
    monkeypatch.setenv("SLA_ENGINE_WEBHOOK_SECRET", "s3cret-kort")
    with pytest.raises(ValueError, match="SLA_ENGINE_WEBHOOK_SECRET") as caught:
        Settings.load()
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("secret", ["", "fifteen-bytes!!", "æøåæøåæ"])
def test_empty_or_short_webhook_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("SLA_ENGINE_WEBHOOK_SECRET", secret)
    with pytest.raises(ValueError, match=r"SLA_ENGINE_WEBHOOK_SECRET .* at least 16"):
        Settings.load()


def test_webhook_secret_of_sixteen_bytes_or_none_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLA_ENGINE_WEBHOOK_SECRET", raising=False)
    assert Settings.load().webhook_secret is None
    monkeypatch.setenv("SLA_ENGINE_WEBHOOK_SECRET", "sixteen-bytes-ok")
    assert Settings.load().webhook_secret is not None


def test_smtp_login_without_tls_is_refused_unless_allowed() -> None:
    login = partial(Settings, smtp_host="mail", smtp_username="sla", smtp_password="pw")
    with pytest.raises(ValueError, match="SLA_ENGINE_SMTP_ALLOW_PLAIN_AUTH=true"):
        login()
    assert login(smtp_starttls=True).smtp_username == "sla"
    assert login(smtp_tls=True).smtp_username == "sla"
    assert login(smtp_allow_plain_auth=True).smtp_username == "sla"
    assert Settings(smtp_host="mail").smtp_username is None  # no login: nothing to protect


# --- the settings file: the agreement loader's limits -----------------------------


def _alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, levels)
    ]
    return "\n".join(lines) + "\n"


def test_settings_file_alias_bomb_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yaml_source, "MAX_NODES", 10_000)  # the real limit takes seconds
    path = tmp_path / "settings.yaml"
    path.write_text(_alias_bomb(9))  # 10**9 values once expanded
    with pytest.raises(SettingsFileError) as caught:
        Settings.load(path)
    assert str(caught.value) == (
        f"{path}:1: the file expands to more than 10,000 values (aliases that repeat aliases?)"
    )


def test_settings_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"batch_size: 200\n" + b"#" * yaml_source.MAX_FILE_BYTES)
    with pytest.raises(SettingsFileError) as caught:
        Settings.load(path)
    assert str(caught.value) == (
        f"{path}: the file is larger than {yaml_source.MAX_FILE_BYTES:,} bytes, the most read"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch_size: 1\nbatch_size: 2\n", ":2: duplicate key 'batch_size' (first on line 1)"),
        ("- batch_size\n", ": the file must hold a mapping of setting names"),
        ("batch_size: [\n", ":2: not valid YAML"),
    ],
)
def test_settings_file_that_is_not_a_mapping_of_settings_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(SettingsFileError) as caught:
        Settings.load(path)
    assert str(caught.value).startswith(f"{path}{message}")


def test_empty_settings_file_means_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("# nothing set here\n")
    assert Settings.load(path).batch_size == Settings().batch_size


@pytest.mark.parametrize("command", ["run", "migrate", "publish"])
def test_cli_refuses_an_oversized_settings_file_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"#" * (yaml_source.MAX_FILE_BYTES + 1))
    extra = [str(tmp_path / "events.jsonl")] if command == "publish" else []
    with pytest.raises(SystemExit) as caught:
        main([command, *extra, "--settings", str(path)])
    assert caught.value.code == (EXIT_CONFIG if command == "run" else 1)
    assert capsys.readouterr().err == (
        f"sla-engine: invalid settings: {path}: the file is larger than "
        f"{yaml_source.MAX_FILE_BYTES:,} bytes, the most read\n"
    )


@pytest.mark.parametrize("sender", ["SLA <a@b.dk>\r\nBcc: x@y.dk", "SLA\x00 <a@b.dk>", "a@b.dk\n"])
def test_a_from_address_with_a_control_character_is_refused(sender: str) -> None:
    with pytest.raises(ValueError, match="SLA_ENGINE_SMTP_FROM"):
        Settings(smtp_from=sender)
    assert Settings(smtp_from="SLA-motor <sla@example.org>").smtp_from.startswith("SLA")


@pytest.mark.parametrize("options", [IntakeOptions, SchedulerOptions, SenderOptions])
def test_the_workers_options_default_to_the_settings_defaults(
    options: type[IntakeOptions | SchedulerOptions | SenderOptions],
) -> None:
    # model_construct: the fields' defaults, whatever SLA_ENGINE_* the environment holds.
    assert options.from_settings(Settings.model_construct()) == options()


def test_the_workers_options_take_their_settings() -> None:
    settings = Settings.model_construct(
        batch_size=7,
        max_ahead_s=8,
        db_retry_max_s=9,
        scheduler_batch_size=10,
        reconcile_interval_s=11,
        notify_max_attempts=12,
        notify_lease_s=13,
        notify_backoff_max_s=14,
    )
    assert IntakeOptions.from_settings(settings) == IntakeOptions(
        batch_size=7, retry_max_s=9, max_ahead_s=8
    )
    assert SchedulerOptions.from_settings(settings) == SchedulerOptions(
        batch_size=10, reconcile_s=11, retry_max_s=9
    )
    assert SenderOptions.from_settings(settings) == SenderOptions(
        max_attempts=12, lease_s=13, backoff_max_s=14, retry_max_s=9
    )
