"""Deployment files agree with the code and with each other: names, ports, paths, timeouts."""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from engine.cli import EXIT_CONFIG
from engine.settings import ENV_PREFIX, Settings
from tests.helpers import REPO

DEPLOY = REPO / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTING_NAMES = frozenset(ENV_PREFIX + name.upper() for name in Settings.model_fields)
ENV_EXAMPLE = DEPLOY / "systemd/environment.example"
# A setting line of environment.example, active or commented out to show its default.
_SETTING_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment wins over arguments in Settings: compare files with defaults only.
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    lines = [line.strip() for line in joined.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


DOCKERFILE = _instructions(REPO / "Dockerfile")


def _dockerfile(keyword: str) -> list[str]:
    return [arguments for name, arguments in DOCKERFILE if name == keyword]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount; named volumes left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def _named_volumes(service: dict[str, Any]) -> list[str]:
    return [
        volume.split(":")[0]
        for volume in service.get("volumes", [])
        if isinstance(volume, str) and not volume.startswith((".", "/"))
    ]


def _seconds(value: str) -> float:
    """A systemd or compose duration ("30", "30s", "1min", "1m30s") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.strip())
    assert "".join(n + u for n, u in parts) == value.replace(" ", ""), value
    assert parts, value
    return sum(float(number) * units[unit] for number, unit in parts)


def _published_container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(port).rsplit(":", 1)[-1].split("/")[0]) for port in service["ports"]}


class _UnitFile(configparser.ConfigParser):
    """A systemd unit read as INI: keys keep their case (ExecStart, not execstart)."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _unit() -> configparser.ConfigParser:
    # systemd repeats keys (several After= lines): strict=False keeps the last one.
    unit = _UnitFile(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd/sla-engine.service", encoding="utf-8")
    return unit


# --- compose ------------------------------------------------------------------------


def test_compose_has_the_five_services() -> None:
    assert set(SERVICES) == {"rabbitmq", "postgres", "engine", "prometheus", "grafana"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_images_are_pinned(name: str) -> None:
    image = SERVICES[name].get("image")
    if image is None:
        assert "build" in SERVICES[name]
        return
    repository, _, tag = image.rpartition(":")
    assert repository, image
    assert tag not in ("", "latest"), image


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_mounts_only_paths_that_exist(name: str) -> None:
    for source, _ in _bind_mounts(SERVICES[name]):
        assert (DEPLOY / source).exists(), source
    for volume in _named_volumes(SERVICES[name]):
        assert volume in COMPOSE["volumes"], f"{volume} is not declared under volumes:"


def test_compose_builds_the_engine_from_the_repository_dockerfile() -> None:
    build = SERVICES["engine"]["build"]
    assert (DEPLOY / build["context"]).resolve() == REPO
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_compose_engine_environment_names_real_settings() -> None:
    names = set(_environment(SERVICES["engine"]))
    assert names <= SETTING_NAMES, names - SETTING_NAMES


def test_compose_engine_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _environment(SERVICES["engine"]).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.http_host == "0.0.0.0"
    assert str(settings.config_dir) == "/app/config"


def test_compose_engine_reaches_broker_and_database_by_service_name() -> None:
    environment = _environment(SERVICES["engine"])
    assert "@rabbitmq:5672/" in environment["SLA_ENGINE_AMQP_URL"]
    assert "@postgres:5432/" in environment["SLA_ENGINE_DATABASE_URL"]
    database = environment["SLA_ENGINE_DATABASE_URL"].rsplit("/", 1)[-1]
    assert _environment(SERVICES["postgres"])["POSTGRES_DB"] == database


def test_compose_engine_waits_for_healthy_broker_and_database() -> None:
    depends_on = SERVICES["engine"]["depends_on"]
    for name in ("rabbitmq", "postgres"):
        assert depends_on[name] == {"condition": "service_healthy"}
        assert SERVICES[name]["healthcheck"]["test"], f"{name} has no healthcheck"


def test_compose_gives_the_engine_its_shutdown_grace() -> None:
    # Docker's default is 10 s before SIGKILL, less than the engine's grace.
    grace_period = _seconds(SERVICES["engine"]["stop_grace_period"])
    assert grace_period > Settings().shutdown_grace_s


def test_one_port_everywhere() -> None:
    port = int(_environment(SERVICES["engine"])["SLA_ENGINE_HTTP_PORT"])
    assert port == Settings.model_fields["http_port"].default
    assert _published_container_ports(SERVICES["engine"]) == {port}
    assert _dockerfile("EXPOSE") == [str(port)]
    (healthcheck,) = _dockerfile("HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for s in job["static_configs"]
               for t in s["targets"]]  # fmt: skip
    assert targets == [f"engine:{port}"]


def test_prometheus_and_grafana_mounts_are_the_paths_they_read() -> None:
    prometheus = dict(_bind_mounts(SERVICES["prometheus"]))
    assert prometheus["./prometheus"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    grafana = dict(_bind_mounts(SERVICES["grafana"]))
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/sla-engine.yaml").read_text()
    )
    (dashboards,) = provider["providers"]
    assert dashboards["type"] == "file"
    assert grafana["./grafana/dashboards"] == dashboards["options"]["path"]
    assert grafana["./grafana/provisioning"] == "/etc/grafana/provisioning"


def test_grafana_reaches_the_compose_prometheus_and_lets_viewers_in() -> None:
    sources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    (source,) = sources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert 9090 in _published_container_ports(SERVICES["prometheus"])
    environment = _environment(SERVICES["grafana"])
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    grafana = dict(_bind_mounts(SERVICES["grafana"]))
    (host_dir,) = (host for host, target in grafana.items() if home.startswith(target + "/"))
    assert json.loads((DEPLOY / host_dir / PurePosixPath(home).name).read_text())["uid"]


COMPOSE_ENV_EXAMPLE = DEPLOY / "compose.env.example"
# ${NAME}, ${NAME:?message} or ${NAME?message}: compose's interpolation, as used here.
_INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?\?[^}]*)?\}")


def _interpolated(value: str, variables: dict[str, str]) -> str:
    return _INTERPOLATION.sub(lambda match: variables[match.group(1)], value)


def _env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def _port_bindings(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host address, "host port:container port") of each published port."""
    bindings: list[tuple[str | None, str]] = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            bindings.append((port.get("host_ip"), f"{port.get('published')}:{port['target']}"))
            continue
        parts = str(port).split(":")
        address = ":".join(parts[:-2]) if len(parts) > 2 else None
        bindings.append((address, ":".join(parts[-2:])))
    return bindings


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_publishes_ports_on_localhost_only(name: str) -> None:
    # Without an address, Docker publishes on every interface, past the host's firewall.
    for address, ports in _port_bindings(SERVICES[name]):
        assert address == "127.0.0.1", f"{name} publishes {ports} on {address or 'every address'}"


def test_compose_publishes_the_ports_the_readme_names() -> None:
    published = {ports for service in SERVICES.values() for _, ports in _port_bindings(service)}
    assert published == {"5672:5672", "15672:15672", "8321:8321", "9090:9090", "3000:3000"}


def _credentials(environment: dict[str, str]) -> dict[str, str]:
    """The environment entries that are credentials: users, passwords, URLs with a login."""
    return {
        key: value
        for key, value in environment.items()
        if (re.search(r"PASS|SECRET|TOKEN|_USER$", key) and key != "POSTGRES_USER")
        or re.match(r"^[a-z]+://[^/@]*@", value)
    }


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_has_no_credentials_of_its_own(name: str) -> None:
    for key, value in _credentials(_environment(SERVICES[name])).items():
        if "://" in value:
            userinfo = value.split("://", 1)[1].rsplit("@", 1)[0]
            user, _, password = userinfo.partition(":")
            assert _INTERPOLATION.fullmatch(password), f"{key}: a password written out"
            assert user == "postgres" or _INTERPOLATION.fullmatch(user), f"{key}: {user}"
        else:
            assert _INTERPOLATION.fullmatch(value), f"{key} is written out in compose.yaml"


def test_compose_refuses_to_start_without_a_password() -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    for variable in ("RABBITMQ_PASSWORD", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        # :? fails on an unset or empty variable: no silent empty password.
        assert re.search(r"\$\{" + variable + r":\?", text), variable
    for default in ("guest:guest", "postgres:postgres", ": admin\n", ": guest\n"):
        assert default not in text, default


def test_compose_env_example_sets_what_compose_reads_and_no_password() -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    example = _env_file(COMPOSE_ENV_EXAMPLE)
    assert set(example) == set(_INTERPOLATION.findall(text))
    assert {name: value for name, value in example.items() if "PASSWORD" in name} == {
        "RABBITMQ_PASSWORD": "",
        "POSTGRES_PASSWORD": "",
        "GRAFANA_ADMIN_PASSWORD": "",
    }
    assert "deploy/compose.env" in (REPO / ".gitignore").read_text().splitlines()


def test_compose_engine_logs_in_as_the_broker_and_database_are_set_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variables = {**_env_file(COMPOSE_ENV_EXAMPLE), "RABBITMQ_PASSWORD": "mq-pw",
                 "POSTGRES_PASSWORD": "pg-pw", "GRAFANA_ADMIN_PASSWORD": "gf-pw"}  # fmt: skip
    rabbitmq, postgres = (
        {key: _interpolated(value, variables) for key, value in _environment(service).items()}
        for service in (SERVICES["rabbitmq"], SERVICES["postgres"])
    )
    for name, value in _environment(SERVICES["engine"]).items():
        monkeypatch.setenv(name, _interpolated(value, variables))
    settings = Settings()
    user, password = rabbitmq["RABBITMQ_DEFAULT_USER"], rabbitmq["RABBITMQ_DEFAULT_PASS"]
    assert settings.amqp_url.get_secret_value() == f"amqp://{user}:{password}@rabbitmq:5672/"
    assert settings.database_url.get_secret_value() == (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )


# --- Dockerfile ---------------------------------------------------------------------


def test_dockerfile_runs_the_console_script_as_a_non_root_user() -> None:
    assert _dockerfile("FROM") == ["python:3.11-slim"]
    (user,) = _dockerfile("USER")
    assert user.split(":")[0] not in {"root", "0"}
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(_dockerfile("ENTRYPOINT")[0]) == ["sla-engine"]
    assert "sla-engine" in scripts
    assert json.loads(_dockerfile("CMD")[0]) == ["run"]
    assert _dockerfile("STOPSIGNAL") == ["SIGTERM"]


def test_dockerfile_installs_the_package_from_what_it_copied() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    install = next(i for i, (name, args) in enumerate(DOCKERFILE) if "pip install" in args)
    assert "pip install --no-cache-dir ." in DOCKERFILE[install][1]
    copied_before = {
        source.rstrip("/")
        for name, args in DOCKERFILE[:install]
        if name == "COPY"
        for source in args.split()[:-1]
    }
    assert {"pyproject.toml", project["readme"], "engine"} <= copied_before


def test_dockerfile_environment_names_real_settings() -> None:
    names = {
        assignment.split("=", 1)[0]
        for arguments in _dockerfile("ENV")
        for assignment in arguments.split()
        if assignment.startswith(ENV_PREFIX)
    }
    assert names, "the image sets no SLA_ENGINE_* variable"
    assert names <= SETTING_NAMES, names - SETTING_NAMES


def test_dockerfile_healthcheck_uses_python_not_curl() -> None:
    (healthcheck,) = _dockerfile("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/healthz" in command[2]


def test_dockerfile_config_dir_is_where_config_is_copied() -> None:
    workdir = _dockerfile("WORKDIR")[-1]
    (copy,) = [args for args in _dockerfile("COPY") if args.startswith("config/")]
    destination = PurePosixPath(workdir) / copy.split()[-1]
    assert str(destination).rstrip("/") == _environment(SERVICES["engine"])["SLA_ENGINE_CONFIG_DIR"]
    assert f"SLA_ENGINE_CONFIG_DIR={destination}" in " ".join(_dockerfile("ENV"))


def _dockerignored(path: str, patterns: list[str]) -> bool:
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    )


def test_dockerignore_keeps_junk_out_and_what_is_copied_in() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "exceptions are not modelled here"
    for junk in (".venv", ".git", ".mypy_cache", ".pytest_cache", "engine/__pycache__"):
        assert _dockerignored(junk, patterns), junk
    for name, args in DOCKERFILE:
        for source in args.split()[:-1] if name == "COPY" else []:
            assert (REPO / source).exists(), source
            assert not _dockerignored(source.rstrip("/"), patterns), source


# --- systemd ------------------------------------------------------------------------


def test_systemd_unit_runs_the_engine_and_restarts_it() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "exec"
    assert service["ExecStart"] == "/opt/sla-engine/.venv/bin/sla-engine run"
    assert service["Restart"] == "on-failure"
    assert (service["User"], service["Group"]) == ("sla-engine", "sla-engine")
    assert service["EnvironmentFile"] == "-/etc/sla-engine/environment"
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_reload_signals_the_engine_to_reload_its_configuration() -> None:
    assert _unit()["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_compose_mounts_the_configuration_it_tells_how_to_reload() -> None:
    engine = SERVICES["engine"]
    config_dir = _environment(engine)["SLA_ENGINE_CONFIG_DIR"]
    assert ("../config", config_dir) in _bind_mounts(engine)
    assert (DEPLOY / "../config").resolve() == REPO / "config"
    assert "docker compose -f deploy/compose.yaml kill -s HUP engine" in (
        DEPLOY / "compose.yaml"
    ).read_text(encoding="utf-8")


def test_systemd_does_not_restart_an_engine_that_refused_its_configuration() -> None:
    assert _unit()["Service"]["RestartPreventExitStatus"].split() == [str(EXIT_CONFIG)]


def test_systemd_stop_timeout_exceeds_the_shutdown_grace() -> None:
    service = _unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert _seconds(service["TimeoutStopSec"]) > Settings().shutdown_grace_s


def test_systemd_unit_is_hardened() -> None:
    service = _unit()["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"


def test_systemd_unit_starts_after_the_network_and_local_services() -> None:
    # configparser keeps only the last After= line: every dependency stays on one.
    after = set(_unit()["Unit"]["After"].split())
    assert after >= {"network-online.target", "postgresql.service", "rabbitmq-server.service"}


def test_environment_example_names_real_settings() -> None:
    names = set(_SETTING_LINE.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))
    assert names <= SETTING_NAMES, names - SETTING_NAMES


def test_environment_example_lists_every_setting() -> None:
    names = set(_SETTING_LINE.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))
    assert names >= SETTING_NAMES, SETTING_NAMES - names


def test_environment_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every line taken at once, commented defaults included: each value must parse.
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for match in re.finditer(r"^#?\s*(SLA_ENGINE_[A-Z0-9_]+)=(.*)$", text, re.MULTILINE):
        monkeypatch.setenv(match.group(1), match.group(2).strip('"'))
    defaults = Settings.model_fields
    settings = Settings()
    assert settings.shutdown_grace_s == defaults["shutdown_grace_s"].default
    assert settings.http_port == defaults["http_port"].default
