"""Delivery transports: how a batch of `Outgoing` messages leaves the platform, one per channel.

Each transport is a Dagster resource implementing `domain.notifications.outgoing.Transport`:
`send_batch` answers one `Delivered` or `DeliveryFailed` per item, in order, and never raises for
one item's failure. It is a coroutine, so synchronous Dagster code calls it with
`anyio.run(transport.send_batch, items)`; network clients (httpx, aiosmtplib) are created inside
each call, so nothing bound to an event loop outlives it.

- email: `SmtpEmailTransport` (any SMTP server, a few reused connections per batch),
  `SesEmailTransport` (Amazon SES v2 API, raw MIME) or `FileEmailTransport` (`.eml` files; the
  embedded default);
- push: `FcmPushTransport` (Firebase Cloud Messaging HTTP v1);
- sms: `SmsGatewayTransport` (a JSON-over-HTTP gateway);
- webhook: `WebhookTransport` (signed with `domain.notifications.webhooks`);
- `UnconfiguredTransport` refuses every item with a reason that says what to configure.

Failures that a retry can fix (timeouts, 4xx SMTP replies, HTTP 429/5xx, refused credentials,
an unreachable server) are retryable; refusals of the message or address itself are permanent, and
an address the provider says does not exist is `bounced`. Problems with the connection or the
credentials are retryable on purpose: an operator fixes them, and the queued messages then go out.

Nothing here logs a message body, a subject or a secret: logs carry channels, counts, delivery
ids and failure reasons.
"""

from __future__ import annotations

import email.policy
import json
import logging
import os
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid, parseaddr, parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import aiosmtplib
import anyio
import dagster as dg
import httpx
from pydantic import PrivateAttr

from domain.notifications import webhooks
from domain.notifications.outgoing import Delivered, DeliveryFailed, Outcome, Outgoing
from resources import webhook_http

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO; a webhook URL may carry a token, so keep it quiet.
logging.getLogger("httpx").setLevel(logging.WARNING)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
REASON_CHARS = 300  # how much of a provider's error text is kept in a reason
MAX_RESPONSE_BYTES = 64 * 1024  # how much of an HTTP answer is read (a webhook may answer anything)
SMTP_BOUNCE_CODES = frozenset({550, 551, 553})  # RCPT refusals: no such mailbox / not local / bad name
SES_PERMANENT_CODES = frozenset(
    {"MessageRejected", "MailFromDomainNotVerifiedException", "BadRequestException", "InvalidParameterValue"}
)


class DeliveryTransport(dg.ConfigurableResource, ABC):
    """The interface of every transport (type-hint this). Subclasses say their `channel`."""

    @abstractmethod
    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        """One outcome per item, in order; one item's failure is its outcome, never an exception."""


# --- shared plumbing ------------------------------------------------------------------------------


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


async def _each(
    channel: str,
    items: Sequence[Outgoing],
    limit: int,
    send_one: Callable[[Outgoing], Awaitable[Outcome]],
) -> list[Outcome]:
    """Run `send_one` over `items`, at most `limit` at a time, keeping the order of the answers.

    A `DeliveryFailed` raised by `send_one` becomes that item's outcome; so does any other
    exception (retryable: a bug or an unforeseen error must not lose the rest of the batch).
    """
    results: list[Outcome | None] = [None] * len(items)
    pending: Iterator[tuple[int, Outgoing]] = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:  # the iterator is shared: each worker takes the next item
            try:
                results[index] = await send_one(item)
            except DeliveryFailed as failed:
                results[index] = failed
            except Exception as exc:
                log.exception("%s delivery %s failed unexpectedly", channel, item.delivery_id)
                results[index] = DeliveryFailed(f"unexpected error: {type(exc).__name__}: {_clip(str(exc))}")

    if items:
        async with anyio.create_task_group() as group:
            for _ in range(max(1, min(limit, len(items)))):
                group.start_soon(worker)
    outcomes = [outcome for outcome in results if outcome is not None]
    assert len(outcomes) == len(items)
    _log_batch(channel, items, outcomes)
    return outcomes


def _log_batch(channel: str, items: Sequence[Outgoing], outcomes: Sequence[Outcome]) -> None:
    if not items:
        return
    failed = [(item, o) for item, o in zip(items, outcomes, strict=True) if isinstance(o, DeliveryFailed)]
    if not failed:
        log.info("%s: %d delivered", channel, len(items))
        return
    sample = "; ".join(f"{item.delivery_id}: {o.reason}" for item, o in failed[:5])
    log.warning(
        "%s: %d delivered, %d failed (%d permanent); first failures: %s",
        channel,
        len(items) - len(failed),
        len(failed),
        sum(o.permanent for _, o in failed),
        sample,
    )


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """An HTTP `Retry-After` value (seconds, or an HTTP date) as seconds from now; None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def text(self) -> str:
        return _clip(self.body.decode("utf-8", errors="replace"))

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers.get("retry-after"))


def _http_client(timeout_seconds: float, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds),  # each of connect / read / write / pool
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
    )


async def _post(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout_seconds: float,
) -> _Reply:
    """POST and read at most `MAX_RESPONSE_BYTES` of the answer, all within `timeout_seconds`.

    Timeouts and connection errors raise a retryable `DeliveryFailed`.
    """
    try:
        with anyio.fail_after(timeout_seconds):
            async with client.stream("POST", url, content=content, headers=headers) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_RESPONSE_BYTES:
                        break
                return _Reply(response.status_code, response.headers, body[:MAX_RESPONSE_BYTES])
    except (TimeoutError, httpx.TimeoutException):
        raise DeliveryFailed(f"timed out after {timeout_seconds:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"request failed: {type(exc).__name__}: {_clip(str(exc))}") from None


# --- email ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailBytes:
    data: bytes
    message_id: str


def email_bytes(item: Outgoing, sender: str, *, linesep: str = "\r\n") -> EmailBytes:
    """The MIME message of an email item, flattened: the structure of
    `resources.email.build_message` (From, To, Subject, Date, Message-ID; text/plain, plus text/html
    as an alternative; UTF-8, base64 bodies) and `X-Thmnayah-Delivery: <delivery id>`.

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


class SmtpEmailTransport(DeliveryTransport):
    """Any SMTP server, over `connections` connections kept open for the whole batch.

    STARTTLS as in `resources.email.SmtpMailer`: used when the server offers it, and credentials
    are never sent over an unencrypted connection while `starttls` is on. A connection the server
    drops between two messages is reopened and the message sent on the new one. When the server
    cannot be reached (refused, timed out, login refused), the rest of the batch is not attempted
    and fails retryably with the same reason.
    """

    channel: ClassVar[str] = "email"

    host: str
    port: int = 587
    username: str = ""
    password: str = ""
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
            return await _each(self.channel, items, len(pool), send_one)
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
                f"{batch.server} refused the login: {exc.code} {_clip(exc.message)}"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise DeliveryFailed(
                f"{batch.server} unreachable: {type(exc).__name__}: {_clip(str(exc))}"
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
            return DeliveryFailed(f"cannot build the message: {_clip(str(exc))}", permanent=True)
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
                    f"{batch.server} refused the recipient: {refused.code} {_clip(refused.message)}",
                    permanent=refused.code >= 500,
                    bounced=refused.code in SMTP_BOUNCE_CODES,
                    metadata={"smtp_code": refused.code},
                )
            except aiosmtplib.SMTPServerDisconnected as exc:
                self._drop()
                if attempt == 1 and reused:
                    continue  # the server closed a connection we had used: once more on a new one
                return DeliveryFailed(f"{batch.server} dropped the connection: {_clip(str(exc))}")
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 or not self.smtp.is_connected:  # 421: the server closes the channel
                    self._drop()
                return DeliveryFailed(
                    f"{batch.server} replied {exc.code} {_clip(exc.message)}",
                    permanent=exc.code >= 500,
                    metadata={"smtp_code": exc.code},
                )
            except aiosmtplib.SMTPTimeoutError:
                self._drop()
                batch.down = f"{batch.server} timed out after {batch.config.timeout_seconds:g} s"
                return DeliveryFailed(batch.down)
            except aiosmtplib.SMTPNotSupported as exc:  # e.g. a non-ASCII address without SMTPUTF8
                return DeliveryFailed(f"{batch.server}: {_clip(str(exc))}", permanent=True)
            except ValueError as exc:  # an address aiosmtplib will not put on the wire
                return DeliveryFailed(f"invalid address: {_clip(str(exc))}", permanent=True)
            except (aiosmtplib.SMTPException, OSError) as exc:
                self._drop()
                return DeliveryFailed(f"{batch.server} failed: {type(exc).__name__}: {_clip(str(exc))}")
            self.sent += 1
            return Delivered(provider_id=message.message_id, metadata={"smtp_reply": _clip(reply)})
        raise AssertionError("unreachable")  # the loop always returns


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
    secret_access_key: str = ""
    concurrency: int = 8
    timeout_seconds: float = 10.0

    _client: Any = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
            failed = DeliveryFailed(f"SES client: {type(exc).__name__}: {_clip(str(exc))}")
            return [failed for _ in items]

        async def send_one(item: Outgoing) -> Outcome:
            try:
                raw = email_bytes(item, self.sender).data
            except (ValueError, TypeError) as exc:
                return DeliveryFailed(f"cannot build the message: {_clip(str(exc))}", permanent=True)
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
                    f"SES {code or status}: {_clip(error.get('Message', ''))}",
                    permanent=code in SES_PERMANENT_CODES,
                    metadata={"ses_code": code},
                )
            except BotoCoreError as exc:  # connection errors, timeouts (after botocore's own retries)
                return DeliveryFailed(f"SES unreachable: {type(exc).__name__}: {_clip(str(exc))}")
            return Delivered(provider_id=answer.get("MessageId", ""))

        return await _each(self.channel, items, self.concurrency, send_one)


class FileEmailTransport(DeliveryTransport):
    """The embedded default: each message becomes `<delivery_id>.eml` in `directory` (mode 0600,
    written whole then renamed, as `resources.email.OutboxMailer` does). A retried delivery
    overwrites its own file. Any mail client opens them."""

    channel: ClassVar[str] = "email"

    directory: str
    sender: str

    def _write(self, item: Outgoing) -> Outcome:
        try:
            data = email_bytes(item, self.sender, linesep="\n").data
        except (ValueError, TypeError) as exc:
            return DeliveryFailed(f"cannot build the message: {_clip(str(exc))}", permanent=True)
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
            _log_batch(self.channel, items, outcomes)
            log.info("email written to %s (no mail server configured)", self.directory)
        return outcomes


# --- push -----------------------------------------------------------------------------------------


def _fcm_data(data: Mapping[str, Any]) -> dict[str, str]:
    """FCM data values must be strings: others are sent as JSON."""
    return {
        str(key): value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        for key, value in data.items()
    }


class FcmPushTransport(DeliveryTransport):
    """Firebase Cloud Messaging, HTTP v1 API, authenticated with a service account.

    The OAuth access token comes from google-auth (the service-account JSON's `token_uri` is
    honored) and is kept on the resource until it expires; refreshing it runs in a worker thread.
    """

    channel: ClassVar[str] = "push"

    project_id: str
    credentials_file: str
    base_url: str = "https://fcm.googleapis.com"
    timeout_seconds: float = 10.0
    concurrency: int = 16

    _credentials: Any = PrivateAttr(default=None)
    _credentials_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _access_token(self) -> str:
        """A valid access token, refreshed when missing or expired (blocking: run it in a thread)."""
        import google.auth.transport.requests
        from google.oauth2 import service_account

        with self._credentials_lock:
            if self._credentials is None:
                self._credentials = service_account.Credentials.from_service_account_file(
                    self.credentials_file, scopes=[FCM_SCOPE]
                )
            if not self._credentials.valid:
                request = google.auth.transport.requests.Request()
                try:
                    # google-auth's own timeout is two minutes; keep a refresh within ours.
                    self._credentials.refresh(partial(request, timeout=self.timeout_seconds))
                finally:
                    request.session.close()
            return self._credentials.token

    def _forget_token(self) -> None:
        with self._credentials_lock:
            self._credentials = None

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        import google.auth.exceptions

        if not items:
            return []
        try:
            token = await anyio.to_thread.run_sync(self._access_token)
        except (OSError, ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            # A missing or unreadable credentials file, or a refused token request: fixable.
            failed = DeliveryFailed(f"FCM credentials: {type(exc).__name__}: {_clip(str(exc))}")
            log.warning("push: no FCM access token (%s); %d deliveries deferred", failed.reason, len(items))
            return [failed for _ in items]
        url = f"{self.base_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"}

        async with _http_client(self.timeout_seconds, self.concurrency) as client:

            async def send_one(item: Outgoing) -> Outcome:
                message = {
                    "token": item.to,
                    "notification": {"title": item.subject, "body": item.text},
                    "data": _fcm_data(item.data),
                }
                body = json.dumps({"message": message}, ensure_ascii=False).encode()
                reply = await _post(
                    client, url, content=body, headers=headers, timeout_seconds=self.timeout_seconds
                )
                return self._outcome(reply)

            return await _each(self.channel, items, self.concurrency, send_one)

    def _outcome(self, reply: _Reply) -> Outcome:
        payload = reply.json()
        if 200 <= reply.status < 300:
            return Delivered(provider_id=str(payload.get("name", "")))
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        details = error.get("details") if isinstance(error.get("details"), list) else []
        codes = {d.get("errorCode") for d in details if isinstance(d, dict) and d.get("errorCode")}
        status_text = error.get("status") or ""
        reason = f"FCM {reply.status} {'/'.join(sorted(codes)) or status_text}: {_clip(str(error.get('message') or reply.text()))}"
        metadata = {"http_status": reply.status, "fcm_error": sorted(codes) or status_text}
        if reply.status == 404 or "UNREGISTERED" in codes:
            return DeliveryFailed(reason, bounced=True, metadata=metadata)
        if reply.status in (429, 503):
            return DeliveryFailed(reason, retry_after=reply.retry_after, metadata=metadata)
        if reply.status >= 500:
            return DeliveryFailed(reason, metadata=metadata)
        if "SENDER_ID_MISMATCH" in codes:  # the token belongs to another Firebase project
            return DeliveryFailed(reason, permanent=True, metadata=metadata)
        if reply.status in (401, 403):  # our token or service account: fixable, so retry later
            if reply.status == 401:
                self._forget_token()
            return DeliveryFailed(reason, metadata=metadata)
        return DeliveryFailed(reason, permanent=True, metadata=metadata)  # 400 INVALID_ARGUMENT and others


# --- sms ------------------------------------------------------------------------------------------


class SmsGatewayTransport(DeliveryTransport):
    """An HTTP SMS gateway: `POST url` with JSON `{"to", "from", "body"}` and a bearer token.

    2xx is delivered (the provider id from a JSON `id` or `message_id`); 429, 408 and 5xx are
    retried; 401/403 too (the token is ours to fix); any other 4xx refuses the message for good.
    """

    channel: ClassVar[str] = "sms"

    url: str
    token: str = ""
    sender: str = ""
    timeout_seconds: float = 10.0
    concurrency: int = 8

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with _http_client(self.timeout_seconds, self.concurrency) as client:

            async def send_one(item: Outgoing) -> Outcome:
                body = json.dumps({"to": item.to, "from": self.sender, "body": item.text}, ensure_ascii=False)
                reply = await _post(
                    client,
                    self.url,
                    content=body.encode(),
                    headers=headers,
                    timeout_seconds=self.timeout_seconds,
                )
                return self._outcome(reply)

            return await _each(self.channel, items, self.concurrency, send_one)

    @staticmethod
    def _outcome(reply: _Reply) -> Outcome:
        payload = reply.json()
        if 200 <= reply.status < 300:
            return Delivered(provider_id=str(payload.get("id") or payload.get("message_id") or ""))
        said = payload.get("message") or payload.get("error") or payload.get("detail") or reply.text()
        if isinstance(said, dict):
            said = said.get("message") or json.dumps(said, ensure_ascii=False)
        reason = f"SMS gateway {reply.status}: {_clip(str(said))}"
        metadata = {"http_status": reply.status}
        if reply.status in (408, 429) or reply.status >= 500:
            return DeliveryFailed(reason, retry_after=reply.retry_after, metadata=metadata)
        if reply.status in (401, 403):
            return DeliveryFailed(reason, metadata=metadata)
        return DeliveryFailed(reason, permanent=True, metadata=metadata)


# --- webhooks -------------------------------------------------------------------------------------


def webhook_body(item: Outgoing) -> bytes:
    """The JSON body of a webhook delivery, serialized once: these bytes are what is signed."""
    payload = {
        "id": str(item.notification_id),
        "delivery_id": str(item.delivery_id),
        "subject": item.subject,
        "text": item.text,
        "language": item.language,
        "data": dict(item.data),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class WebhookTransport(DeliveryTransport):
    """`POST` each item's JSON to its URL, signed with its secret (see `domain.notifications.webhooks`).

    Redirects are not followed. The whole request (connect, send, answer) is bounded by
    `timeout_seconds`. 2xx is delivered; 429 and 5xx are retried (honoring Retry-After); 410 and
    every other 4xx refuse the delivery for good. A failure keeps the answer's status, never its
    body: whatever a receiver (or a service inside the network) answers is not stored or shown.

    Users choose webhook URLs, so unless `allow_private_networks` is set a host that resolves to a
    loopback, private, link-local or otherwise non-public address is refused (no requests into the
    platform's own network, e.g. a cloud metadata endpoint). The host is resolved once per request
    and the connection goes to the address that was checked (`resources.webhook_http`: no DNS
    rebinding between the check and the connection); proxies from the environment are ignored.
    """

    channel: ClassVar[str] = "webhook"

    timeout_seconds: float = 10.0
    user_agent: str = "thmnayah-webhooks/1"
    concurrency: int = 16
    allow_private_networks: bool = False

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        client, backend = webhook_http.pinned_client(self.timeout_seconds, self.concurrency)
        async with client:

            async def send_one(item: Outgoing) -> Outcome:
                if not item.secret:
                    return DeliveryFailed("the webhook has no signing secret", permanent=True)
                try:
                    url = httpx.URL(item.to)
                except (httpx.InvalidURL, TypeError) as exc:
                    return DeliveryFailed(f"invalid webhook URL: {_clip(str(exc))}", permanent=True)
                if url.scheme not in ("http", "https") or not url.host:
                    return DeliveryFailed("a webhook URL must be http(s)://host/...", permanent=True)
                try:
                    with anyio.fail_after(self.timeout_seconds):
                        addresses = await webhook_http.check_destination(
                            url, allow_private_networks=self.allow_private_networks
                        )
                except TimeoutError:
                    return DeliveryFailed(
                        f"resolving {url.host!r} timed out after {self.timeout_seconds:g} s"
                    )
                except webhook_http.DestinationRefused as refused:
                    return DeliveryFailed(_clip(refused.reason), permanent=refused.permanent)
                backend.pin(webhook_http.connect_host(url), addresses)
                body = webhook_body(item)
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": self.user_agent,
                    **webhooks.signature_headers(
                        item.secret, body, delivery_id=str(item.delivery_id), now=int(time.time())
                    ),
                }
                reply = await _post(
                    client, url, content=body, headers=headers, timeout_seconds=self.timeout_seconds
                )
                return self._outcome(reply)

            return await _each(self.channel, items, self.concurrency, send_one)

    @staticmethod
    def _outcome(reply: _Reply) -> Outcome:
        if 200 <= reply.status < 300:
            return Delivered(metadata={"http_status": reply.status})
        reason = f"webhook answered {reply.status}"  # the status only: the body is the receiver's
        metadata = {"http_status": reply.status}
        if reply.status == 429 or reply.status >= 500:
            return DeliveryFailed(reason, retry_after=reply.retry_after, metadata=metadata)
        # 410 Gone (the receiver asks us to stop), any other 4xx, and 3xx redirects.
        return DeliveryFailed(reason, permanent=True, metadata=metadata)


# --- not configured -------------------------------------------------------------------------------


class UnconfiguredTransport(DeliveryTransport):
    """A channel with no provider configured: every item fails permanently with `reason`."""

    channel: str
    reason: str

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        if items:
            log.warning("%s: %d deliveries refused: %s", self.channel, len(items), self.reason)
        return [DeliveryFailed(self.reason, permanent=True) for _ in items]
