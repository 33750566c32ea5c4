"""The notification assets materialized with an ephemeral instance against the embedded deployment:
outbox events -> notifications -> a delivered .eml, the stuck-delivery check, the broadcast job, and
the definitions that wire them (group `notifications`, one transport resource per channel)."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from assets.notifications import NOTIFICATIONS_GROUP, build_notification_assets
from domain.auth import audit, rbac, users
from domain.auth.keys import Keyring
from domain.db import sync_engine
from domain.notifications import delivery, rules
from domain.schema import Broadcast, DeliveryLog, Notification, NotificationSubscription, utcnow
from domain.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.deployment import RESOURCE_KEYS, build_notifiers, build_resources
from resources.dagster.notifiers import (
    FcmPushTransportResource,
    FileEmailTransportResource,
    SmsGatewayTransportResource,
    SmtpEmailTransportResource,
    UnconfiguredTransportResource,
    WebhookTransportResource,
)
from resources.database import OperationalDatabase
from resources.notifiers.base import UnconfiguredTransport
from resources.notifiers.email import FileEmailTransport, email_transport, notification_mail_dir
from resources.notifiers.webhook import WebhookTransport

SENDER = "thmnayah <no-reply@thmnayah.test>"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def notifications():
    return build_notification_assets(delivery.Policy(keys=Keyring("k" * 40)))


@pytest.fixture
def resources(embedded: Settings, tmp_path: Path) -> dict:
    return {
        "database": OperationalDatabase(url=embedded.database_url),
        "notifier_email": FileEmailTransport(directory=str(tmp_path / "mail"), sender=SENDER),
        "notifier_push": UnconfiguredTransport(channel="push", reason="push is not configured"),
        "notifier_sms": UnconfiguredTransport(channel="sms", reason="SMS is not configured"),
        "notifier_webhook": WebhookTransport(timeout_seconds=2, allow_private_networks=True),
    }


def _setup_reader(settings: Settings) -> uuid.UUID:
    engine = sync_engine(settings.database_url)
    with Session(engine) as session, session.begin():
        rbac.seed_system_roles(session)
        rules.seed_default_templates(session)
        reader = users.create_user(
            session,
            users.NewUser("reader", "reader@example.test", None, preferences={"locale": "ar"}),
            created_by=None,
            origin=audit.Origin(),
        )
        session.add(NotificationSubscription(user_id=reader.id, topic="tag:news"))
        reader_id = reader.id
    engine.dispose()
    return reader_id


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = result.asset_materializations_for_node(key)
    return {k: v.value for k, v in event.metadata.items()}


def test_events_then_deliveries_materialize_and_send_the_email(
    embedded: Settings, seeded, notifications, resources: dict, instance, tmp_path: Path
) -> None:
    reader = _setup_reader(embedded)
    result = dg.materialize(
        [notifications.events, notifications.deliveries, notifications.deliveries_not_stuck],
        resources=resources,
        instance=instance,
    )
    assert result.success
    events = _metadata(result, "notification_events")
    assert (events["events_processed"], events["events_failed"], events["notifications_created"]) == (1, 0, 2)
    assert "content.published" in events["by_type"]
    drained = _metadata(result, "notification_deliveries")
    assert (drained["email_sent"], drained["sent"], drained["failed"]) == (1, 1, 0)
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["stuck_sending"].value == 0

    [path] = (tmp_path / "mail").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "جديد: مرحبا بالعالم" and message["To"] == "reader@example.test"
    engine = sync_engine(embedded.database_url)
    with Session(engine) as session:
        statuses = dict(session.execute(sa.select(Notification.channel, Notification.status)).tuples().all())
        assert statuses == {"in_app": "sent", "email": "delivered"}
        assert {n.recipient_id for n in session.scalars(sa.select(Notification))} == {reader}
    engine.dispose()

    again = dg.materialize([notifications.events], resources=resources, instance=instance)
    assert _metadata(again, "notification_events")["events_processed"] == 0  # nothing new


def test_the_check_fails_on_a_delivery_stuck_sending(
    embedded: Settings, notifications, resources: dict, instance
) -> None:
    reader = _setup_reader(embedded)
    engine = sync_engine(embedded.database_url)
    with Session(engine) as session, session.begin():
        note = Notification(recipient_id=reader, channel="email", subject="s", content="c", status="pending")
        session.add(note)
        session.flush()
        long_ago = utcnow() - timedelta(minutes=20)
        session.add(
            DeliveryLog(
                notification_id=note.id,
                channel="email",
                destination="reader@example.test",
                status="sending",
                updated_at=long_ago,
                created_at=long_ago,
            )
        )
    engine.dispose()
    result = dg.materialize(
        [notifications.deliveries, notifications.deliveries_not_stuck],
        resources=resources,
        instance=instance,
        selection=dg.AssetSelection.checks(notifications.deliveries_not_stuck),
    )
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["stuck_sending"].value == 1


def test_broadcast_job_fans_out_and_reports_progress(
    embedded: Settings, notifications, resources: dict
) -> None:
    _setup_reader(embedded)
    engine = sync_engine(embedded.database_url)
    with Session(engine) as session, session.begin():
        row = Broadcast(
            name="hello",
            message={"subject": {"en": "Hi", "ar": "مرحبا"}, "content": {"en": "x"}},
            channels=["in_app", "email"],
        )
        session.add(row)
        session.flush()
        broadcast_id = str(row.id)
    result = notifications.broadcast_job.execute_in_process(
        run_config={"ops": {"fan_out_broadcast": {"config": {"broadcast_id": broadcast_id}}}},
        resources={"database": resources["database"]},
    )
    assert result.success
    output = result.output_for_node("fan_out_broadcast")
    assert (output["status"], output["total"], output["processed"], output["created"]) == (
        "completed",
        1,
        1,
        2,
    )
    with Session(engine) as session:
        assert session.get(Broadcast, uuid.UUID(broadcast_id)).status == "completed"
        assert session.scalar(sa.select(sa.func.count()).select_from(DeliveryLog)) == 1
    engine.dispose()


def test_broadcast_job_records_the_failure_and_stays_resumable(
    embedded: Settings, notifications, resources: dict
) -> None:
    engine = sync_engine(embedded.database_url)
    with Session(engine) as session, session.begin():
        row = Broadcast(name="bad", message={}, channels=["in_app"])  # neither template nor message
        session.add(row)
        session.flush()
        broadcast_id = row.id
    result = notifications.broadcast_job.execute_in_process(
        run_config={"ops": {"fan_out_broadcast": {"config": {"broadcast_id": str(broadcast_id)}}}},
        resources={"database": resources["database"]},
        raise_on_error=False,
    )
    assert not result.success
    with Session(engine) as session:
        row = session.get(Broadcast, broadcast_id)
        assert row.status == "failed" and "template" in row.error
    engine.dispose()


def test_definitions_load_with_the_notification_group(local_settings: Settings) -> None:
    defs = build_definitions(local_settings)
    repo = defs.get_repository_def()
    group = {
        key.to_user_string()
        for key in repo.asset_graph.get_all_asset_keys()
        if repo.asset_graph.get(key).group_name == NOTIFICATIONS_GROUP
    }
    assert group == {"notification_events", "notification_deliveries"}
    assert {"notification_events_job", "notification_deliveries_job", "notification_broadcast_job"} <= set(
        repo.job_names
    )
    assert {s.name for s in repo.sensor_defs} >= {
        "notification_events_sensor",
        "notification_deliveries_sensor",
        "notification_broadcasts_sensor",
    }
    schedule = repo.get_schedule_def("notification_digest_schedule")
    assert (schedule.cron_schedule, schedule.job_name) == ("0 * * * *", "notification_deliveries_job")
    job = repo.get_job("notification_deliveries_job")
    assert {c.name for c in job.asset_layer.asset_graph.asset_check_keys} == {
        "notification_deliveries_not_stuck"
    }


def test_transport_resources_follow_settings(local_settings: Settings, tmp_path: Path) -> None:
    embedded = build_resources(local_settings)
    assert set(embedded) == set(RESOURCE_KEYS)
    email = embedded["notifier_email"]
    assert isinstance(email, FileEmailTransportResource)
    assert email.directory == str(notification_mail_dir(local_settings).resolve())
    assert isinstance(embedded["notifier_push"], UnconfiguredTransportResource)
    assert "THMNAYAH_FCM_PROJECT_ID" in embedded["notifier_push"].reason
    assert isinstance(embedded["notifier_sms"], UnconfiguredTransportResource)
    assert isinstance(embedded["notifier_webhook"], WebhookTransportResource)

    configured = build_notifiers(
        local_settings.with_(
            smtp_host="smtp.example.test",
            fcm_project_id="p",
            fcm_credentials_file=str(tmp_path / "sa.json"),
            sms_gateway_url="http://127.0.0.1:1/sms",
            webhook_timeout_seconds=3,
        )
    )
    assert isinstance(configured["notifier_email"], SmtpEmailTransportResource)
    assert configured["notifier_email"].host == "smtp.example.test"
    assert isinstance(configured["notifier_push"], FcmPushTransportResource)
    assert isinstance(configured["notifier_sms"], SmsGatewayTransportResource)
    assert configured["notifier_webhook"].timeout_seconds == 3
    files = build_notifiers(local_settings.with_(smtp_host="smtp.example.test", email_backend="files"))
    assert isinstance(files["notifier_email"], FileEmailTransportResource)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"smtp_host": "smtp.example.test", "smtp_password": "pw"},
        {"email_backend": "ses", "ses_region": "eu-west-1"},
    ],
    ids=["files", "smtp", "ses"],
)
def test_the_drain_gets_the_email_transport_the_api_would_choose(
    local_settings: Settings, changes: dict
) -> None:
    """One choice of email transport: the Dagster wrapper vends the plain client that
    `resources.notifiers.email.email_transport` (the API's account mail) makes from the same settings."""
    settings = local_settings.with_(**changes)
    with dg.build_resources({"notifier_email": build_notifiers(settings)["notifier_email"]}) as built:
        assert built.notifier_email == email_transport(settings, notification_mail_dir(settings))
