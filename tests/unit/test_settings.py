"""Process settings: environment over file over defaults; secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import Settings, redact_url


def test_defaults_fit_the_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLA_ENGINE_AMQP_URL", "SLA_ENGINE_DATABASE_URL", "SLA_ENGINE_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load()
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.batch_size == 3000


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
