"""Email transports, and the one place that chooses among them.

- `SmtpEmailTransport`: any SMTP server, a few reused connections per batch (aiosmtplib);
- `SesEmailTransport`: Amazon SES v2 API, raw MIME (boto3, imported when first used);
- `FileEmailTransport`: `.eml` files in a directory, the embedded default.

All three send the same MIME message (`email_bytes`). `email_transport(settings, directory)` picks
one by `THMNAYAH_EMAIL_BACKEND`; the API process uses it for account mail and
`orchestration.deployment` follows the same choice (`email_backend`) for the delivery drain. Nothing
here logs a body or a subject: account mail carries secrets (verification and reset links).
"""

from __future__ import annotations

import email.policy
import logging
import os
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import aiosmtplib
import anyio

from domain.notifications.outgoing import Delivered, DeliveryFailed, Outcome, Outgoing
from domain.settings import Settings
from resources.notifiers.base import DeliveryTransport, clip, log_batch, send_each

log = logging.getLogger(__name__)

SMTP_BOUNCE_CODES = frozenset({550, 551, 553})  # RCPT refusals: no such mailbox / not local / bad name
SES_PERMANENT_CODES = frozenset(
    {"MessageRejected", "MailFromDomainNotVerifiedException", "BadRequestException", "InvalidParameterValue"}
)
EMAIL_BACKENDS = ("smtp", "ses", "files")


def email_backend(settings: Settings) -> str:
    """`smtp`, `ses` or `files`: `THMNAYAH_EMAIL_BACKEND`, where `auto` means smtp when
    `THMNAYAH_SMTP_HOST` is set, else files."""
    if settings.email_backend != "auto":
        return settings.email_backend
    return "smtp" if settings.smtp_host else "files"


def account_mail_dir(settings: Settings) -> Path:
    """Where the files backend writes account mail (verification and reset links)."""
    return settings.data_dir / "mail"


def notification_mail_dir(settings: Settings) -> Path:
    """Where the files backend writes the notification deliveries."""
    return settings.data_dir / "mail" / "notifications"


def email_transport(settings: Settings, directory: Path) -> DeliveryTransport:
    """The configured email transport as a plain client; `directory` is where the files backend
    writes (the other backends ignore it)."""
    backend = email_backend(settings)
    if backend == "smtp":
        return SmtpEmailTransport(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            sender=settings.smtp_from,
        )
    if backend == "ses":
        return SesEmailTransport(
            region=settings.ses_region, endpoint_url=settings.ses_endpoint_url, sender=settings.smtp_from
        )
    return FileEmailTransport(directory=str(directory.resolve()), sender=settings.smtp_from)


@dataclass(frozen=True)
class EmailBytes:
    data: bytes
    message_id: str


def email_bytes(item: Outgoing, sender: str, *, linesep: str = "\r\n") -> EmailBytes:
    """The MIME message of an email item, flattened: the structure of
    the usual headers (From, To, Subject, Date, Message-ID), text/plain plus text/html as an
    alternative (UTF-8, base64 bodies) and `X-Thmnayah-Delivery: <delivery id>`.

    It is built with the email package's compat32 API rather than by `build_message`: the modern
    API parses every header on the way in and refolds it on the way out, about 5 ms a message on a
    small machine, which alone caps an SMTP batch below 200 messages/s; this costs about 1 ms.
    As in `build_message`, a line break in a header value is refused (ValueError): no header
    injection. A test checks that both builders' messages read back the same.
    """
    for name, value in (("From", sender), ("To", item.to), ("Subject", item.subject)):
        if "\r" in value or "\n" in value:
            raise ValueError(f"the {name} header may not contain a line break")
    from_name, from_address = parseaddr(sender)
    to_name, to_address = parseaddr(item.to)
    if "@" not in to_address:
        raise ValueError(f"{item.to!r} is not an email address")
    if not (to_address + from_address).isascii():
        raise ValueError("non-ASCII (SMTPUTF8) email addresses are not supported")
    plain = MIMEText(item.text, "plain", "utf-8")
    if item.html is None:
        mime: Message = plain
    else:
        mime = MIMEMultipart("alternative")
        mime.attach(plain)
        mime.attach(MIMEText(item.html, "html", "utf-8"))
    message_id = make_msgid(domain=from_address.rpartition("@")[2] or "localhost")
    mime["From"] = formataddr((from_name, from_address), charset="utf-8")
    mime["To"] = formataddr((to_name, to_address), charset="utf-8")
    mime["Subject"] = Header(item.subject, "utf-8") if not item.subject.isascii() else item.subject
    mime["Date"] = formatdate(usegmt=True)
    mime["Message-ID"] = message_id
    mime["X-Thmnayah-Delivery"] = str(item.delivery_id)
    data = mime.as_bytes(policy=email.policy.compat32.clone(linesep=linesep))
    return EmailBytes(data, message_id)


def _envelope_address(value: str) -> str:
    return parseaddr(value)[1] or value


@dataclass(kw_only=True)
class SmtpEmailTransport(DeliveryTransport):
    """Any SMTP server, over `connections` connections kept open for the whole batch.

    STARTTLS is used when the server offers it, and credentials
    are never sent over an unencrypted connection while `starttls` is on. A connection the server
    drops between two messages is reopened and the message sent on the new one. When the server
    cannot be reached (refused, timed out, login refused), the rest of the batch is not attempted
    and fails retryably with the same reason.
    """

    channel: ClassVar[str] = "email"

    host: str
    port: int = 587
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = True
    sender: str
    timeout_seconds: float = 10.0
    connections: int = 4
    ca_file: str = ""

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        batch = _SmtpBatch(self)
        # At most `connections` sends run at once, so a free connection is always in the pool.
        pool = [_SmtpConnection(batch) for _ in range(max(1, min(self.connections, len(items))))]
        idle = list(pool)

        async def send_one(item: Outgoing) -> Outcome:
            connection = idle.pop()
            try:
                return await connection.deliver(item)
            finally:
                idle.append(connection)

        try:
            return await send_each(self.channel, items, len(pool), send_one)
        finally:
            with anyio.CancelScope(shield=True):
                for connection in pool:
                    await connection.close()


class _SmtpBatch:
    """What the connections of one `send_batch` share."""

    def __init__(self, config: SmtpEmailTransport) -> None:
        self.config = config
        self.envelope_sender = _envelope_address(config.sender)
        self.server = f"SMTP server {config.host}:{config.port}"
        self.down: str | None = None  # set when the server cannot be reached: the rest fails fast
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.config.ca_file or None)
        return self._tls


class _SmtpConnection:
    def __init__(self, batch: _SmtpBatch) -> None:
        self.batch = batch
        self.smtp: aiosmtplib.SMTP | None = None
        self.sent = 0  # messages accepted on the current connection

    async def _open(self) -> aiosmtplib.SMTP:
        config, batch = self.batch.config, self.batch
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            timeout=config.timeout_seconds,
            start_tls=None if config.starttls else False,  # None: upgrade when the server offers it
            tls_context=batch.tls_context() if config.starttls else None,
        )
        try:
            await smtp.connect()
            if config.username:
                encrypted = smtp.get_transport_info("sslcontext") is not None
                if config.starttls and not encrypted:
                    raise DeliveryFailed(
                        f"{batch.server} does not offer STARTTLS; "
                        "refusing to send SMTP credentials in clear text"
                    )
                await smtp.login(config.username, config.password)
        except DeliveryFailed:
            smtp.close()
            raise
        except aiosmtplib.SMTPTimeoutError:
            smtp.close()
            raise DeliveryFailed(f"{batch.server} timed out after {config.timeout_seconds:g} s") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise DeliveryFailed(
                f"{batch.server} refused the login: {exc.code} {clip(exc.message)}"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise DeliveryFailed(
                f"{batch.server} unreachable: {type(exc).__name__}: {clip(str(exc))}"
            ) from None
        self.sent = 0
        return smtp

    def _drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    async def close(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                with anyio.move_on_after(min(2.0, self.batch.config.timeout_seconds)):
                    await self.smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
        self._drop()

    async def deliver(self, item: Outgoing) -> Outcome:
        batch = self.batch
        if batch.down is not None:
            return DeliveryFailed(f"not attempted: {batch.down}")
        try:
            message = email_bytes(item, batch.config.sender)
        except (ValueError, TypeError) as exc:
            return DeliveryFailed(f"cannot build the message: {clip(str(exc))}", permanent=True)
        recipient = _envelope_address(item.to)
        for attempt in (1, 2):
            if self.smtp is None:
                try:
                    self.smtp = await self._open()
                except DeliveryFailed as failed:
                    batch.down = failed.reason
                    return failed
            reused = self.sent > 0
            try:
                _, reply = await self.smtp.sendmail(batch.envelope_sender, [recipient], message.data)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients[0]
                return DeliveryFailed(
                    f"{batch.server} refused the recipient: {refused.code} {clip(refused.message)}",
                    permanent=refused.code >= 500,
                    bounced=refused.code in SMTP_BOUNCE_CODES,
                    metadata={"smtp_code": refused.code},
                )
            except aiosmtplib.SMTPServerDisconnected as exc:
                self._drop()
                if attempt == 1 and reused:
                    continue  # the server closed a connection we had used: once more on a new one
                return DeliveryFailed(f"{batch.server} dropped the connection: {clip(str(exc))}")
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 or not self.smtp.is_connected:  # 421: the server closes the channel
                    self._drop()
                return DeliveryFailed(
                    f"{batch.server} replied {exc.code} {clip(exc.message)}",
                    permanent=exc.code >= 500,
                    metadata={"smtp_code": exc.code},
                )
            except aiosmtplib.SMTPTimeoutError:
                self._drop()
                batch.down = f"{batch.server} timed out after {batch.config.timeout_seconds:g} s"
                return DeliveryFailed(batch.down)
            except aiosmtplib.SMTPNotSupported as exc:  # e.g. a non-ASCII address without SMTPUTF8
                return DeliveryFailed(f"{batch.server}: {clip(str(exc))}", permanent=True)
            except ValueError as exc:  # an address aiosmtplib will not put on the wire
                return DeliveryFailed(f"invalid address: {clip(str(exc))}", permanent=True)
            except (aiosmtplib.SMTPException, OSError) as exc:
                self._drop()
                return DeliveryFailed(f"{batch.server} failed: {type(exc).__name__}: {clip(str(exc))}")
            self.sent += 1
            return Delivered(provider_id=message.message_id, metadata={"smtp_reply": clip(reply)})
        raise AssertionError("unreachable")  # the loop always returns


@dataclass(kw_only=True)
class SesEmailTransport(DeliveryTransport):
    """Amazon SES (API v2 `SendEmail` with `Content.Raw`: the same MIME as over SMTP).

    boto3 is synchronous: each call runs in a worker thread, at most `concurrency` at a time.
    Without `access_key_id`, boto3's default credential chain is used (instance role, env...).
    """

    channel: ClassVar[str] = "email"

    region: str
    endpoint_url: str = ""
    sender: str
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    concurrency: int = 8
    timeout_seconds: float = 10.0

    _client: Any = field(default=None, init=False, repr=False, compare=False)
    _client_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def _ses(self) -> Any:
        """The boto3 client (thread-safe, not tied to an event loop), made once."""
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                session = boto3.session.Session(
                    aws_access_key_id=self.access_key_id or None,
                    aws_secret_access_key=self.secret_access_key or None,
                    region_name=self.region,
                )
                self._client = session.client(
                    "sesv2",
                    endpoint_url=self.endpoint_url or None,
                    config=Config(
                        retries={"max_attempts": 3, "mode": "standard"},
                        connect_timeout=self.timeout_seconds,
                        read_timeout=self.timeout_seconds,
                        max_pool_connections=max(1, self.concurrency),
                    ),
                )
            return self._client

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        from botocore.exceptions import BotoCoreError, ClientError

        if not items:
            return []
        limiter = anyio.CapacityLimiter(max(1, self.concurrency))
        try:
            client = await anyio.to_thread.run_sync(self._ses, limiter=limiter)
        except (BotoCoreError, ValueError) as exc:
            failed = DeliveryFailed(f"SES client: {type(exc).__name__}: {clip(str(exc))}")
            return [failed for _ in items]

        async def send_one(item: Outgoing) -> Outcome:
            try:
                raw = email_bytes(item, self.sender).data
            except (ValueError, TypeError) as exc:
                return DeliveryFailed(f"cannot build the message: {clip(str(exc))}", permanent=True)
            call = partial(
                client.send_email,
                # The bare address: SES reads the display name from the MIME From header, and
                # would want a non-ASCII one RFC 2047-encoded here.
                FromEmailAddress=_envelope_address(self.sender),
                Destination={"ToAddresses": [item.to]},
                Content={"Raw": {"Data": raw}},
            )
            try:
                answer = await anyio.to_thread.run_sync(call, limiter=limiter)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                return DeliveryFailed(
                    f"SES {code or status}: {clip(error.get('Message', ''))}",
                    permanent=code in SES_PERMANENT_CODES,
                    metadata={"ses_code": code},
                )
            except BotoCoreError as exc:  # connection errors, timeouts (after botocore's own retries)
                return DeliveryFailed(f"SES unreachable: {type(exc).__name__}: {clip(str(exc))}")
            return Delivered(provider_id=answer.get("MessageId", ""))

        return await send_each(self.channel, items, self.concurrency, send_one)


@dataclass(kw_only=True)
class FileEmailTransport(DeliveryTransport):
    """The embedded default: each message becomes `<delivery_id>.eml` in `directory` (mode 0600,
    written whole then renamed). A retried delivery
    overwrites its own file. Any mail client opens them."""

    channel: ClassVar[str] = "email"

    directory: str
    sender: str

    def _write(self, item: Outgoing) -> Outcome:
        try:
            data = email_bytes(item, self.sender, linesep="\n").data
        except (ValueError, TypeError) as exc:
            return DeliveryFailed(f"cannot build the message: {clip(str(exc))}", permanent=True)
        directory = Path(self.directory)
        path = directory / f"{item.delivery_id}.eml"
        partial_path = path.with_name(f".{path.name}.partial")
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(partial_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            partial_path.replace(path)
        except OSError as exc:
            return DeliveryFailed(f"cannot write {path}: {exc.strerror or exc}")
        finally:
            partial_path.unlink(missing_ok=True)
        return Delivered(provider_id=str(path))

    def _write_all(self, items: Sequence[Outgoing]) -> list[Outcome]:
        return [self._write(item) for item in items]

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        outcomes = await anyio.to_thread.run_sync(self._write_all, items)
        if items:
            log_batch(self.channel, items, outcomes)
            log.info("email written to %s (no mail server configured)", self.directory)
        return outcomes
