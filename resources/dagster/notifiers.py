"""Dagster wrappers of the delivery transports (`resources.notifiers`): each holds the transport's
configuration (secrets as `dg.EnvVar`) and vends the plain client to the runs that use it."""

from __future__ import annotations

import dagster as dg

from resources.notifiers.base import UnconfiguredTransport
from resources.notifiers.email import FileEmailTransport, SesEmailTransport, SmtpEmailTransport
from resources.notifiers.push import FcmPushTransport
from resources.notifiers.sms import SmsGatewayTransport
from resources.notifiers.webhook import WebhookTransport


class SmtpEmailTransportResource(dg.ConfigurableResource):
    """Email over any SMTP server."""

    host: str
    port: int = 587
    username: str = ""
    password: str = ""
    starttls: bool = True
    sender: str
    timeout_seconds: float = 10.0
    connections: int = 4
    ca_file: str = ""

    def create_resource(self, context: dg.InitResourceContext) -> SmtpEmailTransport:
        return SmtpEmailTransport(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            starttls=self.starttls,
            sender=self.sender,
            timeout_seconds=self.timeout_seconds,
            connections=self.connections,
            ca_file=self.ca_file,
        )


class SesEmailTransportResource(dg.ConfigurableResource):
    """Email through Amazon SES's v2 API (credentials from boto3's chain unless given)."""

    region: str
    endpoint_url: str = ""
    sender: str
    access_key_id: str = ""
    secret_access_key: str = ""
    concurrency: int = 8
    timeout_seconds: float = 10.0

    def create_resource(self, context: dg.InitResourceContext) -> SesEmailTransport:
        return SesEmailTransport(
            region=self.region,
            endpoint_url=self.endpoint_url,
            sender=self.sender,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            concurrency=self.concurrency,
            timeout_seconds=self.timeout_seconds,
        )


class FileEmailTransportResource(dg.ConfigurableResource):
    """Email as `.eml` files in `directory` (the embedded default)."""

    directory: str
    sender: str

    def create_resource(self, context: dg.InitResourceContext) -> FileEmailTransport:
        return FileEmailTransport(directory=self.directory, sender=self.sender)


class FcmPushTransportResource(dg.ConfigurableResource):
    """Push through Firebase Cloud Messaging."""

    project_id: str
    credentials_file: str
    base_url: str = "https://fcm.googleapis.com"
    timeout_seconds: float = 10.0
    concurrency: int = 16

    def create_resource(self, context: dg.InitResourceContext) -> FcmPushTransport:
        return FcmPushTransport(
            project_id=self.project_id,
            credentials_file=self.credentials_file,
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            concurrency=self.concurrency,
        )


class SmsGatewayTransportResource(dg.ConfigurableResource):
    """SMS through a JSON-over-HTTP gateway."""

    url: str
    token: str = ""
    sender: str = ""
    timeout_seconds: float = 10.0
    concurrency: int = 8

    def create_resource(self, context: dg.InitResourceContext) -> SmsGatewayTransport:
        return SmsGatewayTransport(
            url=self.url,
            token=self.token,
            sender=self.sender,
            timeout_seconds=self.timeout_seconds,
            concurrency=self.concurrency,
        )


class WebhookTransportResource(dg.ConfigurableResource):
    """Signed webhooks."""

    timeout_seconds: float = 10.0
    user_agent: str = "thmnayah-webhooks/1"
    concurrency: int = 16
    allow_private_networks: bool = False

    def create_resource(self, context: dg.InitResourceContext) -> WebhookTransport:
        return WebhookTransport(
            timeout_seconds=self.timeout_seconds,
            user_agent=self.user_agent,
            concurrency=self.concurrency,
            allow_private_networks=self.allow_private_networks,
        )


class UnconfiguredTransportResource(dg.ConfigurableResource):
    """A channel with no provider configured: every delivery is refused with `reason`."""

    channel: str
    reason: str

    def create_resource(self, context: dg.InitResourceContext) -> UnconfiguredTransport:
        return UnconfiguredTransport(channel=self.channel, reason=self.reason)
