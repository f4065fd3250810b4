"""The webhook channel: escalation notices POSTed as signed JSON, and the signature check."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable

import aiohttp
from yarl import URL

from engine.notify.notice import ChannelName, DeliveryError, Notice, body_of
from engine.settings import MIN_WEBHOOK_SECRET_BYTES

SIGNATURE_HEADER = "X-SLA-Engine-Signature"
NOTICE_ID_HEADER = "X-SLA-Engine-Notice-Id"
SIGNATURE_TOLERANCE_S = 300
"""How far a signature's time may lie from the receiver's clock before it is refused."""
USER_AGENT = "sla-engine"
_ERROR_SNIPPET_BYTES = 300  # of a refusing response's body, to say why in the error
_UNIX_TIME = re.compile(r"[0-9]{1,12}")  # ASCII digits only, and few enough for int()


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Return the signature header value: ``t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``."""
    # The time is signed with the body, as in Stripe's header, so that a receiver can
    # refuse a notice captured and replayed later.
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Tell whether a signature header matches the body and is recent, in constant time."""
    if header is None:
        return False
    fields = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for name, _, value in fields if name == "t"]
    # Several v1 values are accepted, so that a sender may sign with an old and a new
    # secret while the secret is being changed.
    signatures = [value for name, _, value in fields if name == "v1"]
    if len(stamps) != 1 or not _UNIX_TIME.fullmatch(stamps[0]) or not signatures:
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body).encode()
    # Bytes, because compare_digest refuses str with non-ASCII characters in it.
    return any(
        hmac.compare_digest(expected, value.encode("utf-8", "replace")) for value in signatures
    )


def _where(url: URL) -> str:
    # Only the origin: webhook URLs often carry a token in the path or query.
    return str(url.origin()) if url.absolute else "(relative URL)"


def _redirect_target(url: URL, location: str | None) -> str:
    if not location:
        return "nowhere"
    try:
        return _where(url.join(URL(location)))
    except ValueError:
        return "an unparsable Location"


def _is_temporary(status: int) -> bool:
    return status in (408, 429) or status >= 500


class WebhookChannel:
    """POSTs each notice's payload to the URL in ``notice.recipient``."""

    name: ChannelName = "webhook"

    def __init__(
        self,
        *,
        secret: str | None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if secret is not None and len(secret.encode()) < MIN_WEBHOOK_SECRET_BYTES:
            raise ValueError(f"a webhook secret has at least {MIN_WEBHOOK_SECRET_BYTES} bytes")
        self._secret = secret
        self._clock = clock
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        secret = None if self._secret is None else "***"
        return f"WebhookChannel(secret={secret!r}, timeout_s={self.timeout_s})"

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use so that it belongs to the running loop, not the constructor's.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def deliver(self, notice: Notice) -> None:
        """POST one notice, or raise ``DeliveryError`` saying what the receiver answered."""
        try:
            url = URL(notice.recipient)
        except ValueError as exc:
            raise DeliveryError(f"not a webhook URL: {exc}", permanent=True) from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise DeliveryError(f"not an http(s) URL with a host: {_where(url)}", permanent=True)
        try:
            body = body_of(notice.payload)
        except (TypeError, ValueError) as exc:
            raise DeliveryError(f"payload is not JSON: {exc}", permanent=True) from exc
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(notice.notice_id),
            NOTICE_ID_HEADER: str(notice.notice_id),
        }
        if self._secret is not None:
            # Signed at each attempt: a retry hours later carries a time the receiver accepts.
            headers[SIGNATURE_HEADER] = sign(self._secret, body, int(self._clock()))
        where = _where(url)
        try:
            # No redirects: a redirect could carry a signed notice to a host nobody configured.
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status <= 299:
                    return
                if 300 <= status <= 399:
                    target = _redirect_target(url, response.headers.get("Location"))
                    raise DeliveryError(
                        f"webhook {where} answered {status} {response.reason}, a redirect to "
                        f"{target}, not followed: configure the final URL",
                        permanent=True,
                    )
                snippet = await _snippet(response)
                raise DeliveryError(
                    f"webhook {where} answered {status} {response.reason}: {snippet}",
                    permanent=not _is_temporary(status),
                )
        except (aiohttp.ClientError, OSError) as exc:  # OSError covers TimeoutError
            raise DeliveryError(
                f"webhook {where} unreachable: {type(exc).__name__}: {exc}", permanent=False
            ) from exc

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _snippet(response: aiohttp.ClientResponse) -> str:
    """Return the start of a refusing response's body, or "" when it cannot be read."""
    try:
        raw = await response.content.read(_ERROR_SNIPPET_BYTES)
    except (aiohttp.ClientError, OSError) as exc:
        # The status already decides the outcome; a body lost on the way must not change it.
        return f"(body unreadable: {type(exc).__name__})"
    return raw.decode("utf-8", "replace").strip()
