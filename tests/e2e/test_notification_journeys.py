"""Notifications, all the way, on the embedded deployment:

- a broadcast posted through the API -> one tick of `notification_broadcasts_sensor` -> the run it
  requests of `notification_broadcast_job` -> the recipients' inboxes and the broadcast's status,
  both read through the API;
- a notification sent through the API on the email and webhook channels -> one tick of
  `notification_deliveries_sensor` -> the run it requests of `notification_deliveries_job` (the
  `notification_deliveries` asset) -> a real SMTP server (aiosmtpd) and a local HTTP receiver that
  checks the signature with `domain.notifications.webhooks.verify` -> both deliveries `delivered`
  in the delivery report of the API.

Sensors, jobs and resources come from `orchestration.definitions.build_definitions(settings)`; each
job runs in process with an ephemeral Dagster instance, as the daemon would launch it."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from litestar.testing import AsyncTestClient

from domain.migrate import upgrade
from domain.notifications import webhooks
from domain.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.deployment import build_resources
from serving.app import create_app
from tests.conftest import free_port
from tests.serving.conftest import bearer, make_user, mint_token

pytestmark = pytest.mark.slow
API = "/api/v1/notifications"
HOOK_SECRET = "e2e-webhook-secret-0123456789"
SENDER = "thmnayah <no-reply@thmnayah.test>"


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps every message it accepts."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


class HookReceiver(BaseHTTPRequestHandler):
    """A webhook receiver as the docs tell one to be written: the raw body checked with
    `webhooks.verify`, 401 when it is not signed with our secret, 204 when it is."""

    server: HookServer

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            webhooks.verify(HOOK_SECRET, self.headers, body, now=int(time.time()), seen=self.server.seen)
        except webhooks.WebhookSignatureError as exc:
            self.server.refused.append(exc.reason)
            self.send_response(401)
        else:
            self.server.accepted.append((self.path, dict(self.headers), body))
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet: the test reads what it needs from the recorded requests."""


class HookServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HookReceiver)
        self.seen: set[str] = set()
        self.accepted: list[tuple[str, dict[str, str], bytes]] = []
        self.refused: list[str] = []


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    server = HookServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@dataclass
class Platform:
    settings: Settings
    client: AsyncTestClient
    editor: dict[str, str]  # headers of a user who may send and broadcast


@pytest.fixture
async def platform(data_dir: Path, sqlite_url: str, smtp: tuple[Mailbox, int]) -> AsyncIterator[Platform]:
    """The API on the embedded deployment, mail going to the aiosmtpd server, webhooks to loopback
    allowed (the setting THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS)."""
    upgrade(sqlite_url)
    settings = Settings(
        deployment="local",
        data_dir=data_dir,
        database_url=sqlite_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_starttls=False,
        smtp_from=SENDER,
        webhook_allow_private_networks=True,
        webhook_timeout_seconds=5,
    )
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        editor = make_user(sqlite_url, "newsdesk", ["editor"])
        yield Platform(settings, client, bearer(mint_token(app, sqlite_url, editor)))


def person(platform: Platform, username: str, roles: list[str], **fields) -> tuple[uuid.UUID, dict[str, str]]:
    user_id = make_user(platform.settings.database_url, username, roles, **fields)
    return user_id, bearer(mint_token(platform.client.app, platform.settings.database_url, user_id))


def tick_and_run(settings: Settings, sensor_name: str) -> tuple[list[dg.RunRequest], list[dg.DagsterRun]]:
    """One evaluation of the real sensor, then each run it requests, executed in process (as the
    daemon would launch them); returns the requests and the finished runs. Blocking: call it in a
    worker thread (the delivery drain runs its own event loop)."""
    definitions = build_definitions(settings)
    sensor = definitions.resolve_sensor_def(sensor_name)
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(instance=instance, resources=build_resources(settings)) as context:
            result = sensor(context)
        requests = [
            r for r in (result if isinstance(result, list) else [result]) if isinstance(r, dg.RunRequest)
        ]
        runs = []
        for request in requests:
            run = definitions.resolve_job_def(sensor.job_name).execute_in_process(
                run_config=request.run_config, tags=request.tags, instance=instance
            )
            assert run.success, f"{sensor.job_name} failed for {request.run_key}"
            runs.append(run.dagster_run)
        with dg.build_sensor_context(instance=instance, resources=build_resources(settings)) as context:
            after = sensor(context)
    assert isinstance(after, dg.SkipReason), f"{sensor_name} still wants runs after they ran: {after}"
    return requests, runs


async def test_a_broadcast_from_the_api_reaches_the_inboxes_and_completes(platform: Platform) -> None:
    client, editor = platform.client, platform.editor
    layla, layla_headers = person(platform, "layla", ["viewer"], preferences={"locale": "ar-SA"})
    sam, sam_headers = person(platform, "sam", ["viewer"], preferences={"language": "en"})
    analyst, analyst_headers = person(platform, "numbers", ["analyst"])  # not in the audience

    posted = await client.post(
        f"{API}/broadcast",
        headers=editor,
        json={
            "name": "Ramadan schedule",
            "channels": ["in_app"],
            "subject": {"ar": "جدول رمضان", "en": "Ramadan schedule"},
            "content": {"ar": "البرامج الجديدة كل ليلة", "en": "New programmes every night"},
            "criteria": {"roles": ["viewer"]},
        },
    )
    assert posted.status_code == 202, posted.text
    accepted = posted.json()
    assert (accepted["status"], accepted["matching_recipients"]) == ("queued", 2)
    assert (await client.get(f"{API}/{layla}/inbox", headers=layla_headers)).json()["items"] == []

    requests, _ = await anyio.to_thread.run_sync(
        tick_and_run, platform.settings, "notification_broadcasts_sensor"
    )

    assert [r.run_key for r in requests] == [f"broadcast-{accepted['broadcast_id']}"]
    inboxes = {}
    for user_id, headers in ((layla, layla_headers), (sam, sam_headers), (analyst, analyst_headers)):
        res = await client.get(f"{API}/{user_id}/inbox", headers=headers)
        assert res.status_code == 200, res.text
        inboxes[user_id] = res.json()
    [for_layla], [for_sam] = inboxes[layla]["items"], inboxes[sam]["items"]
    assert (for_layla["subject"], for_layla["content"], for_layla["direction"]) == (
        "جدول رمضان",
        "البرامج الجديدة كل ليلة",
        "rtl",
    )
    assert (for_sam["subject"], for_sam["content"], for_sam["direction"]) == (
        "Ramadan schedule",
        "New programmes every night",
        "ltr",
    )
    assert for_layla["category"] == for_sam["category"] == "broadcast"
    assert inboxes[layla]["unread_count"] == inboxes[sam]["unread_count"] == 1
    assert inboxes[analyst]["items"] == []

    status = await client.get(accepted["status_url"], headers=editor)
    assert status.status_code == 200, status.text
    progress = status.json()
    assert progress["status"] == "completed" and progress["error"] is None
    assert (progress["total_recipients"], progress["processed_recipients"]) == (2, 2)
    assert (progress["notifications_created"], progress["percent"]) == (2, 100.0)
    assert progress["started_at"] is not None and progress["finished_at"] is not None


async def test_a_notification_sent_through_the_api_is_delivered_by_email_and_signed_webhook(
    platform: Platform, smtp: tuple[Mailbox, int], hooks: HookServer
) -> None:
    client, editor = platform.client, platform.editor
    mailbox, _ = smtp
    reader, reader_headers = person(platform, "reader", ["viewer"], preferences={"locale": "ar"})
    hook_url = f"http://127.0.0.1:{hooks.server_address[1]}/hooks/reader"
    contact = await client.put(
        f"{API}/contacts",
        headers=reader_headers,
        json={"channel": "webhook", "address": hook_url, "secret": HOOK_SECRET},
    )
    assert contact.status_code == 200, contact.text

    sent = await client.post(
        f"{API}/send",
        headers=editor,
        json={
            "recipient_ids": [str(reader)],
            "channels": ["email", "webhook"],
            "category": "content.published",
            "subject": {"ar": "مقال جديد: الخط العربي", "en": "New article: Arabic calligraphy"},
            "content": {"ar": "اقرأ المقال الآن", "en": "Read the article now"},
            "notification_type": "success",
        },
    )
    assert sent.status_code == 201, sent.text
    ids = {n["channel"]: n["id"] for n in sent.json()["notifications"]}
    assert set(ids) == {"email", "webhook"} and sent.json()["skipped"] == []
    before = (await client.get(f"{API}/delivery/{ids['email']}", headers=reader_headers)).json()
    assert [d["status"] for d in before["deliveries"]] == ["queued"]  # nothing is sent by the API itself

    requests, runs = await anyio.to_thread.run_sync(
        tick_and_run, platform.settings, "notification_deliveries_sensor"
    )

    assert len(requests) == 1 and requests[0].tags["due_deliveries"] == "2"
    assert runs[0].job_name == "notification_deliveries_job"
    # The email: to the reader's address, in their language, through the SMTP server.
    assert len(mailbox.messages) == 1, f"the SMTP server received {len(mailbox.messages)} messages, want 1"
    [(mail_from, rcpt_tos, raw)] = mailbox.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail_from == "no-reply@thmnayah.test" and rcpt_tos == ["reader@example.test"]
    assert [a.addr_spec for a in message["To"].addresses] == ["reader@example.test"]
    assert message["Subject"] == "مقال جديد: الخط العربي"
    assert "اقرأ المقال الآن" in message.get_body(("plain",)).get_content()
    # The webhook: one request, signed with the contact's secret (checked by the receiver).
    assert hooks.refused == []
    assert len(hooks.accepted) == 1, f"the receiver accepted {len(hooks.accepted)} requests, want 1"
    [(path, headers, body)] = hooks.accepted
    payload = json.loads(body)
    assert path == "/hooks/reader"
    assert payload["id"] == ids["webhook"]
    assert (payload["subject"], payload["text"], payload["language"]) == (
        "مقال جديد: الخط العربي",
        "اقرأ المقال الآن",
        "ar",
    )
    envelope = payload["data"]
    assert (envelope["notification_id"], envelope["category"], envelope["type"]) == (
        ids["webhook"],
        "content.published",
        "success",
    )
    assert headers[webhooks.DELIVERY_HEADER] == payload["delivery_id"]
    # The delivery report of the API: both delivered, on the first attempt.
    for channel, destination in (("email", "reader@example.test"), ("webhook", hook_url)):
        res = await client.get(f"{API}/delivery/{ids[channel]}", headers=reader_headers)
        assert res.status_code == 200, res.text
        report = res.json()
        assert (report["channel"], report["status"]) == (channel, "delivered"), report
        assert report["delivered_at"] is not None
        [attempt] = report["deliveries"]
        assert (attempt["destination"], attempt["status"], attempt["attempts"]) == (
            destination,
            "delivered",
            1,
        )
        assert attempt["error_message"] is None
