"""Embedded-vs-production wiring: the only Dagster module that reads the deployment switch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from domain.auth.keys import platform_keyring
from domain.notifications import delivery
from domain.settings import Settings
from resources.dagster.database import OperationalDatabaseResource
from resources.dagster.event_bus import NatsEventBusResource, OutboxEventBusResource
from resources.dagster.notifiers import (
    FcmPushTransportResource,
    FileEmailTransportResource,
    SesEmailTransportResource,
    SmsGatewayTransportResource,
    SmtpEmailTransportResource,
    UnconfiguredTransportResource,
    WebhookTransportResource,
)
from resources.dagster.storage import LocalObjectStoreResource, S3ObjectStoreResource, UploadStagingResource
from resources.dagster.warehouse import ChdbWarehouseResource, ClickHouseWarehouseResource
from resources.dbt import build_dbt_resource
from resources.notifiers.email import email_backend, notification_mail_dir

RESOURCE_KEYS = (
    "database",
    "object_store",
    "warehouse",
    "event_bus",
    "dbt",
    "upload_staging",
    "notifier_email",
    "notifier_push",
    "notifier_sms",
    "notifier_webhook",
)


def load_settings() -> Settings:
    return Settings.from_env()


def child_process_env(dagster_home: Path) -> dict[str, str]:
    """The environment of the processes `thmnayah run` starts: ours, plus the Dagster home."""
    return {**os.environ, "DAGSTER_HOME": str(dagster_home)}


def build_resources(settings: Settings) -> dict[str, Any]:
    """The same resource keys for every deployment; secrets reach prod resources as `dg.EnvVar`."""
    if settings.deployment == "local":
        resources: dict[str, Any] = {
            "database": OperationalDatabaseResource(url=settings.database_url),
            "object_store": LocalObjectStoreResource(root=str(settings.object_store_dir.resolve())),
            "warehouse": ChdbWarehouseResource(
                path=str(settings.chdb_path.resolve()), database=settings.warehouse_database
            ),
            "event_bus": OutboxEventBusResource(),
        }
    else:
        resources = {
            "database": OperationalDatabaseResource(url=dg.EnvVar("THMNAYAH_DATABASE_URL")),
            "object_store": S3ObjectStoreResource(
                bucket=settings.s3_bucket,
                endpoint_url=settings.s3_endpoint_url or None,
                region_name=settings.s3_region,
                prefix=settings.s3_prefix,
            ),
            "warehouse": ClickHouseWarehouseResource(
                host=settings.clickhouse_host,
                port=settings.clickhouse_port,
                user=settings.clickhouse_user,
                password=dg.EnvVar("THMNAYAH_CLICKHOUSE_PASSWORD") if settings.clickhouse_password else "",
                secure=settings.clickhouse_secure,
                database=settings.warehouse_database,
            ),
            "event_bus": NatsEventBusResource(
                url=settings.nats_url,
                stream=settings.nats_stream,
                subject_prefix=settings.nats_subject_prefix,
            ),
        }
    resources.update(build_notifiers(settings))
    resources["upload_staging"] = UploadStagingResource(root=str((settings.data_dir / "uploads").resolve()))
    # dbt target = deployment: chDB through the launcher (local) or the ClickHouse server (prod).
    resources["dbt"] = build_dbt_resource(settings)
    assert tuple(sorted(resources)) == tuple(sorted(RESOURCE_KEYS))
    return resources


def build_client(resource: dg.ConfigurableResource) -> Any:
    """The plain client that `resource` hands runs, for work outside a run (the CLI's demo data,
    tests). The caller owns it: an `OperationalDatabase`'s engine is the caller's to dispose."""
    return resource.create_resource(dg.build_init_resource_context())


def _secret(value: str, env: str) -> Any:
    """A secret setting as `dg.EnvVar` when it came from the environment, else the value itself
    (settings built in code, as tests do); empty stays empty."""
    if value and os.environ.get(env) == value:
        return dg.EnvVar(env)
    return value


def build_notifiers(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The delivery transports, one resource per channel, chosen by settings (the same keys in every
    deployment): email by `THMNAYAH_EMAIL_BACKEND` (`resources.notifiers.email.email_backend`, the
    choice the API's account mail follows too); push and SMS when configured, else a transport that
    refuses with what to set; signed webhooks always."""
    backend = email_backend(settings)
    email: dg.ConfigurableResource
    if backend == "smtp":
        email = SmtpEmailTransportResource(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=_secret(settings.smtp_password, "THMNAYAH_SMTP_PASSWORD"),
            starttls=settings.smtp_starttls,
            sender=settings.smtp_from,
        )
    elif backend == "ses":
        email = SesEmailTransportResource(
            region=settings.ses_region, endpoint_url=settings.ses_endpoint_url, sender=settings.smtp_from
        )
    else:
        email = FileEmailTransportResource(
            directory=str(notification_mail_dir(settings).resolve()), sender=settings.smtp_from
        )
    push: dg.ConfigurableResource = (
        FcmPushTransportResource(
            project_id=settings.fcm_project_id,
            credentials_file=settings.fcm_credentials_file,
            base_url=settings.fcm_base_url,
        )
        if settings.fcm_project_id and settings.fcm_credentials_file
        else UnconfiguredTransportResource(
            channel="push",
            reason="push is not configured: set THMNAYAH_FCM_PROJECT_ID and THMNAYAH_FCM_CREDENTIALS_FILE",
        )
    )
    sms: dg.ConfigurableResource = (
        SmsGatewayTransportResource(
            url=settings.sms_gateway_url,
            token=_secret(settings.sms_gateway_token, "THMNAYAH_SMS_GATEWAY_TOKEN"),
            sender=settings.sms_sender,
        )
        if settings.sms_gateway_url
        else UnconfiguredTransportResource(
            channel="sms", reason="SMS is not configured: set THMNAYAH_SMS_GATEWAY_URL"
        )
    )
    return {
        "notifier_email": email,
        "notifier_push": push,
        "notifier_sms": sms,
        "notifier_webhook": WebhookTransportResource(
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_private_networks=settings.webhook_allow_private_networks,
        ),
    }


def notification_policy(settings: Settings) -> delivery.Policy:
    """The delivery drain's policy: attempts, backoff, per-channel rate limits, default language,
    and the platform keyring that decrypts webhook signing secrets."""
    return delivery.Policy(
        max_attempts=settings.notification_max_attempts,
        retry_base_seconds=float(settings.notification_retry_base_seconds),
        rate_limits=delivery.parse_rate_limits(settings.notification_rate_limits),
        default_language=settings.notification_default_language,
        keys=platform_keyring(settings),
    )
