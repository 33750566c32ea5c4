"""Push, SMS and webhook transports against small HTTP servers on loopback that speak FCM v1, an SMS
gateway's JSON and a webhook receiver's checks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import google.auth.jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from domain.notifications import webhooks
from domain.notifications.outgoing import Delivered, DeliveryFailed
from resources.notifiers.push import FCM_SCOPE, FcmPushTransport
from resources.notifiers.sms import SmsGatewayTransport
from resources.notifiers.webhook import WebhookTransport, webhook_body
from tests.resources.conftest import SUBJECT, TEXT, JsonHandler, http_server, outgoing, send, silent_port

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
    tokens = [
        "device-ok-1",
        "device-busy",
        "device-down",
        "device-500",
        "device-gone",
        "device-stale",
        "device-bad",
        "device-denied",
    ]
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
    [
        "http://127.0.0.1:9/h",
        "http://localhost/h",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/h",
        "https://10.1.2.3/h",
    ],
)
def test_webhook_refuses_hosts_in_private_networks_by_default(url: str) -> None:
    [outcome] = send(WebhookTransport(timeout_seconds=1), [outgoing("webhook", url, secret="s")])
    assert isinstance(outcome, DeliveryFailed) and outcome.permanent
    assert (
        "non-public address" in outcome.reason and "THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in outcome.reason
    )
