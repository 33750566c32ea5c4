"""A new account is welcomed once, after its email is verified, in its own language: registration
sends only the verification link; the welcome goes through the notifications (the `user.verified`
event, its in-app notification and one email delivered by the drain). Both go through the one
configured email transport: with `THMNAYAH_EMAIL_BACKEND=ses`, SES carries both."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.notifications import delivery, rules
from domain.schema import Notification, User
from domain.settings import Settings
from resources.notifiers.email import FileEmailTransport, email_transport, notification_mail_dir
from serving.app import create_app
from tests.serving.conftest import link_token, mails

API = "/api/v1/auth"
PASSWORD = "amber-orchard-falcon-42"


def _welcomes(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        rows = session.execute(
            sa.select(User.username, Notification.channel, Notification.subject)
            .join(User, User.id == Notification.recipient_id)
            .where(Notification.category == "user.welcome")
            .order_by(User.username, Notification.channel)
        ).all()
    return [tuple(r) for r in rows]


@pytest.mark.parametrize(
    ("extra", "headers", "subject"),
    [
        ({"locale": "ar", "first_name": "نور"}, {}, "أهلًا بك يا نور"),
        ({"first_name": "Nour"}, {"Accept-Language": "ar-SA,en;q=0.5"}, "أهلًا بك يا Nour"),
        ({"first_name": "Sam"}, {"Accept-Language": "fr, en;q=0.8, ar;q=0.2"}, "Welcome, Sam"),
    ],
    ids=["locale", "accept-language-ar", "accept-language-en"],
)
async def test_one_welcome_after_verification_in_the_users_language(
    anonymous: AsyncTestClient, db_sessions: sessionmaker[Session], data_dir: Path, extra, headers, subject
) -> None:
    now = datetime.now(UTC)
    body = {"username": "newcomer", "email": "newcomer@example.test", "password": PASSWORD, **extra}
    assert (await anonymous.post(f"{API}/register", json=body, headers=headers)).status_code == 202
    rules.process_events(db_sessions.begin, after=0, now=now)
    assert _welcomes(db_sessions) == []  # not while the account is unverified

    [verification] = mails(data_dir / "mail")
    token = link_token(verification)
    assert (
        await anonymous.get(f"{API}/verify-email", params={"token": token})
    ).status_code == 200  # the page
    assert (await anonymous.post(f"{API}/verify-email", json={"token": token})).status_code == 200
    assert len(mails(data_dir / "mail")) == 1  # the account mail sent the link only

    rules.process_events(db_sessions.begin, after=0, now=now)
    rules.process_events(db_sessions.begin, after=0, now=now)  # a re-run never welcomes twice
    assert _welcomes(db_sessions) == [("newcomer", "email", subject), ("newcomer", "in_app", subject)]

    outbox = data_dir / "mail" / "notifications"
    transport = FileEmailTransport(directory=str(outbox), sender="t@example.test")
    # The drain runs its own event loop (as in the Dagster job): off this test's loop.
    tally = await asyncio.to_thread(delivery.drain, db_sessions.begin, {"email": transport}, now=now)
    assert tally.as_dict()["email"] == {"messages": 1, "sent": 1}, tally.as_dict()
    [welcome] = mails(outbox)
    assert (welcome["To"], welcome["Subject"]) == ("newcomer@example.test", subject)


async def test_ses_carries_the_verification_and_the_one_welcome(
    migrated_url: str,
    data_dir: Path,
    db_sessions: sessionmaker[Session],
    s3_endpoint: str,
    aws_credentials: None,
) -> None:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    # moto's server lives for the session: an address of this run's own tells its messages apart.
    region, address = "eu-west-2", f"ses-{uuid.uuid4().hex[:8]}@example.test"
    boto3.client("sesv2", region_name=region, endpoint_url=s3_endpoint).create_email_identity(
        EmailIdentity="no-reply@thmnayah.test"
    )
    settings = Settings(
        deployment="local",
        data_dir=data_dir,
        database_url=migrated_url,
        email_backend="ses",
        ses_region=region,
        ses_endpoint_url=s3_endpoint,
        smtp_from="thmnayah <no-reply@thmnayah.test>",
    )

    def received() -> list:
        sent = ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages
        return [
            message_from_bytes(m.raw_data.encode(), policy=policy.default)
            for m in sent
            if address in m.destinations
        ]

    now = datetime.now(UTC)
    async with AsyncTestClient(app=create_app(settings)) as client:
        body = {"username": "by-ses", "email": address, "password": PASSWORD, "first_name": "Sam"}
        assert (await client.post(f"{API}/register", json=body)).status_code == 202
        [verification] = received()  # sent before the answer: the person is waiting for it
        assert verification["Subject"] == "Confirm your email"
        token = link_token(verification)
        assert (await client.post(f"{API}/verify-email", json={"token": token})).status_code == 200

    rules.process_events(db_sessions.begin, after=0, now=now)
    # The drain's transport: the deployment's choice for notification email (SES here).
    transport = email_transport(settings, notification_mail_dir(settings))
    tally = await asyncio.to_thread(delivery.drain, db_sessions.begin, {"email": transport}, now=now)
    assert tally.as_dict()["email"] == {"messages": 1, "sent": 1}, tally.as_dict()

    verification, welcome = received()
    assert (welcome["To"], welcome["Subject"]) == (address, "Welcome, Sam")
    assert welcome["X-Thmnayah-Delivery"] != verification["X-Thmnayah-Delivery"]
    assert not (data_dir / "mail").exists()  # nothing went to files
