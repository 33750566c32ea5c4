"""Attack: webhooks as a way into the platform's own network (SSRF).

A user registers a webhook through the contacts API; the delivery job POSTs to it. The attacks:

- DNS rebinding: the attacker's name answers a public address to the delivery's check and
  127.0.0.1 to the HTTP client's own lookup a moment later. The delivery must connect to the address
  it checked: a receiver on loopback gets nothing.
- an address inside the network named outright (127.0.0.1, [::1], 169.254.169.254, ...) or by a
  name that resolves there (localhost): refused at registration, 422 naming `address`.
- a proxy from the environment (`HTTP_PROXY`): it would resolve the name itself; it is ignored.
- reading the network through the delivery report: an internal service's error page was stored
  as the failure reason and shown by the API; now only the status is kept.

The "network" here is patched at the socket level only (`socket.getaddrinfo` answers for the test's
names, `socket.socket.connect` refuses and records connections to the test's public address, so
nothing leaves the machine); the delivery runs our real client code end to end.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest
from litestar.testing import AsyncTestClient

from domain.auth.keys import Keyring
from domain.notifications import delivery
from domain.settings import Settings
from resources.database import OperationalDatabase
from resources.notifiers.webhook import WebhookTransport
from serving.app import create_app
from tests.serving.conftest import bearer

API = "/api/v1/notifications"
SECRET = "webhook-signing-secret-0123456789"
PUBLIC = "93.184.216.34"  # a public address (never reached: the patched connect refuses it)


@dataclass
class FakeNet:
    """Name answers (each lookup takes the first answer; the last one repeats) and the connections
    attempted to `PUBLIC`."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
def fake_net(monkeypatch: pytest.MonkeyPatch) -> FakeNet:
    net = FakeNet()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        name = host.decode() if isinstance(host, bytes) else host
        if name in net.answers:
            net.lookups.append(name)
            queue = net.answers[name]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]
        return real_getaddrinfo(host, port, family, type, proto, flags)

    def refuse_public(address) -> None:
        if isinstance(address, tuple) and address[0] == PUBLIC:
            net.connections.append((address[0], address[1]))
            raise ConnectionRefusedError(111, "refused by the test network")

    def connect(self, address):
        refuse_public(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        refuse_public(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return net


class Receiver(ThreadingHTTPServer):
    """Records every request; answers `status` with `body`."""

    def __init__(self, status: int = 204, body: bytes = b"") -> None:
        self.requests: list[tuple[str, str]] = []
        self.status, self.body = status, body
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.requests.append((self.command, self.path))
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args) -> None:
        """Quiet: the test reads what it needs from the recorded requests."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve(Receiver())


def _serve(server: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def _send(client: AsyncTestClient, editor: str, recipient) -> str:
    sent = await client.post(
        f"{API}/send",
        headers=bearer(editor),
        json={
            "recipient_ids": [str(recipient)],
            "channels": ["webhook"],
            "category": "security",
            "subject": {"en": "Hello"},
            "content": {"en": "A webhook"},
        },
    )
    assert sent.status_code == 201, sent.text
    [notification] = sent.json()["notifications"]
    return notification["id"]


def _deliver(url: str, keys: Keyring, *, allow_private_networks: bool = False) -> delivery.Tally:
    """One pass of the delivery job's drain with the real webhook transport (blocking)."""
    database = OperationalDatabase(url=url)
    transport = WebhookTransport(timeout_seconds=3, allow_private_networks=allow_private_networks)
    try:
        return delivery.drain(
            database.session,
            {"webhook": transport},
            now=datetime.now(UTC) + timedelta(seconds=1),
            policy=delivery.Policy(keys=keys),
        )
    finally:
        database.engine().dispose()


async def test_dns_rebinding_cannot_turn_a_checked_public_host_into_loopback(
    anonymous: AsyncTestClient, new_user, token_for, fake_net: FakeNet, receiver: Receiver, migrated_url: str
) -> None:
    user_id, token = new_user("rebinder", ["viewer"])
    host = "rebind.attacker.test"
    fake_net.answers[host] = [PUBLIC]  # at registration the name looks public
    url = f"http://{host}:{receiver.port}/hook"
    registered = await anonymous.put(
        f"{API}/contacts",
        headers=bearer(token),
        json={"channel": "webhook", "address": url, "secret": SECRET},
    )
    assert registered.status_code == 200, registered.text
    notification_id = await _send(anonymous, token_for("editor"), user_id)

    # TTL 0: the next lookup answers the public address, every later one the loopback receiver.
    fake_net.answers[host] = [PUBLIC, "127.0.0.1"]
    fake_net.lookups.clear()
    tally = await anyio.to_thread.run_sync(_deliver, migrated_url, anonymous.app.state.auth.keys)

    assert receiver.requests == [], "the delivery connected to an address it never checked"
    assert fake_net.connections == [(PUBLIC, receiver.port)]  # the checked address, and only it
    assert fake_net.lookups == [host]  # resolved once, for the check
    assert tally.as_dict()["webhook"]["retried"] == 1  # unreachable for now: retried, not lost
    report = await anonymous.get(f"{API}/delivery/{notification_id}", headers=bearer(token))
    [attempt] = report.json()["deliveries"]
    assert attempt["status"] == "queued" and PUBLIC in attempt["error_message"]


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:{port}/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0:{port}/hook",
        "http://localhost:{port}/hook",  # a name that resolves to loopback only
        "http://internal.attacker.test/hook",  # the attacker's name for the metadata service
    ],
)
async def test_private_destinations_are_refused_at_registration(
    anonymous: AsyncTestClient, new_user, fake_net: FakeNet, receiver: Receiver, address: str
) -> None:
    fake_net.answers["internal.attacker.test"] = ["169.254.169.254"]
    _, token = new_user("prober", ["viewer"])
    res = await anonymous.put(
        f"{API}/contacts",
        headers=bearer(token),
        json={"channel": "webhook", "address": address.format(port=receiver.port), "secret": SECRET},
    )
    assert res.status_code == 422, res.text
    assert res.json()["errors"][0]["field"] == "address"
    assert "THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in res.text
    if "attacker" in address:  # what a name resolves to is not told: no map of the internal network
        assert "169.254" not in res.text
    assert (await anonymous.get(f"{API}/contacts", headers=bearer(token))).json() == []


@pytest.fixture
async def private_ok(migrated_url: str, data_dir) -> Iterator[AsyncTestClient]:
    """The API of a deployment that allows webhooks into private networks (the setting)."""
    settings = Settings(
        deployment="local", data_dir=data_dir, database_url=migrated_url, webhook_allow_private_networks=True
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def test_the_setting_allows_private_destinations(
    private_ok: AsyncTestClient, new_user, receiver
) -> None:
    _, token = new_user("intranet", ["viewer"])
    res = await private_ok.put(
        f"{API}/contacts",
        headers=bearer(token),
        json={"channel": "webhook", "address": f"http://127.0.0.1:{receiver.port}/hook", "secret": SECRET},
    )
    assert res.status_code == 200, res.text


async def test_an_internal_answer_is_not_read_back_through_the_delivery_report(
    private_ok: AsyncTestClient, new_user, token_for, migrated_url: str
) -> None:
    """Even where private networks are allowed, what a service answers is not stored or shown: only
    its status."""
    leak = b"<h1>403</h1> internal admin console: db password hunter2"
    for server in _serve(Receiver(status=403, body=leak)):
        user_id, token = new_user("reader", ["viewer"])
        url = f"http://127.0.0.1:{server.port}/admin"
        res = await private_ok.put(
            f"{API}/contacts",
            headers=bearer(token),
            json={"channel": "webhook", "address": url, "secret": SECRET},
        )
        assert res.status_code == 200, res.text
        notification_id = await _send(private_ok, token_for("editor"), user_id)
        await anyio.to_thread.run_sync(
            lambda: _deliver(migrated_url, private_ok.app.state.auth.keys, allow_private_networks=True)
        )
        assert len(server.requests) == 1
    report = await private_ok.get(f"{API}/delivery/{notification_id}", headers=bearer(token))
    [attempt] = report.json()["deliveries"]
    assert attempt["status"] == "failed"
    assert attempt["error_message"] == "webhook answered 403"
    assert "hunter2" not in report.text and "console" not in report.text


async def test_a_proxy_from_the_environment_is_not_used(
    anonymous: AsyncTestClient,
    new_user,
    token_for,
    fake_net: FakeNet,
    receiver: Receiver,
    migrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy would resolve the name itself (and may reach anything inside): the client ignores the
    environment and connects to the checked address."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{receiver.port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    host = "hooks.partner.test"
    fake_net.answers[host] = [PUBLIC]
    user_id, token = new_user("partner", ["viewer"])
    res = await anonymous.put(
        f"{API}/contacts",
        headers=bearer(token),
        json={"channel": "webhook", "address": f"http://{host}/in", "secret": SECRET},
    )
    assert res.status_code == 200, res.text
    await _send(anonymous, token_for("editor"), user_id)
    await anyio.to_thread.run_sync(_deliver, migrated_url, anonymous.app.state.auth.keys)
    assert receiver.requests == [], "the request went to the proxy named by the environment"
    assert fake_net.connections == [(PUBLIC, 80)]
