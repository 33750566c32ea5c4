"""Fixtures and helpers shared by the resource tests (the transport tests' messages and servers)."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from domain.notifications.outgoing import Outcome, Outgoing


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# --- NATS JetStream: read back what a relay published --------------------------------------------


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    msg_id: str
    body: dict


async def stream_messages(url: str, stream: str) -> list[StreamMessage]:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(stream)
        if info.state.messages == 0:
            return []
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            out.append(StreamMessage(seq, msg.subject, msg.headers["Nats-Msg-Id"], json.loads(msg.data)))
        assert len(out) == info.state.messages
        return out
    finally:
        await nc.close()


async def delete_stream(url: str, stream: str) -> None:
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url, connect_timeout=5)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream(timeout=5).delete_stream(stream)
    finally:
        await nc.close()


# --- delivery transports -------------------------------------------------------------------------

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
