"""Email: any SMTP server (production), or `.eml` files in a local directory (embedded).

Platform mail carries secrets (verification and password-reset links), so nothing here logs a
body: the SMTP mailer logs recipients and subject, the embedded one logs only the file it wrote.
With no SMTP host configured, a newcomer opens verification links from the `.eml` files under
`<data_dir>/mail/` (any mail client opens them; they are plain MIME text).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

import dagster as dg

from domain.settings import Settings

log = logging.getLogger(__name__)


class MailerError(Exception):
    """Sending failed. `permanent` is true when retrying cannot help (a 5xx reply)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class OutgoingEmail:
    """One message. `to` may be given as one address or several; it is kept as a tuple."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        to = (self.to,) if isinstance(self.to, str) else tuple(self.to)
        if not to or not all(address.strip() for address in to):
            raise ValueError("an email needs at least one recipient")
        object.__setattr__(self, "to", to)


def build_message(message: OutgoingEmail, sender: str) -> EmailMessage:
    """The MIME message: text/plain, plus text/html as an alternative when given; UTF-8 throughout.

    Header values containing line breaks are refused by the email package (no header injection).
    """
    mime = EmailMessage()
    mime["From"] = sender
    mime["To"] = ", ".join(message.to)
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    mime["Message-ID"] = make_msgid(domain=domain)
    for name, value in message.headers.items():
        if name in mime:
            mime.replace_header(name, value)
        else:
            mime[name] = value
    mime.set_content(message.text, charset="utf-8")
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html", charset="utf-8")
    return mime


class Mailer(dg.ConfigurableResource, ABC):
    """Sends one email. Raises `MailerError` when it could not be handed over."""

    @abstractmethod
    def send(self, message: OutgoingEmail) -> None: ...


class SmtpMailer(Mailer):
    """Any SMTP server (Postfix, Amazon SES's SMTP interface, Mailpit...).

    With `starttls`, the connection is upgraded when the server offers STARTTLS; a server that does
    not offer it still gets mail, but never the credentials: with a username configured the send is
    refused rather than logging in over plain text. `ca_file` trusts a private CA.
    """

    host: str
    port: int = 587
    username: str = ""
    password: str = ""
    starttls: bool = True
    sender: str = "thmnayah <no-reply@localhost>"
    timeout: float = 30.0
    ca_file: str = ""

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    def send(self, message: OutgoingEmail) -> None:
        mime = build_message(message, self.sender)
        if not (self.username + self.password).isascii():
            # smtplib encodes AUTH as ASCII; fail clearly instead of with a UnicodeEncodeError mid-session.
            raise MailerError("SMTP username and password must be ASCII", permanent=True)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                encrypted = False
                if self.starttls and smtp.has_extn("starttls"):
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                    encrypted = True
                if self.username:
                    if self.starttls and not encrypted:
                        raise MailerError(
                            f"{self.host}:{self.port} does not offer STARTTLS; "
                            "refusing to send SMTP credentials in clear text",
                            permanent=True,
                        )
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(mime)
        except smtplib.SMTPResponseException as exc:
            raise MailerError(
                f"SMTP server {self.host}:{self.port} replied {exc.smtp_code}: {exc.smtp_error!r}",
                permanent=exc.smtp_code >= 500,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise MailerError(
                f"every recipient was refused: {sorted(exc.recipients)}",
                permanent=all(code >= 500 for code in codes),
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailerError(f"SMTP server {self.host}:{self.port} failed: {exc}") from exc
        if refused:
            log.warning("email %r: recipients refused: %s", message.subject, sorted(refused))
        log.info("email %r sent to %s", message.subject, ", ".join(message.to))


class OutboxMailer(Mailer):
    """Embedded mode without SMTP: each message becomes an `.eml` file in `maildir` (mode 0600).

    File names sort in sending order. Only the path is logged, never the body.
    """

    maildir: str
    sender: str = "thmnayah <no-reply@localhost>"

    def send(self, message: OutgoingEmail) -> None:
        mime = build_message(message, self.sender)
        directory = Path(self.maildir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = path.with_name(f".{path.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(mime.as_bytes())
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        log.info("email written to %s (no SMTP host configured)", path)

    def messages(self) -> list[Path]:
        """The `.eml` files written so far, oldest first."""
        directory = Path(self.maildir)
        return sorted(directory.glob("*.eml")) if directory.is_dir() else []


def mailer_for(settings: Settings) -> Mailer:
    """SMTP when `THMNAYAH_SMTP_HOST` is set, else `.eml` files under `<data_dir>/mail`."""
    if settings.smtp_host:
        return SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            sender=settings.smtp_from,
        )
    return OutboxMailer(maildir=str(settings.data_dir / "mail"), sender=settings.smtp_from)
