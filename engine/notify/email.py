"""The e-mail channel: notices sent as mail over SMTP.

Plain text; a notice with HTML (a monthly report) goes as multipart/alternative, the
text first, and its attachments (the report's CSV) beside.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr

import aiosmtplib

from engine.notify.notice import ChannelName, DeliveryError, Notice

MESSAGE_ID_DOMAIN = "sla-engine"
NOTICE_ID_HEADER = "X-SLA-Engine-Notice-Id"


def message_of(notice: Notice, sender: str) -> EmailMessage:
    """Build the mail for one notice; raises ``ValueError`` for an address unfit for mail."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((notice.recipient_name, notice.recipient))
    message["Subject"] = notice.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # The id is stable across resends, so a receiver's mail system can drop a duplicate.
    message["Message-ID"] = f"<{notice.notice_id}@{MESSAGE_ID_DOMAIN}>"
    message[NOTICE_ID_HEADER] = str(notice.notice_id)
    thread = notice.payload.get("thread")
    if isinstance(thread, str) and thread:
        # Every notice of one ticket's clock replies to the same (never sent) root, as
        # GitHub's mails reply to their issue: readers that thread by References (and not
        # only by subject) keep each step of the clock in one conversation.
        root = f"<{thread}@{MESSAGE_ID_DOMAIN}>"
        message["In-Reply-To"] = root
        message["References"] = root
    # Quoted-printable keeps the Danish letters intact through servers without 8BITMIME.
    message.set_content(notice.body, charset="utf-8", cte="quoted-printable")
    if notice.html is not None:
        message.add_alternative(
            notice.html, subtype="html", charset="utf-8", cte="quoted-printable"
        )
    for attachment in notice.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content.encode("utf-8"),
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
            params={"charset": "utf-8"},
        )
    return message


def _is_permanent(code: int) -> bool:
    # RFC 5321: 5yz is a permanent negative reply, 4yz a transient one.
    return 500 <= code <= 599


class SmtpChannel:
    """Sends each notice over its own SMTP connection; robust rather than fast."""

    name: ChannelName = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        starttls: bool = False,
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        allow_plain_auth: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        if starttls and use_tls:
            raise ValueError("choose one of starttls and use_tls (implicit TLS), not both")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        if username is not None and not (starttls or use_tls or allow_plain_auth):
            raise ValueError("a login without starttls or use_tls sends the password in clear")
        self.host = host
        self.port = port
        self.sender = sender
        # MAIL FROM takes the bare address; the From header keeps a display name if given.
        self._envelope_sender = parseaddr(sender)[1] or sender
        self.starttls = starttls
        self.use_tls = use_tls
        self.username = username
        self._password = password
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        password = None if self._password is None else "***"
        return (
            f"SmtpChannel(host={self.host!r}, port={self.port}, sender={self.sender!r}, "
            f"starttls={self.starttls}, use_tls={self.use_tls}, username={self.username!r}, "
            f"password={password!r}, timeout_s={self.timeout_s})"
        )

    async def deliver(self, notice: Notice) -> None:
        """Send one notice, or raise ``DeliveryError`` saying what the server answered."""
        try:
            message = message_of(notice, self.sender)
        except ValueError as exc:  # a non-ASCII address, a line break in a header
            raise DeliveryError(f"cannot build the mail: {exc}", permanent=True) from exc
        server = f"SMTP server {self.host}:{self.port}"
        try:
            await aiosmtplib.send(
                message,
                sender=self._envelope_sender,
                recipients=[notice.recipient],
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                use_tls=self.use_tls,
                # False rather than aiosmtplib's None: no silent upgrade the config did not ask
                # for, which would fail on a server with a certificate nobody can verify.
                start_tls=self.starttls,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusals = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            permanent = all(_is_permanent(r.code) for r in exc.recipients)
            raise DeliveryError(
                f"{server} refused recipient {notice.recipient}: {refusals}", permanent=permanent
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{server} answered {exc.code} {exc.message}", permanent=_is_permanent(exc.code)
            ) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            # The server does not offer the TLS or authentication the config asks for.
            raise DeliveryError(f"{server}: {exc.message}", permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections and timeouts: the server may be back soon.
            raise DeliveryError(f"{server} unreachable: {exc}", permanent=False) from exc

    async def close(self) -> None:
        """Release connections: none are kept between notices."""
