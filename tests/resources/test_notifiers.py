"""Delivery transports against real servers on loopback: aiosmtpd, moto's SES, and small HTTP
servers speaking FCM v1, an SMS gateway and webhook receivers. Each batch goes through
`anyio.run(transport.send_batch, items)`, as the synchronous delivery job calls it."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import logging
import socket
import ssl
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import google.auth.jwt
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from domain.notifications import webhooks
from domain.notifications.outgoing import Delivered, DeliveryFailed, Outcome, Outgoing
from resources.email import OutgoingEmail, build_message
from resources.notifiers import (
    FCM_SCOPE,
    FcmPushTransport,
    FileEmailTransport,
    SesEmailTransport,
    SmsGatewayTransport,
    SmtpEmailTransport,
    UnconfiguredTransport,
    WebhookTransport,
    email_bytes,
    retry_after_seconds,
    webhook_body,
)

SUBJECT = "مقالة جديدة في «الثقافة» - New article"
TEXT = "مرحباً ليلى،\nنُشرت مقالة جديدة: https://example.test/a/1?token=SECRET-TOKEN\nHello Layla."
HTML = "<p dir='rtl'>مرحباً ليلى، <a href='https://example.test/a/1?token=SECRET-TOKEN'>مقالة جديدة</a></p>"
SENDER = "ثمنية <no-reply@thmnayah.test>"


def outgoing(channel: str, to: str, **changes: Any) -> Outgoing:
    values: dict[str, Any] = {
        "delivery_id": uuid.uuid4(),
        "notification_id": uuid.uuid4(),
        "channel": channel,
        "to": to,
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "language": "ar",
    }
    return Outgoing(**(values | changes))


def send(transport: Any, items: list[Outgoing]) -> list[Outcome]:
    outcomes = anyio.run(transport.send_batch, items)
    assert len(outcomes) == len(items)
    return outcomes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def body(part: email.message.EmailMessage) -> str:
    return part.get_content().replace("\r\n", "\n").rstrip("\n")


@dataclass
class SilentPort:
    """A port that accepts TCP connections (the kernel's backlog) and never answers a byte."""

    sock: socket.socket
    port: int

    def connections(self) -> list[bytes]:
        """What each connection made so far sent before its client hung up, in order (empties the
        backlog; call it once the clients are done)."""
        self.sock.setblocking(False)
        sent = []
        while True:
            try:
                connection, _ = self.sock.accept()
            except BlockingIOError:
                return sent
            with connection:
                connection.settimeout(5)
                data = b""
                while chunk := connection.recv(65536):
                    data += chunk
                sent.append(data)


@contextmanager
def silent_port() -> Iterator[SilentPort]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield SilentPort(sock, sock.getsockname()[1])


# --- SMTP -----------------------------------------------------------------------------------------


@dataclass
class Received:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: keeps each accepted message; can refuse recipients (RCPT) or messages
    (DATA), and close each connection after `drop_after` messages."""

    refuse: dict[str, str] = field(default_factory=dict)
    reject_data: dict[str, str] = field(default_factory=dict)
    drop_after: int = 0
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        for address in envelope.rcpt_tos:
            if address in self.reject_data:
                return self.reject_data[address]
        self.received.append(
            Received(session.peer, envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        session.accepted = getattr(session, "accepted", 0) + 1
        if self.drop_after and session.accepted >= self.drop_after:
            # After the 250 below is written, hang up without QUIT (as servers with a per-connection
            # message limit, or a restarting one, do).
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 Message accepted"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data.login.decode())
        ok = auth_data.login == b"notifier" and auth_data.password == b"smtp-pw-1"
        return AuthResult(success=ok, handled=False)

    def peers(self) -> set[tuple[str, int]]:
        return {message.peer for message in self.received}


@contextmanager
def smtp_server(recorder: SmtpRecorder, **options: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def smtp(port: int, **changes: Any) -> SmtpEmailTransport:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "sender": SENDER, "timeout_seconds": 5}
    return SmtpEmailTransport(**(values | changes))


def test_smtp_delivers_a_batch_over_a_few_reused_connections(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="resources.notifiers")
    recorder = SmtpRecorder()
    first = [outgoing("email", f"reader{i}@example.test") for i in range(12)]
    second = [outgoing("email", "layla@example.test", html=None, subject="Plain ASCII subject")]
    with smtp_server(recorder) as port:
        transport = smtp(port, connections=3)
        outcomes = send(transport, first)
        first_peers = recorder.peers()
        # The same resource again, in a new event loop (no loop-bound state kept between calls).
        outcomes += send(transport, second)

    assert all(isinstance(outcome, Delivered) for outcome in outcomes), outcomes
    assert len(recorder.received) == 13
    assert 1 <= len(first_peers) <= 3, "12 messages over at most 3 connections, not one each"
    by_rcpt = {message.rcpt_tos[0]: message for message in recorder.received}
    for item, outcome in zip(first, outcomes, strict=False):
        received = by_rcpt[item.to]
        assert received.mail_from == "no-reply@thmnayah.test"
        head = received.content.split(b"\r\n\r\n", 1)[0]
        assert head.isascii(), "headers must be RFC 2047-encoded"
        parsed = parse(received.content)
        assert parsed["Subject"] == SUBJECT
        assert parsed["From"].addresses[0].display_name == "ثمنية"
        assert [a.addr_spec for a in parsed["To"].addresses] == [item.to]
        assert parsed["X-Thmnayah-Delivery"] == str(item.delivery_id)
        assert isinstance(outcome, Delivered) and outcome.provider_id == parsed["Message-ID"]
        assert parsed.get_content_type() == "multipart/alternative"
        plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
        assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
        assert body(plain) == TEXT
        assert body(html) == HTML
    plain_only = parse(by_rcpt["layla@example.test"].content)
    assert plain_only.get_content_type() == "text/plain"
    assert plain_only["Subject"] == "Plain ASCII subject"
    assert "email: 12 delivered" in caplog.text
    assert "SECRET-TOKEN" not in caplog.text and "ليلى" not in caplog.text


def test_smtp_refusals_map_to_bounced_permanent_and_retryable() -> None:
    recorder = SmtpRecorder(
        refuse={
            "gone@example.test": "550 5.1.1 no such user",
            "moved@example.test": "551 5.1.6 user not local",
            "busy@example.test": "451 4.3.0 try again later",
        },
        reject_data={"spam@example.test": "554 5.7.1 message refused as spam"},
    )
    items = [
        outgoing("email", "ok1@example.test"),
        outgoing("email", "gone@example.test"),
        outgoing("email", "busy@example.test"),
        outgoing("email", "spam@example.test"),
        outgoing("email", "moved@example.test"),
        outgoing("email", "ok2@example.test", subject="Injected\r\nBcc: everyone@example.test"),
        outgoing("email", "ok3@example.test"),
    ]
    with smtp_server(recorder) as port:
        ok1, gone, busy, spam, moved, injected, ok3 = send(smtp(port, connections=1), items)

    assert isinstance(ok1, Delivered) and isinstance(ok3, Delivered)
    assert isinstance(gone, DeliveryFailed) and gone.bounced and gone.permanent
    assert "550" in gone.reason and gone.metadata["smtp_code"] == 550
    assert isinstance(moved, DeliveryFailed) and moved.bounced
    assert isinstance(busy, DeliveryFailed) and not busy.permanent and not busy.bounced
    assert "451" in busy.reason
    assert isinstance(spam, DeliveryFailed) and spam.permanent and not spam.bounced
    assert "554" in spam.reason
    assert isinstance(injected, DeliveryFailed) and injected.permanent and "line break" in injected.reason
    # Refusals leave the connection usable: everything else arrived, nothing more.
    assert [m.rcpt_tos for m in recorder.received] == [["ok1@example.test"], ["ok3@example.test"]]
    assert len(recorder.peers()) == 1


def test_smtp_reconnects_after_the_server_drops_the_connection() -> None:
    recorder = SmtpRecorder(drop_after=2)
    items = [outgoing("email", f"reader{i}@example.test") for i in range(7)]
    with smtp_server(recorder) as port:
        outcomes = send(smtp(port, connections=1), items)

    assert all(isinstance(outcome, Delivered) for outcome in outcomes), outcomes
    assert sorted(m.rcpt_tos[0] for m in recorder.received) == sorted(item.to for item in items)
    assert len(recorder.peers()) == 4  # 2 + 2 + 2 + 1 messages


def test_smtp_server_that_never_answers_costs_one_timeout_per_connection() -> None:
    """Each connection waits for the greeting once; the messages after that are not attempted, so a
    hanging server holds the batch for one timeout, not one per message."""
    items = [outgoing("email", f"reader{i}@example.test") for i in range(6)]
    with silent_port() as silent:
        outcomes = send(smtp(silent.port, timeout_seconds=1, connections=2), items)
        connections = silent.connections()

    assert connections == [b"", b""]  # two connections (the batch's two), each waiting for a greeting
    timed_out = f"SMTP server 127.0.0.1:{silent.port} timed out after 1 s"
    assert [o.reason for o in outcomes] == [timed_out] * 2 + [f"not attempted: {timed_out}"] * 4
    assert all(isinstance(o, DeliveryFailed) and not o.permanent for o in outcomes)


def test_smtp_unreachable_server_is_retryable() -> None:
    port = free_port()  # nothing listens there
    outcomes = send(smtp(port, timeout_seconds=1), [outgoing("email", "a@example.test")] * 3)
    assert all(
        isinstance(o, DeliveryFailed) and not o.permanent and "unreachable" in o.reason for o in outcomes
    )


def test_smtp_starttls_and_login(tls_files: tuple[Path, Path]) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*tls_files)
    recorder = SmtpRecorder()
    options = {"tls_context": server_tls, "require_starttls": True, "authenticator": recorder.authenticator}
    items = [outgoing("email", f"reader{i}@example.test") for i in range(3)]
    with smtp_server(recorder, **options) as port:
        good = smtp(port, username="notifier", password="smtp-pw-1", ca_file=str(tls_files[0]), connections=2)
        delivered = send(good, items)
        bad = good.model_copy(update={"password": "wrong"})
        refused = send(SmtpEmailTransport(**bad.model_dump()), items)

    assert all(isinstance(o, Delivered) for o in delivered)
    assert len(recorder.received) == 3
    assert "notifier" in recorder.logins
    for outcome in refused:
        assert isinstance(outcome, DeliveryFailed) and not outcome.permanent
        assert "refused the login" in outcome.reason


def test_smtp_credentials_never_go_out_in_clear_text() -> None:
    recorder = SmtpRecorder()
    with smtp_server(recorder, authenticator=recorder.authenticator, auth_require_tls=False) as port:
        [outcome] = send(
            smtp(port, username="notifier", password="smtp-pw-1"), [outgoing("email", "a@example.test")]
        )
    assert isinstance(outcome, DeliveryFailed) and not outcome.permanent
    assert "clear text" in outcome.reason
    assert recorder.logins == [] and recorder.received == []


def test_email_bytes_read_back_like_build_message() -> None:
    """The fast builder and `resources.email.build_message` give the same message to a reader."""
    item = outgoing("email", "Layla Ahmad <layla@example.test>")
    ours = parse(email_bytes(item, SENDER).data)
    theirs = parse(
        build_message(
            OutgoingEmail(to=item.to, subject=item.subject, text=item.text, html=item.html), SENDER
        ).as_bytes()
    )
    for header in ("From", "To", "Subject"):
        assert str(ours[header]) == str(theirs[header]), header
    for message in (ours, theirs):
        assert message["Date"].datetime.tzinfo is not None
        assert message["Message-ID"].endswith("@thmnayah.test>")
    assert [p.get_content_type() for p in ours.walk()] == [p.get_content_type() for p in theirs.walk()]
    for kind in ("plain", "html"):
        assert body(ours.get_body((kind,))) == body(theirs.get_body((kind,)))
    for bad in (
        {"subject": "a\nb"},
        {"to": "x@example.test\r\nBcc: y@example.test"},
        {"to": "not an address"},
        {"to": "ليلى@example.test"},
    ):
        with pytest.raises(ValueError):
            email_bytes(outgoing("email", **({"to": "a@example.test"} | bad)), SENDER)


# --- SES (moto in server mode) --------------------------------------------------------------------


def test_ses_sends_raw_mime_and_maps_rejections(s3_endpoint: str, aws_credentials: None) -> None:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    region = "eu-west-1"
    client = boto3.client("sesv2", region_name=region, endpoint_url=s3_endpoint)
    client.create_email_identity(EmailIdentity="no-reply@thmnayah.test")
    items = [outgoing("email", "layla@example.test"), outgoing("email", "omar@example.test")]
    transport = SesEmailTransport(region=region, endpoint_url=s3_endpoint, sender=SENDER, concurrency=2)
    outcomes = send(transport, items)
    unverified = SesEmailTransport(
        region=region, endpoint_url=s3_endpoint, sender="x <nobody@unverified.test>"
    )
    [rejected] = send(unverified, [outgoing("email", "layla@example.test")])

    assert all(isinstance(o, Delivered) and o.provider_id for o in outcomes), outcomes
    sent = {m.id: m for m in ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages}
    for item, outcome in zip(items, outcomes, strict=True):
        assert isinstance(outcome, Delivered)
        raw = sent[outcome.provider_id]
        parsed = email.message_from_string(raw.raw_data, policy=email.policy.default)
        assert parsed["Subject"] == SUBJECT
        assert parsed["X-Thmnayah-Delivery"] == str(item.delivery_id)
        assert item.to in raw.destinations
        assert body(parsed.get_body(("plain",))) == TEXT
    assert isinstance(rejected, DeliveryFailed) and rejected.permanent
    assert rejected.metadata["ses_code"] == "MessageRejected"


def test_ses_unreachable_endpoint_is_retryable(aws_credentials: None) -> None:
    transport = SesEmailTransport(
        region="eu-west-1", endpoint_url=f"http://127.0.0.1:{free_port()}", sender=SENDER, timeout_seconds=1
    )
    [outcome] = send(transport, [outgoing("email", "layla@example.test")])
    assert isinstance(outcome, DeliveryFailed) and not outcome.permanent
    assert "unreachable" in outcome.reason


# --- .eml files -----------------------------------------------------------------------------------


def test_file_transport_writes_one_eml_per_delivery(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    transport = FileEmailTransport(directory=str(directory), sender=SENDER)
    items = [outgoing("email", "layla@example.test"), outgoing("email", "omar@example.test", html=None)]
    outcomes = send(transport, items)
    send(transport, items[:1])  # a retried delivery rewrites its own file

    files = sorted(directory.iterdir())
    assert sorted(p.name for p in files) == sorted(f"{item.delivery_id}.eml" for item in items)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    first = parse((directory / f"{items[0].delivery_id}.eml").read_bytes())
    assert first["Subject"] == SUBJECT and first["To"] == "layla@example.test"
    assert body(first.get_body(("html",))) == HTML
    assert [o.provider_id for o in outcomes if isinstance(o, Delivered)] == [
        str(directory / f"{item.delivery_id}.eml") for item in items
    ]


# --- HTTP servers ---------------------------------------------------------------------------------


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], **state: Any) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def reply(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --- FCM HTTP v1 ----------------------------------------------------------------------------------

PROJECT = "demo-project"
ACCESS_TOKEN = "ya29.test-access-token"
# google-auth signs its grant for Google's token endpoint, whichever `token_uri` it posts it to.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


def fcm_error(code: int, status: str, message: str, error_code: str | None = None) -> dict:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
    return {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            "details": details if error_code else [],
        }
    }


class FcmHandler(JsonHandler):
    """The OAuth token endpoint and `messages:send`; the answer depends on the device token."""

    def do_POST(self) -> None:  # noqa: N802
        data = self.read_body()
        server: Any = self.server
        if self.path == "/token":
            form = {k: v[0] for k, v in parse_qs(data.decode()).items()}
            assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            claims = google.auth.jwt.decode(
                form["assertion"], certs=server.public_pem, audience=GOOGLE_TOKEN_AUDIENCE
            )
            server.token_requests.append(claims)
            return self.reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        if self.path != f"/v1/projects/{PROJECT}/messages:send":
            return self.reply(404, fcm_error(404, "NOT_FOUND", "no such path"))
        if server.revoked or self.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return self.reply(
                401, fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            )
        message = json.loads(data)["message"]
        server.requests.append((dict(self.headers), message))
        token = message["token"]
        if token.startswith("device-ok"):
            return self.reply(200, {"name": f"projects/{PROJECT}/messages/{token}-0:1234"})
        answers = {
            "device-busy": (
                429,
                fcm_error(429, "RESOURCE_EXHAUSTED", "quota", "QUOTA_EXCEEDED"),
                {"Retry-After": "7"},
            ),
            "device-down": (
                503,
                fcm_error(503, "UNAVAILABLE", "try later", "UNAVAILABLE"),
                {"Retry-After": "30"},
            ),
            "device-500": (500, fcm_error(500, "INTERNAL", "internal error", "INTERNAL"), {}),
            "device-gone": (
                404,
                fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
                {},
            ),
            "device-stale": (400, fcm_error(400, "INVALID_ARGUMENT", "stale token", "UNREGISTERED"), {}),
            "device-bad": (
                400,
                fcm_error(400, "INVALID_ARGUMENT", "The registration token is not valid", "INVALID_ARGUMENT"),
                {},
            ),
            "device-denied": (403, fcm_error(403, "PERMISSION_DENIED", "no permission"), {}),
        }
        status, payload, headers = answers[token]
        self.reply(status, payload, headers)


@pytest.fixture
def fcm(tmp_path: Path) -> Iterator[tuple[ThreadingHTTPServer, str]]:
    """The FCM server and a service-account file whose `token_uri` points at it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with http_server(FcmHandler, public_pem=public_pem, token_requests=[], revoked=False) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        server.token_uri = f"{base}/token"  # type: ignore[attr-defined]
        credentials = tmp_path / "service-account.json"
        credentials.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "test-key-1",
                    "private_key": private_pem,
                    "client_email": f"fcm-sender@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1234567890",
                    "token_uri": server.token_uri,  # type: ignore[attr-defined]
                }
            )
        )
        yield server, str(credentials)


def test_fcm_v1_wire_format_and_outcomes(fcm: tuple[ThreadingHTTPServer, str]) -> None:
    server, credentials = fcm
    base = f"http://127.0.0.1:{server.server_address[1]}"
    transport = FcmPushTransport(
        project_id=PROJECT, credentials_file=credentials, base_url=base, timeout_seconds=5
    )
    data = {"content_id": "0196c0de", "count": 3, "tags": ["a", "ب"]}
    tokens = ["device-ok-1", "device-busy", "device-down", "device-500", "device-gone", "device-stale", "device-bad", "device-denied"]  # fmt: skip
    items = [outgoing("push", token, data=data) for token in tokens]
    ok, busy, down, internal, gone, stale, bad, denied = send(transport, items)
    [again] = send(transport, [outgoing("push", "device-ok-2")])  # a second batch, a second event loop

    assert isinstance(ok, Delivered) and ok.provider_id == f"projects/{PROJECT}/messages/device-ok-1-0:1234"
    assert isinstance(again, Delivered)
    assert isinstance(busy, DeliveryFailed) and not busy.permanent and busy.retry_after == 7
    assert isinstance(down, DeliveryFailed) and not down.permanent and down.retry_after == 30
    assert isinstance(internal, DeliveryFailed) and not internal.permanent and internal.retry_after is None
    assert isinstance(gone, DeliveryFailed) and gone.bounced and "UNREGISTERED" in gone.reason
    assert isinstance(stale, DeliveryFailed) and stale.bounced
    assert isinstance(bad, DeliveryFailed) and bad.permanent and not bad.bounced and "400" in bad.reason
    assert isinstance(denied, DeliveryFailed) and not denied.permanent and "403" in denied.reason

    # One token for both batches, obtained with a JWT signed by the service account's key.
    [claims] = server.token_requests  # type: ignore[attr-defined]
    assert claims["scope"] == FCM_SCOPE and claims["iss"] == f"fcm-sender@{PROJECT}.iam.gserviceaccount.com"
    headers, message = server.requests[0]  # type: ignore[attr-defined]
    sent = {m["token"]: m for _, m in server.requests}  # type: ignore[attr-defined]
    assert headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert sent["device-ok-1"] == {
        "token": "device-ok-1",
        "notification": {"title": SUBJECT, "body": TEXT},
        "data": {"content_id": "0196c0de", "count": "3", "tags": '["a", "ب"]'},
    }


def test_fcm_refused_token_is_retryable_and_refreshed(fcm: tuple[ThreadingHTTPServer, str]) -> None:
    server, credentials = fcm
    base = f"http://127.0.0.1:{server.server_address[1]}"
    transport = FcmPushTransport(
        project_id=PROJECT, credentials_file=credentials, base_url=base, timeout_seconds=5
    )
    server.revoked = True  # type: ignore[attr-defined]
    [refused] = send(transport, [outgoing("push", "device-ok-1")])
    server.revoked = False  # type: ignore[attr-defined]
    [delivered] = send(transport, [outgoing("push", "device-ok-1")])

    assert isinstance(refused, DeliveryFailed) and not refused.permanent and "401" in refused.reason
    assert isinstance(delivered, Delivered)
    assert len(server.token_requests) == 2, "a 401 must drop the cached token"  # type: ignore[attr-defined]


def test_fcm_without_credentials_defers_the_batch(tmp_path: Path) -> None:
    transport = FcmPushTransport(project_id=PROJECT, credentials_file=str(tmp_path / "missing.json"))
    outcomes = send(transport, [outgoing("push", "device-ok-1")] * 2)
    assert all(
        isinstance(o, DeliveryFailed) and not o.permanent and "credentials" in o.reason for o in outcomes
    )


# --- SMS gateway ----------------------------------------------------------------------------------


class SmsHandler(JsonHandler):
    def do_POST(self) -> None:  # noqa: N802
        server: Any = self.server
        payload = json.loads(self.read_body())
        server.requests.append((dict(self.headers), self.path, payload))
        answers = {
            "+966500000001": (201, {"id": "sms-1", "status": "queued"}, {}),
            "+966500000002": (200, {"message_id": "sms-2"}, {}),
            "+966500000003": (422, {"message": "invalid destination number"}, {}),
            "+966500000004": (503, {"error": "maintenance"}, {"Retry-After": "30"}),
            "+966500000005": (429, {"error": "slow down"}, {"Retry-After": "2"}),
        }
        self.reply(*answers[payload["to"]])


def test_sms_gateway() -> None:
    with http_server(SmsHandler) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/messages"
        transport = SmsGatewayTransport(url=url, token="sms-token-1", sender="Thmnayah", timeout_seconds=5)
        items = [outgoing("sms", f"+96650000000{i}", text=f"رمز التحقق {i}") for i in range(1, 6)]
        first, second, invalid, down, busy = send(transport, items)

    assert isinstance(first, Delivered) and first.provider_id == "sms-1"
    assert isinstance(second, Delivered) and second.provider_id == "sms-2"
    assert (
        isinstance(invalid, DeliveryFailed)
        and invalid.permanent
        and "invalid destination number" in invalid.reason
    )
    assert isinstance(down, DeliveryFailed) and not down.permanent and down.retry_after == 30
    assert isinstance(busy, DeliveryFailed) and not busy.permanent and busy.retry_after == 2
    headers, path, payload = next(r for r in server.requests if r[2]["to"] == "+966500000001")  # type: ignore[attr-defined]
    assert path == "/v1/messages"
    assert headers["Authorization"] == "Bearer sms-token-1"
    assert payload == {"to": "+966500000001", "from": "Thmnayah", "body": "رمز التحقق 1"}


# --- webhooks -------------------------------------------------------------------------------------

HOOK_SECRET = "whsec-test-0123456789"


class WebhookReceiver(JsonHandler):
    """A receiver that checks each request with `webhooks.verify`, as the docs tell receivers to."""

    def do_POST(self) -> None:  # noqa: N802
        server: Any = self.server
        data = self.read_body()
        if self.path == "/gone":
            return self.reply(410, {"error": "this hook was deleted"})
        if self.path == "/broken":
            return self.reply(500, {"error": "boom"})
        if self.path == "/busy":
            return self.reply(429, None, {"Retry-After": "12"})
        if self.path == "/redirect":
            self.send_response(301)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        try:
            with server.lock:
                webhooks.verify(HOOK_SECRET, self.headers, data, now=int(time.time()), seen=server.seen)
        except webhooks.WebhookReplayError as exc:
            server.verdicts.append(("replay", exc.reason))
            return self.reply(200, {"duplicate": True})  # already handled: not an error for the sender
        except webhooks.WebhookSignatureError as exc:
            server.verdicts.append(("refused", exc.reason))
            return self.reply(401, {"error": exc.reason})
        server.verdicts.append(("ok", self.headers[webhooks.DELIVERY_HEADER]))
        server.requests.append((dict(self.headers), data))
        self.reply(204)


def test_webhooks_are_signed_and_replays_refused(caplog: pytest.LogCaptureFixture) -> None:
    import httpx

    caplog.set_level(logging.DEBUG, logger="resources.notifiers")
    with http_server(WebhookReceiver, lock=threading.Lock(), seen=set(), verdicts=[]) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        data = {"content_id": "0196c0de", "kind": "published"}
        items = [
            outgoing("webhook", f"{base}/hooks/a", secret=HOOK_SECRET, data=data),
            outgoing("webhook", f"{base}/hooks/b", secret="not-the-receivers-secret"),
            outgoing("webhook", f"{base}/hooks/c", secret=None),
            outgoing("webhook", f"{base}/gone", secret=HOOK_SECRET),
            outgoing("webhook", f"{base}/broken", secret=HOOK_SECRET),
            outgoing("webhook", f"{base}/busy", secret=HOOK_SECRET),
            outgoing("webhook", f"{base}/redirect", secret=HOOK_SECRET),
            outgoing("webhook", "ftp://127.0.0.1/hook", secret=HOOK_SECRET),
        ]
        transport = WebhookTransport(timeout_seconds=5, allow_private_networks=True)
        ok, wrong_secret, no_secret, gone, broken, busy, redirect, ftp = send(transport, items)
        [(headers, raw)] = server.requests  # type: ignore[attr-defined]
        # Someone captured the request and sends it again, byte for byte.
        replay = httpx.post(f"{base}/hooks/a", content=raw, headers=headers)

    assert isinstance(ok, Delivered)
    assert ("ok", str(items[0].delivery_id)) in server.verdicts  # type: ignore[attr-defined]
    assert json.loads(raw) == {
        "id": str(items[0].notification_id),
        "delivery_id": str(items[0].delivery_id),
        "subject": SUBJECT,
        "text": TEXT,
        "language": "ar",
        "data": data,
    }
    assert headers["User-Agent"] == "thmnayah-webhooks/1"
    assert headers["X-Thmnayah-Signature"] == webhooks.sign(
        HOOK_SECRET, int(headers["X-Thmnayah-Timestamp"]), raw
    )
    assert replay.status_code == 200 and replay.json() == {"duplicate": True}
    assert server.verdicts[-1][0] == "replay"  # type: ignore[attr-defined]
    assert len(server.requests) == 1  # type: ignore[attr-defined]

    assert (
        isinstance(wrong_secret, DeliveryFailed) and wrong_secret.permanent and "401" in wrong_secret.reason
    )
    assert ("refused", "signature does not match") in server.verdicts  # type: ignore[attr-defined]
    assert isinstance(no_secret, DeliveryFailed) and no_secret.permanent and "secret" in no_secret.reason
    assert isinstance(gone, DeliveryFailed) and gone.permanent and "410" in gone.reason
    assert isinstance(broken, DeliveryFailed) and not broken.permanent and "500" in broken.reason
    assert isinstance(busy, DeliveryFailed) and not busy.permanent and busy.retry_after == 12
    assert isinstance(redirect, DeliveryFailed) and redirect.permanent and "301" in redirect.reason
    assert isinstance(ftp, DeliveryFailed) and ftp.permanent
    assert HOOK_SECRET not in caplog.text and "SECRET-TOKEN" not in caplog.text


def test_a_hanging_webhook_times_out() -> None:
    with silent_port() as silent:
        item = outgoing("webhook", f"http://127.0.0.1:{silent.port}/h", secret="s")
        [outcome] = send(WebhookTransport(timeout_seconds=1, allow_private_networks=True), [item])
        [request] = silent.connections()
    assert isinstance(outcome, DeliveryFailed) and not outcome.permanent
    assert outcome.reason == "timed out after 1 s"
    # The whole request went out: it was the answer that never came, and the client gave up on it.
    assert request.startswith(b"POST /h HTTP/1.1\r\n") and request.endswith(b"\r\n\r\n" + webhook_body(item))


def test_a_trickling_webhook_is_bounded_as_a_whole() -> None:
    """A receiver that answers one byte every 0.2 s never trips a per-read timeout; the whole request
    is still bounded by `timeout_seconds`."""
    stop = threading.Event()
    answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 1000  # 200 s of headers, never finished
    hung_up_after: list[int] = []  # bytes of the answer written when the client was seen gone

    def trickle(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for written, byte in enumerate(answer):
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:  # the client closed the connection
                    hung_up_after.append(written)
                    return

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        thread = threading.Thread(target=trickle, args=(listener,), daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/h"
        try:
            [outcome] = send(
                WebhookTransport(timeout_seconds=1, allow_private_networks=True),
                [outgoing("webhook", url, secret="s")],
            )
            thread.join(10)  # the receiver notices the hang-up at its next byte or the one after
        finally:
            stop.set()
            thread.join(2)
    assert isinstance(outcome, DeliveryFailed) and not outcome.permanent
    assert outcome.reason == "timed out after 1 s"
    # The client hung up in the middle of the headers: no read ever waited 1 s, the request as a whole did.
    assert hung_up_after and 0 < hung_up_after[0] < len(answer), hung_up_after


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/h", "http://localhost/h", "http://169.254.169.254/latest/meta-data", "http://[::1]/h",
     "https://10.1.2.3/h"],
)  # fmt: skip
def test_webhook_refuses_hosts_in_private_networks_by_default(url: str) -> None:
    [outcome] = send(WebhookTransport(timeout_seconds=1), [outgoing("webhook", url, secret="s")])
    assert isinstance(outcome, DeliveryFailed) and outcome.permanent
    assert (
        "non-public address" in outcome.reason and "THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in outcome.reason
    )


# --- the rest -------------------------------------------------------------------------------------


def test_unconfigured_transport_refuses_everything() -> None:
    reason = "push is not configured: set THMNAYAH_FCM_PROJECT_ID and THMNAYAH_FCM_CREDENTIALS_FILE"
    transport = UnconfiguredTransport(channel="push", reason=reason)
    outcomes = send(transport, [outgoing("push", "device-1"), outgoing("push", "device-2")])
    assert all(isinstance(o, DeliveryFailed) and o.permanent and o.reason == reason for o in outcomes)
    assert transport.channel == "push"
    assert send(transport, []) == []


def test_each_transport_reports_its_batches_under_its_channel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A transport's `channel` is how its batch logs name it (what an operator reads about a drain).
    Each batch here fails before any network traffic, or against a port where nothing listens."""
    caplog.set_level(logging.INFO, logger="resources.notifiers")
    not_an_address = outgoing("email", "nobody")
    cases = [
        ("email", SmtpEmailTransport(host="127.0.0.1", port=free_port(), sender=SENDER), not_an_address),
        ("email", SesEmailTransport(region="eu-west-1", sender=SENDER), not_an_address),
        ("email", FileEmailTransport(directory=str(tmp_path / "mail"), sender=SENDER), not_an_address),
        ("push", FcmPushTransport(project_id="p", credentials_file=str(tmp_path / "missing.json")),
         outgoing("push", "device-1")),
        ("sms", SmsGatewayTransport(url=f"http://127.0.0.1:{free_port()}/sms", timeout_seconds=1),
         outgoing("sms", "+966501234567")),
        ("webhook", WebhookTransport(timeout_seconds=1), outgoing("webhook", "https://example.test/h")),
    ]  # fmt: skip
    for channel, transport, item in cases:
        caplog.clear()
        [outcome] = send(transport, [item])
        assert isinstance(outcome, DeliveryFailed), (channel, outcome)
        said = [record.getMessage() for record in caplog.records if record.name == "resources.notifiers"]
        assert [line.split()[0].rstrip(":") for line in said] == [channel] * len(said), said
        assert any(line.startswith(f"{channel}: ") for line in said), (type(transport).__name__, said)


def test_retry_after_values() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 12:01:30 GMT", now=now) == 90
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
