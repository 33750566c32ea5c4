"""Email transports against real servers on loopback (aiosmtpd, moto's SES) and into `.eml` files,
and the one choice among them that the API's account mail and the delivery drain share. Each batch
goes through `anyio.run(transport.send_batch, items)`, as the synchronous delivery job calls it."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import logging
import ssl
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from domain.notifications.outgoing import Delivered, DeliveryFailed
from domain.settings import Settings
from resources.notifiers.email import (
    FileEmailTransport,
    SesEmailTransport,
    SmtpEmailTransport,
    account_mail_dir,
    email_bytes,
    email_transport,
)
from tests.conftest import free_port
from tests.resources.conftest import (
    HTML,
    SENDER,
    SUBJECT,
    TEXT,
    body,
    outgoing,
    parse,
    send,
    silent_port,
)

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
        refused = send(dataclasses.replace(good, password="wrong"), items)

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


def test_email_bytes_reads_back_as_sent() -> None:
    """The one MIME builder of every email transport: encoded headers, a Date with a zone, a
    Message-ID of the sender's domain, text/plain with text/html as its alternative (UTF-8)."""
    item = outgoing("email", "Layla Ahmad <layla@example.test>")
    built = email_bytes(item, SENDER)
    message = parse(built.data)
    assert message["From"].addresses[0].display_name == "ثمنية"
    assert message["From"].addresses[0].addr_spec == "no-reply@thmnayah.test"
    assert str(message["To"]) == "Layla Ahmad <layla@example.test>"
    assert message["Subject"] == SUBJECT
    assert message["Date"].datetime.tzinfo is not None
    assert message["Message-ID"] == built.message_id and built.message_id.endswith("@thmnayah.test>")
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    assert body(message.get_body(("plain",))) == TEXT and body(message.get_body(("html",))) == HTML
    for bad in (
        {"subject": "a\nb"},
        {"to": "x@example.test\r\nBcc: y@example.test"},
        {"to": "not an address"},
        {"to": "ليلى@example.test"},
        {"to": ""},
        {"to": " "},
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


# --- account mail: certificates, a local relay, secrets out of reprs and logs, the one choice ------


def test_an_untrusted_certificate_is_refused_and_retryable(tls_files: tuple[Path, Path]) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*tls_files)
    recorder = SmtpRecorder()
    with smtp_server(recorder, tls_context=server_tls, require_starttls=True) as port:
        [outcome] = send(smtp(port), [outgoing("email", "layla@example.test")])  # no ca_file: untrusted
    assert isinstance(outcome, DeliveryFailed) and not outcome.permanent
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.reason
    assert recorder.received == []


def test_a_local_relay_configured_without_tls_gets_the_login() -> None:
    recorder = SmtpRecorder()
    with smtp_server(recorder, authenticator=recorder.authenticator, auth_require_tls=False) as port:
        [outcome] = send(
            smtp(port, username="notifier", password="smtp-pw-1", starttls=False),
            [outgoing("email", "a@example.test")],
        )
    assert isinstance(outcome, Delivered), outcome
    assert recorder.logins == ["notifier"] and len(recorder.received) == 1


def test_the_password_stays_out_of_the_transports_repr() -> None:
    transport = smtp(25, username="notifier", password="smtp-pw-1")
    ses = SesEmailTransport(region="eu-west-1", sender=SENDER, secret_access_key="aws-secret-1")
    assert "smtp-pw-1" not in repr(transport) and "aws-secret-1" not in repr(ses)


def test_file_transport_logs_the_directory_never_the_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resources.notifiers")
    directory = tmp_path / "mail"
    send(
        FileEmailTransport(directory=str(directory), sender=SENDER), [outgoing("email", "layla@example.test")]
    )
    assert str(directory) in caplog.text
    assert "SECRET-TOKEN" not in caplog.text and SUBJECT not in caplog.text
    assert not list(directory.glob(".*"))  # no partial files left behind


def test_one_choice_of_email_transport_follows_the_settings(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path)
    files = email_transport(embedded, account_mail_dir(embedded))
    assert isinstance(files, FileEmailTransport) and Path(files.directory) == (tmp_path / "mail").resolve()

    over_smtp = email_transport(
        Settings(
            data_dir=tmp_path,
            smtp_host="smtp.example.test",
            smtp_port=2525,
            smtp_username="u",
            smtp_password="p",
            smtp_starttls=False,
            smtp_from="x <x@example.test>",
        ),
        tmp_path,
    )
    assert isinstance(over_smtp, SmtpEmailTransport)
    assert (over_smtp.host, over_smtp.port, over_smtp.username, over_smtp.password) == (
        "smtp.example.test",
        2525,
        "u",
        "p",
    )
    assert not over_smtp.starttls and over_smtp.sender == "x <x@example.test>"

    ses = email_transport(
        Settings(
            data_dir=tmp_path, email_backend="ses", ses_region="eu-west-1", ses_endpoint_url="http://ses"
        ),
        tmp_path,
    )
    assert isinstance(ses, SesEmailTransport) and (ses.region, ses.endpoint_url) == (
        "eu-west-1",
        "http://ses",
    )
    forced = email_transport(
        Settings(data_dir=tmp_path, smtp_host="smtp.example.test", email_backend="files"), tmp_path
    )
    assert isinstance(forced, FileEmailTransport)
