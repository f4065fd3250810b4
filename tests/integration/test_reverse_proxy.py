"""The HTTP port behind ``deploy/nginx/sla-engine.conf``, in a real nginx (Debian's, which
``make test`` installs): TLS, a password, read only, /healthz open, /metrics not published,
and POST /reload refused: by nginx, and by the engine when a changed site lets it
through."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.config import load_versioned
from engine.ops.http_port import HttpPort, Parts
from engine.running import ConfigInForce, RunningConfig
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from tests.helpers import EXAMPLE_CONFIG, REPO
from tests.openapi_check import DOCUMENT, model_errors
from tests.services import free_port, poll

pytestmark = pytest.mark.integration
NGINX = "/usr/sbin/nginx"
SITE_FILE = REPO / "deploy" / "nginx" / "sla-engine.conf"
USER, PASSWORD = "frontend", "s3cret-for-the-test"


def site(text: str, values: dict[str, str]) -> str:
    """The shipped file with each ``# site:`` line's value replaced by ``values``' for its
    directive; every value must find its line, so a renamed one fails here."""
    replaced: list[str] = []

    def value(line: re.Match[str]) -> str:
        directive = line["directive"]
        replaced.append(directive)
        return f"{line['indent']}{directive} {values[directive]};"

    out = re.sub(
        r"^(?P<indent>[ \t]*)(?P<directive>[a-z_]+) [^;\n]+;[ \t]*# site:.*$",
        value,
        text,
        flags=re.M,
    )
    assert sorted(replaced) == sorted(values), "the site: lines of the file changed"
    return out


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    cert, key = folder / "proxy.pem", folder / "proxy.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=sla-engine test", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class Proxy:
    """An nginx with the shipped site in front of ``engine_port``, on a port of its own."""

    def __init__(self, folder: Path, engine_port: int, text: str) -> None:
        self.port = free_port()
        cert, key = certificate(folder)
        passwords = folder / "htpasswd"
        # As the README has administrators make it: bcrypt, with Debian's htpasswd.
        subprocess.run(["htpasswd", "-cbB", str(passwords), USER, PASSWORD],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        (folder / "site.conf").write_text(
            site(
                text,
                {
                    "server": f"127.0.0.1:{engine_port}",
                    "listen": f"127.0.0.1:{self.port} ssl",
                    "server_name": "sla-engine.test",
                    "ssl_certificate": str(cert),
                    "ssl_certificate_key": str(key),
                    "auth_basic_user_file": str(passwords),
                },
            )
        )
        # One process in the foreground, every file in the test's folder.
        (folder / "nginx.conf").write_text(
            f"daemon off;\nmaster_process off;\npid {folder}/nginx.pid;\n"
            f"error_log {folder}/error.log;\nevents {{}}\n"
            f"http {{\n  access_log off;\n"
            + "".join(f"  {kind}_temp_path {folder}/{kind};\n"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + f"  include {folder}/site.conf;\n}}\n"
        )  # fmt: skip
        self.folder = folder
        self.tls = ssl.create_default_context(cafile=str(cert))
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            NGINX, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
            "-e", str(self.folder / "error.log"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

        async def listening() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                _, err = await self.process.communicate()
                log = (self.folder / "error.log").read_text()
                raise AssertionError(f"nginx exited: {err.decode()}{log}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await poll(listening, timeout_s=30, what="nginx listening")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    async def ask(
        self, method: str, path: str, *, password: str | None = PASSWORD
    ) -> tuple[int, dict[str, str], bytes]:
        headers = (
            {"Authorization": aiohttp.encode_basic_auth(USER, password)}
            if password is not None
            else {}
        )
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"https://127.0.0.1:{self.port}{path}", headers=headers, ssl=self.tls,
                allow_redirects=False,
            ) as response,
        ):  # fmt: skip
            return response.status, dict(response.headers), await response.read()


@pytest.fixture
async def proxied(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Proxy, list[str]]]:
    """The shipped proxy in front of an HTTP port that offers POST /reload, and the
    reloads the port was asked for."""
    async with behind(SITE_FILE.read_text(), database_url, tmp_path) as serving:
        yield serving


@asynccontextmanager
async def behind(
    text: str, database_url: str, folder: Path
) -> AsyncIterator[tuple[Proxy, list[str]]]:
    """The site ``text`` in an nginx in front of a port that offers POST /reload."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    async with pool.acquire() as connection:
        await migrate(connection)
    reloads: list[str] = []

    async def reload(trigger: str) -> Any:
        reloads.append(trigger)
        raise AssertionError("a reload through the proxy")

    running = RunningConfig(ConfigInForce(load_versioned(EXAMPLE_CONFIG), datetime.now(UTC)))
    parts = Parts(running, database_url, tickets=PostgresReads(pool), reload=reload)
    port = HttpPort(parts, "127.0.0.1", 0)
    proxy: Proxy | None = None
    try:
        await port.start()
        proxy = Proxy(folder, port.port, text)
        await proxy.start()
        yield proxy, reloads
    finally:
        if proxy is not None:
            await proxy.stop()
        await port.stop()
        await pool.close()


async def test_the_proxy_asks_for_a_password_over_tls(proxied: tuple[Proxy, list[str]]) -> None:
    proxy, _ = proxied
    status, headers, _ = await proxy.ask("GET", "/tickets", password=None)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="sla-engine"'
    status, _, _ = await proxy.ask("GET", "/tickets", password="wrong")
    assert status == 401


async def test_with_the_password_the_port_answers_as_it_does_itself(
    proxied: tuple[Proxy, list[str]],
) -> None:
    proxy, _ = proxied
    status, headers, body = await proxy.ask("GET", "/tickets?department=okf&limit=5")
    assert status == 200, body
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    assert model_errors("WorklistPage", _json(body)) == []
    status, headers, body = await proxy.ask("GET", "/tickets/NEVER-SEEN")
    assert (status, headers["Content-Type"].split(";")[0]) == (404, "application/problem+json")
    assert model_errors("Problem", _json(body)) == []
    status, _, body = await proxy.ask("GET", "/openapi.json")
    assert (status, _json(body)) == (200, DOCUMENT)
    status, headers, _ = await proxy.ask("GET", "/departments")
    assert (status, headers["Location"]) == (308, "/departments/")
    status, headers, body = await proxy.ask("GET", "/departments/okf?lang=en")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    status, _, body = await proxy.ask("HEAD", "/departments/okf")
    assert (status, body) == (200, b"")


async def test_the_load_balancers_health_check_needs_no_password(
    proxied: tuple[Proxy, list[str]],
) -> None:
    proxy, _ = proxied
    status, _, body = await proxy.ask("GET", "/healthz", password=None)
    assert (status, _json(body)) == (200, {"status": "ok"})
    status, _, _ = await proxy.ask("POST", "/healthz", password=None)
    assert status == 403


async def test_metrics_are_not_published_through_the_proxy(
    proxied: tuple[Proxy, list[str]],
) -> None:
    proxy, _ = proxied
    status, _, body = await proxy.ask("GET", "/metrics")
    assert status == 404
    assert b"sla_" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_the_proxy_passes_reads_only(proxied: tuple[Proxy, list[str]], method: str) -> None:
    proxy, reloads = proxied
    for path in ("/reload", "/tickets"):
        status, _, _ = await proxy.ask(method, path)
        assert status == 403, (method, path)
    assert reloads == []


def _json(body: bytes) -> Any:
    return json.loads(body)


async def test_a_reload_let_through_by_a_changed_site_is_refused_by_the_engine(
    database_url: str, tmp_path: Path
) -> None:
    # The site's limit_except taken out, as a careless edit might: the engine still
    # refuses a POST /reload that comes through the proxy (its X-Forwarded-For).
    shipped = SITE_FILE.read_text()
    opened = re.sub(r"\n\s*limit_except GET \{\s*deny all;\s*\}", "", shipped)
    assert "limit_except" not in opened
    async with behind(opened, database_url, tmp_path) as (proxy, reloads):
        status, headers, body = await proxy.ask("POST", "/reload")
        assert (status, headers["Content-Type"].split(";")[0]) == (
            403,
            "application/problem+json",
        )
        assert "through a proxy" in _json(body)["detail"]
        assert reloads == []
