"""The delivery drain on a controlled clock, through the real transports: `.eml` files, webhooks and
an FCM v1 server on loopback (scripted to fail, then succeed), quiet hours, digests, backoff and
permanent failures."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from domain.auth import audit, users
from domain.auth.keys import Keyring
from domain.notifications import contacts, delivery, rules, service, templates, webhooks
from domain.notifications.outgoing import Delivered, DeliveryFailed
from domain.schema import DeliveryLog, Notification, NotificationPreference, NotificationTemplate, OutboxEvent
from resources.database import OperationalDatabase as DB
from resources.notifiers.base import UnconfiguredTransport
from resources.notifiers.email import FileEmailTransport
from resources.notifiers.push import FcmPushTransport
from resources.notifiers.sms import SmsGatewayTransport
from resources.notifiers.webhook import WebhookTransport
from tests.conftest import free_port

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
KEY = Keyring("platform-secret-for-tests-0123456789abcdef")
HOOK_SECRET = "whsec-0123456789abcdef"
SENDER = "thmnayah <no-reply@thmnayah.test>"
PROJECT = "demo-project"


# --- a database and users ----------------------------------------------------------------------------


def make_user(db: DB, name: str, *, locale: str | None = None) -> uuid.UUID:
    with db.session() as session:
        user = users.create_user(
            session,
            users.NewUser(
                name, f"{name}@example.test", None, preferences={"locale": locale} if locale else {}
            ),
            created_by=None,
            origin=audit.Origin(),
        )
        return user.id


def add_contact(db: DB, user_id: uuid.UUID, channel: str, address: str, secret: str | None = None) -> None:
    with db.session() as session:
        contacts.register(  # the receivers of these tests listen on loopback
            session,
            user_id,
            contacts.NewContact(channel, address, secret),
            keys=KEY,
            allow_private_networks=True,
        )


def prefer(db: DB, user_id: uuid.UUID, channel: str, **values: Any) -> None:
    with db.session() as session:
        session.add(NotificationPreference(user_id=user_id, notification_type="*", channel=channel, **values))


def notify(
    db: DB,
    user_id: uuid.UUID,
    channel: str,
    *,
    at: datetime = T0,
    subject: str = "Hello",
    critical: bool = False,
) -> uuid.UUID:
    with db.session() as session:
        outcome = service.send(
            session,
            service.Draft(
                category="test",
                channels=(channel,),
                subject=subject,
                content={"en": f"{subject}: body", "ar": f"{subject}: نص"},
                critical=critical,
            ),
            [user_id],
            now=at,
        )
        return outcome.notifications[0].id


def logs(db: DB, notification_id: uuid.UUID | None = None) -> list[DeliveryLog]:
    with db.session() as session:
        query = sa.select(DeliveryLog).order_by(DeliveryLog.created_at, DeliveryLog.id)
        if notification_id is not None:
            query = query.where(DeliveryLog.notification_id == notification_id)
        return list(session.scalars(query))


def notification(db: DB, notification_id: uuid.UUID) -> Notification:
    with db.session() as session:
        return session.get(Notification, notification_id)


def events(db: DB, *types: str) -> list[OutboxEvent]:
    with db.session() as session:
        return list(
            session.scalars(
                sa.select(OutboxEvent).where(OutboxEvent.event_type.in_(types)).order_by(OutboxEvent.seq)
            )
        )


POLICY = delivery.Policy(keys=KEY, jitter=0.0, retry_base_seconds=30, max_attempts=4)


def drain(
    db: DB, transports: dict[str, Any], at: datetime, policy: delivery.Policy = POLICY
) -> delivery.Tally:
    return delivery.drain(db.session, transports, now=at, policy=policy, rng=random.Random(7))


# --- scripted HTTP servers ---------------------------------------------------------------------------


class Scripted(BaseHTTPRequestHandler):
    """Answers POSTs from `server.script[path]` (a list of (status, json, headers), the last one
    repeating) and records (path, headers, body)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        with server.lock:
            server.requests.append((self.path, dict(self.headers), body))
            script = server.script.get(self.path) or [(404, {"error": "no such path"}, {})]
            status, payload, headers = script.pop(0) if len(script) > 1 else script[0]
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def scripted_server(script: dict[str, list[tuple[int, Any, dict[str, str]]]]) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    server.script, server.requests, server.lock = script, [], threading.Lock()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def service_account(tmp_path: Path, token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": f"sender@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return str(path)


def read_eml(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    return tmp_path / "mail"


@pytest.fixture
def file_email(mail_dir: Path) -> FileEmailTransport:
    return FileEmailTransport(directory=str(mail_dir), sender=SENDER)


# --- pure parts ------------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_honors_retry_after_and_caps_at_six_hours() -> None:
    rng = random.Random(1)
    assert delivery.backoff(1, 30, jitter=0) == timedelta(seconds=30)
    assert delivery.backoff(3, 30, jitter=0) == timedelta(seconds=120)
    jittered = [delivery.backoff(2, 30, jitter=0.1, rng=rng).total_seconds() for _ in range(50)]
    assert all(60 <= s <= 66 for s in jittered) and len(set(jittered)) > 40
    assert delivery.backoff(1, 30, retry_after=120, jitter=0) == timedelta(seconds=120)
    assert delivery.backoff(1, 30, retry_after=5, jitter=0) == timedelta(seconds=30)
    assert delivery.backoff(20, 30, jitter=0) == timedelta(hours=6)


def test_rate_limits_parse_and_refuse_nonsense() -> None:
    assert delivery.parse_rate_limits("email=200, sms=2.5") == {
        "email": 200,
        "sms": 2.5,
        "push": 500,
        "webhook": 50,
    }
    for bad in ("fax=1", "email", "email=0", "email=many"):
        with pytest.raises(ValueError):
            delivery.parse_rate_limits(bad)


def test_token_bucket_paces_batches() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = delivery.TokenBucket(10, clock=lambda: clock[0], sleep=sleep)
    assert bucket.chunk == 10
    assert bucket.take(10) == 0  # a full second's burst at once
    assert bucket.take(10) == pytest.approx(1.0)
    clock[0] += 0.5
    assert bucket.take(5) == 0
    assert bucket.take(2) == pytest.approx(0.2)
    assert sum(slept) == pytest.approx(1.2)


# --- the drain ---------------------------------------------------------------------------------------


def test_email_is_delivered_once_and_the_notification_follows(
    db: DB, file_email: FileEmailTransport, mail_dir: Path
) -> None:
    layla = make_user(db, "layla", locale="ar")
    nid = notify(db, layla, "email", subject="مرحبا")
    tally = drain(db, {"email": file_email}, T0)
    assert tally.as_dict()["email"]["sent"] == 1 and tally.claimed == 1
    [log] = logs(db, nid)
    assert (log.status, log.attempt_count, log.last_attempt) == ("delivered", 1, T0)
    assert log.delivery_metadata["provider_id"] == str(mail_dir / f"{log.id}.eml")
    message = read_eml(mail_dir / f"{log.id}.eml")
    assert message["Subject"] == "مرحبا" and message["To"] == "layla@example.test"
    assert 'dir="rtl"' in message.get_body(("html",)).get_content()
    note = notification(db, nid)
    assert (note.status, note.sent_at, note.delivered_at) == ("delivered", T0, T0)
    [event] = events(db, "notification.delivered")
    assert event.payload["delivery_id"] == str(log.id) and event.payload["recipient_id"] == str(layla)
    # Nothing is due any more: a second drain sends nothing.
    assert drain(db, {"email": file_email}, T0 + timedelta(minutes=5)).claimed == 0
    assert len(list(mail_dir.iterdir())) == 1


def test_templated_arabic_email_reaches_a_real_smtp_server_right_to_left(db: DB) -> None:
    """The default `content.published` email template, rendered for an ar-SA reader (falling back to
    `ar`), drained through the aiosmtplib transport into an in-process aiosmtpd server."""
    from aiosmtpd.controller import Controller

    from domain.notifications import rules
    from resources.notifiers.email import SmtpEmailTransport

    received: list[bytes] = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
            received.append(envelope.original_content or envelope.content)
            return "250 OK"

    with db.session() as session:
        rules.seed_default_templates(session)
    reader = make_user(db, "salma", locale="ar-SA")
    with db.session() as session:
        service.send(
            session,
            service.Draft(
                category="content.published",
                channels=("email",),
                template="content.published",
                data={
                    "content": {
                        "id": "c1",
                        "title": {"ar": "وثائقي: رمضان", "en": "Ramadan"},
                        "type": "video",
                        "slug": "ramadan",
                        "url": "https://example.test/c/1",
                    }
                },
            ),
            [reader],
            now=T0,
        )
    port = free_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = SmtpEmailTransport(
            host="127.0.0.1", port=port, starttls=False, sender=SENDER, timeout_seconds=5
        )
        tally = drain(db, {"email": smtp}, T0)
    finally:
        controller.stop()
    assert tally.as_dict()["email"]["sent"] == 1
    [raw] = received
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == "salma@example.test"
    assert "وثائقي: رمضان" in message["Subject"]
    html = message.get_body(("html",)).get_content()
    assert 'dir="rtl"' in html and 'lang="ar"' in html and "وثائقي: رمضان" in html
    assert "وثائقي: رمضان" in message.get_body(("plain",)).get_content()
    [log] = logs(db)
    assert log.status == "delivered" and log.delivery_metadata.get("provider_id")


def test_webhook_500_is_retried_with_backoff_then_delivered_signed(db: DB) -> None:
    omar = make_user(db, "omar")
    with scripted_server({"/hook": [(500, {"error": "boom"}, {}), (200, {"ok": True}, {})]}) as server:
        add_contact(db, omar, "webhook", f"{server.base}/hook", HOOK_SECRET)
        nid = notify(db, omar, "webhook", subject="Deploy")
        webhook = WebhookTransport(timeout_seconds=5, allow_private_networks=True)

        first = drain(db, {"webhook": webhook}, T0)
        assert first.as_dict()["webhook"]["retried"] == 1
        [log] = logs(db, nid)
        assert (log.status, log.attempt_count, log.next_retry) == ("queued", 1, T0 + timedelta(seconds=30))
        assert "500" in log.error_message and log.delivery_metadata["http_status"] == 500
        assert notification(db, nid).status == "pending"

        assert drain(db, {"webhook": webhook}, T0 + timedelta(seconds=29)).claimed == 0  # not due yet
        second = drain(db, {"webhook": webhook}, T0 + timedelta(seconds=30))
        assert second.as_dict()["webhook"]["sent"] == 1
        [log] = logs(db, nid)
        assert (log.status, log.attempt_count, log.error_message) == ("delivered", 2, None)
        assert notification(db, nid).status == "delivered"

        assert len(server.requests) == 2
        seen: set[str] = set()
        for _, headers, body in server.requests:  # each attempt signed afresh, same delivery id
            assert headers[webhooks.DELIVERY_HEADER] == str(log.id)
            # The retry repeats the delivery id on purpose: a receiver that handled it drops it.
            with contextlib.suppress(webhooks.WebhookReplayError):
                webhooks.verify(HOOK_SECRET, headers, body, now=int(time.time()), seen=seen)
        payload = json.loads(server.requests[-1][2])
        assert payload["subject"] == "Deploy" and payload["data"]["notification_id"] == str(nid)


def test_fcm_429_waits_at_least_retry_after_and_404_unregistered_bounces(db: DB, tmp_path: Path) -> None:
    sara, ali = make_user(db, "sara"), make_user(db, "ali")
    messages = f"/v1/projects/{PROJECT}/messages:send"
    token = (200, {"access_token": "ya29.x", "expires_in": 3600, "token_type": "Bearer"}, {})
    script = {
        "/token": [token],
        messages: [
            (
                429,
                {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}},
                {"Retry-After": "120"},
            ),
            (200, {"name": f"projects/{PROJECT}/messages/1"}, {}),
        ],
    }
    with scripted_server(script) as server:
        add_contact(db, sara, "push", "device-token-sara-0001")
        push = FcmPushTransport(
            project_id=PROJECT,
            credentials_file=service_account(tmp_path, f"{server.base}/token"),
            base_url=server.base,
            timeout_seconds=5,
        )
        nid = notify(db, sara, "push", subject="Breaking")
        drain(db, {"push": push}, T0)
        [log] = logs(db, nid)
        assert log.status == "queued" and log.next_retry == T0 + timedelta(
            seconds=120
        )  # not the 30 s backoff
        assert log.delivery_metadata["retry_after"] == 120
        drain(db, {"push": push}, T0 + timedelta(seconds=120))
        [log] = logs(db, nid)
        assert (
            log.status == "delivered"
            and log.delivery_metadata["provider_id"] == f"projects/{PROJECT}/messages/1"
        )

        gone = (
            404,
            {
                "error": {
                    "code": 404,
                    "status": "NOT_FOUND",
                    "message": "gone",
                    "details": [{"errorCode": "UNREGISTERED"}],
                }
            },
            {},
        )
        server.script[messages] = [gone]
        add_contact(db, ali, "push", "device-token-ali-0002")
        bounced = notify(db, ali, "push", subject="Breaking", at=T0 + timedelta(minutes=5))
        tally = drain(db, {"push": push}, T0 + timedelta(minutes=5))
    assert tally.as_dict()["push"]["bounced"] == 1 and tally.failures[0]["status"] == "bounced"
    [log] = logs(db, bounced)
    assert log.status == "bounced" and "UNREGISTERED" in log.error_message and log.next_retry is None
    assert notification(db, bounced).status == "failed"
    [failed] = events(db, "notification.failed")
    assert failed.payload["bounced"] is True and failed.payload["notification_id"] == str(bounced)


def test_permanent_refusal_and_giving_up_after_max_attempts_are_failures(db: DB) -> None:
    nadia = make_user(db, "nadia")
    with scripted_server(
        {"/gone": [(410, {"error": "gone"}, {})], "/sms": [(503, {"message": "busy"}, {})]}
    ) as server:
        add_contact(db, nadia, "webhook", f"{server.base}/gone", HOOK_SECRET)
        add_contact(db, nadia, "sms", "+966501234567")
        refused = notify(db, nadia, "webhook")
        texted = notify(db, nadia, "sms")
        transports = {
            "webhook": WebhookTransport(timeout_seconds=5, allow_private_networks=True),
            "sms": SmsGatewayTransport(url=f"{server.base}/sms", timeout_seconds=5),
        }
        policy = delivery.Policy(keys=KEY, jitter=0.0, retry_base_seconds=10, max_attempts=3)
        at = T0
        for _ in range(3):
            drain(db, transports, at, policy)
            at += timedelta(hours=1)
        [hook] = logs(db, refused)
        assert (hook.status, hook.attempt_count) == ("failed", 1) and "410" in hook.error_message
        [sms] = logs(db, texted)
        assert (sms.status, sms.attempt_count) == ("failed", 3)
        assert sms.error_message.startswith("gave up after 3 attempts: SMS gateway 503")
        assert len([r for r in server.requests if r[0] == "/sms"]) == 3
    assert notification(db, refused).status == notification(db, texted).status == "failed"
    assert {e.payload["channel"] for e in events(db, "notification.failed")} == {"webhook", "sms"}


def test_a_notification_fails_only_when_every_destination_failed(db: DB) -> None:
    hana = make_user(db, "hana")
    with scripted_server({"/ok": [(200, {}, {})], "/gone": [(410, {}, {})]}) as server:
        add_contact(db, hana, "webhook", f"{server.base}/ok", HOOK_SECRET)
        add_contact(db, hana, "webhook", f"{server.base}/gone", HOOK_SECRET)
        nid = notify(db, hana, "webhook")
        drain(db, {"webhook": WebhookTransport(timeout_seconds=5, allow_private_networks=True)}, T0)
    assert sorted(log.status for log in logs(db, nid)) == ["delivered", "failed"]
    assert notification(db, nid).status == "delivered"


def test_unconfigured_channel_and_unreadable_secret_fail_with_a_reason(db: DB) -> None:
    amal = make_user(db, "amal")
    add_contact(db, amal, "push", "device-token-amal-0003")
    add_contact(db, amal, "webhook", "http://127.0.0.1:9/hook", HOOK_SECRET)
    pushed = notify(db, amal, "push")
    hooked = notify(db, amal, "webhook")
    transports = {
        "push": UnconfiguredTransport(channel="push", reason="push is not configured"),
        "webhook": WebhookTransport(timeout_seconds=1, allow_private_networks=True),
    }
    tally = drain(
        db, transports, T0, delivery.Policy(keys=Keyring("another-platform-key-000000000000"), jitter=0)
    )
    assert tally.total("failed") == 2
    assert logs(db, pushed)[0].error_message == "push is not configured"
    assert "webhook secret" in logs(db, hooked)[0].error_message


def test_quiet_hours_delay_delivery_until_the_window_ends(
    db: DB, file_email: FileEmailTransport, mail_dir: Path
) -> None:
    reem = make_user(db, "reem")
    # 22:00-07:00 in Riyadh (UTC+3); 20:30 UTC is 23:30 there.
    prefer(
        db,
        reem,
        "email",
        quiet_hours_start=clock_time(22),
        quiet_hours_end=clock_time(7),
        timezone="Asia/Riyadh",
    )
    at = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)
    nid = notify(db, reem, "email", at=at)
    urgent = notify(db, reem, "email", at=at, subject="Urgent", critical=True)
    [log] = logs(db, nid)
    assert log.next_retry == datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 07:00 in Riyadh
    assert drain(db, {"email": file_email}, at).total("sent") == 1  # only the critical one
    assert logs(db, urgent)[0].status == "delivered"
    assert drain(db, {"email": file_email}, datetime(2026, 3, 3, 3, 59, tzinfo=UTC)).claimed == 0
    assert logs(db, nid)[0].status == "queued"
    assert drain(db, {"email": file_email}, datetime(2026, 3, 3, 4, 0, tzinfo=UTC)).total("sent") == 1
    assert logs(db, nid)[0].status == "delivered" and len(list(mail_dir.glob("*.eml"))) == 2


@pytest.mark.parametrize(("locale", "subject"), [("en", "3 new notifications"), ("ar", "3 إشعارات جديدة")])
def test_hourly_digest_merges_notifications_into_one_email(
    db: DB, file_email: FileEmailTransport, mail_dir: Path, locale: str, subject: str
) -> None:
    zaid = make_user(db, "zaid", locale=locale)
    prefer(db, zaid, "email", frequency="hourly")
    ids = [notify(db, zaid, "email", at=T0 + timedelta(minutes=m), subject=f"Story {m}") for m in (5, 20, 40)]
    assert {log.next_retry for log in logs(db)} == {T0 + timedelta(hours=1)}
    assert drain(db, {"email": file_email}, T0 + timedelta(minutes=59)).claimed == 0
    tally = drain(db, {"email": file_email}, T0 + timedelta(hours=1))
    assert tally.as_dict()["email"] == {"digests": 1, "messages": 1, "sent": 3}
    [path] = mail_dir.glob("*.eml")
    message = read_eml(path)
    assert message["Subject"] == subject
    text = message.get_body(("plain",)).get_content()
    assert [line for line in text.splitlines() if line.startswith("- ")] == [
        "- Story 5",
        "- Story 20",
        "- Story 40",
    ]
    if locale == "ar":
        assert 'dir="rtl"' in message.get_body(("html",)).get_content()
    rows = logs(db)
    assert {r.status for r in rows} == {"delivered"}
    assert {r.delivery_metadata["digest_of"] for r in rows} == {3}
    assert path.name == f"{rows[0].id}.eml"  # the oldest delivery leads the digest
    assert {notification(db, i).status for i in ids} == {"delivered"}
    assert len(events(db, "notification.delivered")) == 3


def test_a_runaway_digest_template_fails_its_digest_within_the_time_limit(
    db: DB, file_email: FileEmailTransport, mail_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A digest template saved by staff that would loop for hours (10^10 iterations) fails that digest
    with the time limit as its reason once the limit is spent; the drain goes on and delivers the rest."""
    monkeypatch.setattr(templates, "RENDER_SECONDS", 0.5)
    forever = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}{{ count }}"
    with db.session() as session:
        session.execute(
            sa.update(NotificationTemplate)
            .where(NotificationTemplate.name == rules.DIGEST_TEMPLATE)
            .values(is_active=False)
        )
        session.add(
            NotificationTemplate(
                name=rules.DIGEST_TEMPLATE,
                template_type="email",
                language="en",
                subject_template="Digest",
                content_template=forever,
                version=99,
            )
        )
    zaid, omar = make_user(db, "zaid"), make_user(db, "omar")
    prefer(db, zaid, "email", frequency="hourly")
    digested = [notify(db, zaid, "email", at=T0 + timedelta(minutes=m)) for m in (5, 20)]
    single = notify(db, omar, "email", at=T0 + timedelta(minutes=30))

    tally = drain(db, {"email": file_email}, T0 + timedelta(hours=1))
    assert tally.total("failed") == 2 and tally.total("sent") == 1
    for nid in digested:
        (log,) = logs(db, nid)
        assert log.status == "failed" and "longer than 0.5 s" in log.error_message, log.error_message
    assert logs(db, single)[0].status == "delivered"
    assert len(list(mail_dir.glob("*.eml"))) == 1


def test_claims_exclude_concurrent_drains_and_reclaim_abandoned_rows(db: DB) -> None:
    badr = make_user(db, "badr")
    for n in range(3):
        notify(db, badr, "email", subject=f"n{n}")
    with db.session() as session:
        first = delivery.claim(session, now=T0, limit=2)
    with db.session() as session:
        second = delivery.claim(session, now=T0, limit=10)
        again = delivery.claim(session, now=T0, limit=10)
    assert len(first) == 2 and len(second) == 1 and again == [] and not set(first) & set(second)
    with db.session() as session:
        health = delivery.health(session, now=T0 + timedelta(minutes=16))
        assert (health.stuck_sending, health.ok) == (3, False)
        # A drain that died: after `stale_after` its rows are claimable again.
        assert delivery.claim(session, now=T0 + timedelta(minutes=5), limit=10) == []
        assert sorted(delivery.claim(session, now=T0 + timedelta(minutes=11), limit=10)) == sorted(
            first + second
        )


def test_health_reports_overdue_queued_rows(db: DB) -> None:
    badr = make_user(db, "badr")
    notify(db, badr, "email")
    with db.session() as session:
        assert delivery.health(session, now=T0 + timedelta(minutes=30)).ok
        late = delivery.health(session, now=T0 + timedelta(hours=2))
        count, fingerprint = delivery.due_fingerprint(session, now=T0)
    assert (late.overdue, late.due, late.oldest_due, late.ok) == (1, 1, T0, False)
    assert count == 1 and fingerprint


def test_rate_limit_paces_chunks_through_the_transport(db: DB, file_email: FileEmailTransport) -> None:
    badr = make_user(db, "badr")
    for n in range(5):
        notify(db, badr, "email", subject=f"n{n}")
    clock, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    buckets = {"email": delivery.TokenBucket(2, clock=lambda: clock[0], sleep=sleep)}
    tally = delivery.drain(db.session, {"email": file_email}, now=T0, policy=POLICY, buckets=buckets)
    assert tally.total("sent") == 5
    assert slept == pytest.approx([1.0, 0.5]) and tally.waited_s == pytest.approx(1.5)


def test_a_transport_that_raises_leaves_every_row_retryable(db: DB) -> None:
    class Broken:
        async def send_batch(self, items):
            raise RuntimeError("socket exploded")

    badr = make_user(db, "badr")
    nid = notify(db, badr, "email")
    tally = drain(db, {"email": Broken()}, T0)
    assert tally.total("retried") == 1
    [log] = logs(db, nid)
    assert log.status == "queued" and "socket exploded" in log.error_message


def test_outcomes_are_one_per_item(db: DB) -> None:
    """Each outcome of a batch is applied to its own item; a transport that answers a different
    number of outcomes than it was given items leaves that whole batch retryable."""

    class KnowsSomeMailboxes:
        async def send_batch(self, items):
            return [
                Delivered(provider_id=f"id-{item.delivery_id}")
                if item.to.startswith("sara")
                else DeliveryFailed("550 no such mailbox", bounced=True)
                for item in items
            ]

    class AnswersOnce:
        async def send_batch(self, items):
            return [Delivered()]

    sara, omar = make_user(db, "sara"), make_user(db, "omar")
    to_sara, to_omar = notify(db, sara, "email"), notify(db, omar, "email")
    tally = drain(db, {"email": KnowsSomeMailboxes()}, T0)
    assert tally.as_dict()["email"] == {"messages": 2, "sent": 1, "bounced": 1}
    [delivered], [bounced] = logs(db, to_sara), logs(db, to_omar)
    assert delivered.status == "delivered"
    assert delivered.delivery_metadata["provider_id"] == f"id-{delivered.id}"
    assert bounced.status == "bounced" and "no such mailbox" in bounced.error_message

    first, second = notify(db, sara, "email"), notify(db, omar, "email")
    tally = drain(db, {"email": AnswersOnce()}, T0)
    assert tally.total("retried") == 2 and tally.total("sent") == 0
    for log in logs(db, first) + logs(db, second):
        assert (log.status, log.error_message) == ("queued", "the email transport answered 1 of 2")
