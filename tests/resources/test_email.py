"""Mail through a real SMTP server (aiosmtpd on loopback) and into `.eml` files."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from domain.settings import Settings
from resources.email import (
    MailerError,
    OutboxMailer,
    OutgoingEmail,
    SmtpMailer,
    mailer_for,
)

SUBJECT = "تأكيد البريد الإلكتروني - Confirm your email"
TEXT = "مرحباً ليلى،\nافتحي الرابط: https://example.test/verify?token=SECRET-TOKEN\nHello Layla."
HTML = "<p dir='rtl'>مرحباً ليلى، <a href='https://example.test/verify?token=SECRET-TOKEN'>تأكيد</a></p>"
SENDER = "ثمنية <no-reply@thmnayah.test>"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool


@dataclass
class Recorder:
    """aiosmtpd handler: keeps every envelope; refuses recipients in `refuse`."""

    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.ssl is not None)
        )
        return "250 Message accepted for delivery"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data.login.decode())
        ok = auth_data.login == b"mailer" and auth_data.password == b"s3cret-pw"
        # handled=False: aiosmtpd then answers a failure with its 535 reply.
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server(recorder: Recorder, **smtp_options) -> Iterator[int]:
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


def message(**changes) -> OutgoingEmail:
    values = {
        "to": ("layla@example.test", "omar@example.test"),
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "headers": {"X-Thmnayah-Notification": "0196-abc"},
    }
    return OutgoingEmail(**(values | changes))


def body(part: email.message.EmailMessage) -> str:
    """Decoded text of a part; MIME text travels with CRLF line breaks."""
    return part.get_content().replace("\r\n", "\n").rstrip("\n")


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_smtp_delivers_arabic_multipart(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    caplog.set_level(logging.INFO, logger="resources.email")
    with smtp_server(recorder) as port:
        # STARTTLS configured but not offered by this server, no credentials: mail goes out.
        SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=5).send(message())

    [received] = recorder.received
    assert received.mail_from == "no-reply@thmnayah.test"
    assert received.rcpt_tos == ["layla@example.test", "omar@example.test"]
    head = received.content.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "headers must be RFC 2047-encoded, not raw UTF-8"

    parsed = parse(received.content)
    assert parsed["Subject"] == SUBJECT
    assert parsed["From"].addresses[0].display_name == "ثمنية"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["layla@example.test", "omar@example.test"]
    assert parsed["X-Thmnayah-Notification"] == "0196-abc"
    assert parsed["Message-ID"].endswith("@thmnayah.test>")
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert body(plain) == TEXT
    assert body(html) == HTML

    # Subject and recipients are logged; the body (with its secret link) never is.
    assert SUBJECT in caplog.text and "layla@example.test" in caplog.text
    assert "SECRET-TOKEN" not in caplog.text


def test_text_only_message() -> None:
    recorder = Recorder()
    with smtp_server(recorder) as port:
        SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=5).send(
            OutgoingEmail(to="layla@example.test", subject="سلام", text="نص فقط")
        )
    parsed = parse(recorder.received[0].content)
    assert recorder.received[0].rcpt_tos == ["layla@example.test"]
    assert parsed.get_content_type() == "text/plain"
    assert body(parsed) == "نص فقط"


def test_starttls_then_login(server_tls: ssl.SSLContext, tls_files: tuple[Path, Path]) -> None:
    recorder = Recorder()
    with smtp_server(
        recorder, tls_context=server_tls, require_starttls=True, authenticator=recorder.authenticator
    ) as port:
        mailer = SmtpMailer(
            host="127.0.0.1",
            port=port,
            username="mailer",
            password="s3cret-pw",
            sender=SENDER,
            timeout=5,
            ca_file=str(tls_files[0]),
        )
        mailer.send(message())
    assert recorder.logins == ["mailer"]
    [received] = recorder.received
    assert received.tls
    assert parse(received.content)["Subject"] == SUBJECT


def test_untrusted_certificate_is_refused(server_tls: ssl.SSLContext) -> None:
    recorder = Recorder()
    with (
        smtp_server(recorder, tls_context=server_tls, require_starttls=True) as port,
        pytest.raises(MailerError) as caught,
    ):
        SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=5).send(message())
    assert not caught.value.permanent
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert recorder.received == []


def test_wrong_password_is_a_permanent_error(server_tls: ssl.SSLContext, tls_files) -> None:
    recorder = Recorder()
    with smtp_server(recorder, tls_context=server_tls, authenticator=recorder.authenticator) as port:
        mailer = SmtpMailer(
            host="127.0.0.1",
            port=port,
            username="mailer",
            password="wrong",
            sender=SENDER,
            timeout=5,
            ca_file=str(tls_files[0]),
        )
        with pytest.raises(MailerError) as caught:
            mailer.send(message())
    assert caught.value.permanent
    assert "535" in str(caught.value)
    assert recorder.received == []


def test_credentials_never_sent_without_offered_starttls() -> None:
    recorder = Recorder()
    with smtp_server(recorder, authenticator=recorder.authenticator, auth_require_tls=False) as port:
        mailer = SmtpMailer(
            host="127.0.0.1", port=port, username="mailer", password="s3cret-pw", sender=SENDER, timeout=5
        )
        with pytest.raises(MailerError, match="STARTTLS"):
            mailer.send(message())
        assert recorder.logins == [] and recorder.received == []

        # Explicitly configured without TLS (a local relay), the same server gets the login.
        mailer.model_copy(update={"starttls": False}).send(message())
    assert recorder.logins == ["mailer"]
    assert len(recorder.received) == 1 and not recorder.received[0].tls


def test_refused_recipient() -> None:
    recorder = Recorder(refuse={"ghost@example.test"})
    with smtp_server(recorder) as port:
        mailer = SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=5)
        with pytest.raises(MailerError) as caught:
            mailer.send(message(to="ghost@example.test"))
        assert caught.value.permanent
        # One of two refused: delivered to the other (not retried, which would duplicate it).
        mailer.send(message(to=("ghost@example.test", "layla@example.test")))
    assert [r.rcpt_tos for r in recorder.received] == [["layla@example.test"]]


def test_non_ascii_credentials_fail_before_connecting() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), username="u", password="كلمة", sender=SENDER)
    with pytest.raises(MailerError, match="ASCII") as caught:
        mailer.send(message())
    assert caught.value.permanent


def test_unreachable_server_is_a_temporary_error() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), sender=SENDER, timeout=2)
    with pytest.raises(MailerError) as caught:
        mailer.send(message())
    assert not caught.value.permanent


def test_header_injection_is_refused() -> None:
    recorder = Recorder()
    with smtp_server(recorder) as port:
        mailer = SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=5)
        with pytest.raises(ValueError):
            mailer.send(message(subject="hello\r\nBcc: victim@example.test"))
    assert recorder.received == []


def test_a_message_needs_a_recipient() -> None:
    with pytest.raises(ValueError):
        OutgoingEmail(to=(), subject="s", text="t")
    with pytest.raises(ValueError):
        OutgoingEmail(to=" ", subject="s", text="t")


def test_outbox_mailer_writes_private_eml_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="resources.email")
    mailer = OutboxMailer(maildir=str(tmp_path / "mail"), sender=SENDER)
    assert mailer.messages() == []
    mailer.send(message())
    mailer.send(message(subject="الثانية", to="omar@example.test"))

    first, second = mailer.messages()
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    parsed = parse(first.read_bytes())
    assert parsed["Subject"] == SUBJECT
    assert body(parsed.get_body(("plain",))) == TEXT
    assert body(parsed.get_body(("html",))) == HTML
    assert parse(second.read_bytes())["Subject"] == "الثانية"
    assert first.name < second.name  # names sort in sending order
    assert not list((tmp_path / "mail").glob(".*"))  # no partial files left behind

    assert str(first) in caplog.text
    assert "SECRET-TOKEN" not in caplog.text and SUBJECT not in caplog.text


def test_mailer_for_settings(tmp_path: Path) -> None:
    embedded = mailer_for(Settings(data_dir=tmp_path))
    assert isinstance(embedded, OutboxMailer)
    assert Path(embedded.maildir) == tmp_path / "mail"

    smtp = mailer_for(
        Settings(
            data_dir=tmp_path,
            smtp_host="smtp.example.test",
            smtp_port=2525,
            smtp_username="u",
            smtp_password="p",
            smtp_starttls=False,
            smtp_from=SENDER,
        )
    )
    assert isinstance(smtp, SmtpMailer)
    assert (smtp.host, smtp.port, smtp.username, smtp.password, smtp.starttls, smtp.sender) == (
        "smtp.example.test",
        2525,
        "u",
        "p",
        False,
        SENDER,
    )
