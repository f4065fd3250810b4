"""``sla-engine reload``: ask the engine on this host to load its configuration again.

It calls the engine's POST /reload on the loopback address of the HTTP port the settings
name, and reads the outcome: the new version, or the refusal with check-config's
file:line problems. Exit status: 0 when the configuration in force is the one on disk
(reloaded, or unchanged), 1 when the engine refused it, ``EXIT_UNAVAILABLE`` when no
engine answered or it would not reload.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from typing import Any

import aiohttp

# sysexits' EX_UNAVAILABLE: no engine to ask, which running the command again cannot fix.
EXIT_UNAVAILABLE = 69
EXIT_REFUSED = 1


def reload_url(host: str, port: int) -> str:
    """Where the engine listening on ``host``:``port`` answers POST /reload from here."""
    # Listening on every address includes the loopback one, the only one answered.
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
    host = wildcard.get(host, host)
    if ":" in host:  # an IPv6 address (a host name has no colon): bracketed in a URL
        host = f"[{ipaddress.IPv6Address(host)}]"
    return f"http://{host}:{port}/reload"


async def post_reload(url: str, timeout_s: float) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of POST ``url``."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url) as answer:
        body: dict[str, Any] = await answer.json(content_type=None)
        return answer.status, body


def reload_command(url: str, timeout_s: float) -> int:
    """Ask for a reload at ``url``, print the outcome; the exit status."""
    try:
        status, body = asyncio.run(post_reload(url, timeout_s))
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout_s:g} s"
        elif isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or repr(exc.os_error)
        else:
            reason = repr(exc)
        print(f"sla-engine: no engine answered at {url}: {reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if status == 200 and body.get("status") == "reloaded":
        print(f"reloaded: configuration version {body['previous']} -> {body['version']}")
        return 0
    if status == 200 and body.get("status") == "unchanged":
        print(f"unchanged: the engine already runs configuration version {body['version']}")
        return 0
    if status == 422 and body.get("status") == "refused":
        problems = body.get("problems", [])
        print(
            f"refused: the engine keeps configuration version {body['version']}; "
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:",
            file=sys.stderr,
        )
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_REFUSED
    detail = body.get("detail", body)
    print(f"sla-engine: {url} answered {status}: {detail}", file=sys.stderr)
    return EXIT_UNAVAILABLE
