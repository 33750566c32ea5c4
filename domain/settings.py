"""The one settings object. Read from the environment only when `Settings.from_env()` is called.

`THMNAYAH_DEPLOYMENT` picks the backends:

* ``local`` (default): everything embedded under ``THMNAYAH_DATA_DIR``: a SQLite file, a chDB
  directory, a local object-store directory, the outbox table as the only event bus, memory stores.
* ``prod``: PostgreSQL, a ClickHouse server, S3 (or any S3-compatible endpoint), the outbox relayed
  to NATS JetStream, Redis for caches and rate limits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

Deployment = Literal["local", "prod"]
DEPLOYMENTS: tuple[Deployment, ...] = ("local", "prod")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Setting:
    """Documentation of one environment variable (used by the README test and `thmnayah settings`)."""

    env: str
    default: str
    help: str
    secret: bool = False


def _s(env: str, default: str, help: str, secret: bool = False) -> dict:
    return {"metadata": {"setting": Setting(env, default, help, secret)}}


@dataclass(frozen=True)
class Settings:
    deployment: Deployment = field(
        default="local", **_s("THMNAYAH_DEPLOYMENT", "local", "`local` (embedded backends) or `prod`.")
    )
    data_dir: Path = field(
        default=Path(".thmnayah"),
        **_s("THMNAYAH_DATA_DIR", ".thmnayah", "Where embedded backends and the Dagster home live."),
    )
    database_url: str = field(
        default="",
        **_s(
            "THMNAYAH_DATABASE_URL",
            "sqlite:///<data_dir>/thmnayah.db",
            "Operational DB. Required in prod: `postgresql://user:pass@host:5432/db`.",
            secret=True,
        ),
    )
    dagster_postgres_url: str = field(
        default="",
        **_s(
            "THMNAYAH_DAGSTER_POSTGRES_URL",
            "",
            "Prod: PostgreSQL URL of Dagster's own instance storage (runs, events, schedules); read by Dagster.",
            secret=True,
        ),
    )
    clickhouse_host: str = field(
        default="", **_s("THMNAYAH_CLICKHOUSE_HOST", "", "ClickHouse server host (prod warehouse).")
    )
    clickhouse_port: int = field(
        default=8123, **_s("THMNAYAH_CLICKHOUSE_PORT", "8123", "ClickHouse HTTP port.")
    )
    clickhouse_user: str = field(
        default="default", **_s("THMNAYAH_CLICKHOUSE_USER", "default", "ClickHouse user.")
    )
    clickhouse_password: str = field(
        default="", **_s("THMNAYAH_CLICKHOUSE_PASSWORD", "", "ClickHouse password.", secret=True)
    )
    clickhouse_secure: bool = field(
        default=False, **_s("THMNAYAH_CLICKHOUSE_SECURE", "false", "Use HTTPS to reach ClickHouse.")
    )
    warehouse_database: str = field(
        default="thmnayah",
        **_s("THMNAYAH_WAREHOUSE_DATABASE", "thmnayah", "Warehouse database for raw tables and dbt models."),
    )
    s3_bucket: str = field(default="", **_s("THMNAYAH_S3_BUCKET", "", "Object-store bucket (prod)."))
    s3_endpoint_url: str = field(
        default="",
        **_s("THMNAYAH_S3_ENDPOINT_URL", "", "S3 endpoint; empty for AWS, set for MinIO/moto/R2."),
    )
    s3_region: str = field(default="us-east-1", **_s("THMNAYAH_S3_REGION", "us-east-1", "S3 region."))
    s3_prefix: str = field(default="", **_s("THMNAYAH_S3_PREFIX", "", "Key prefix inside the bucket."))
    nats_url: str = field(
        default="", **_s("THMNAYAH_NATS_URL", "", "NATS server with JetStream (prod event bus).")
    )
    nats_stream: str = field(
        default="THMNAYAH_EVENTS", **_s("THMNAYAH_NATS_STREAM", "THMNAYAH_EVENTS", "JetStream stream name.")
    )
    nats_subject_prefix: str = field(
        default="thmnayah",
        **_s("THMNAYAH_NATS_SUBJECT_PREFIX", "thmnayah", "Events go to `<prefix>.<event.type>`."),
    )
    redis_url: str = field(
        default="", **_s("THMNAYAH_REDIS_URL", "", "Redis for caches, rate limits, channels (prod).")
    )
    api_host: str = field(default="127.0.0.1", **_s("THMNAYAH_API_HOST", "127.0.0.1", "API bind address."))
    api_port: int = field(default=8000, **_s("THMNAYAH_API_PORT", "8000", "API port."))
    dagster_port: int = field(default=3000, **_s("THMNAYAH_DAGSTER_PORT", "3000", "Dagster UI port."))
    dagster_host: str = field(
        default="127.0.0.1",
        **_s(
            "THMNAYAH_DAGSTER_HOST",
            "127.0.0.1",
            "Dagster UI bind address. The UI has no login: anyone who reaches it can launch runs, so keep "
            "it on loopback or behind an authenticating proxy.",
        ),
    )
    dagster_read_only: bool = field(
        default=False,
        **_s(
            "THMNAYAH_DAGSTER_READ_ONLY",
            "false",
            "prod: start the Dagster UI with `--read-only` (no launching runs or changing sensors from it).",
        ),
    )
    cdn_base_url: str = field(
        default="", **_s("THMNAYAH_CDN_BASE_URL", "", "Public base URL for objects (CDN), if any.")
    )
    media_partition_retention_days: int = field(
        default=30,
        **_s(
            "THMNAYAH_MEDIA_PARTITION_RETENTION_DAYS",
            "30",
            "Days after its latest job finishes that a media leaves Dagster's `media` partition set "
            "(its history stays; a re-process adds it back).",
        ),
    )
    upload_max_concurrent: int = field(
        default=4,
        **_s(
            "THMNAYAH_UPLOAD_MAX_CONCURRENT",
            "4",
            "Uploads one user may have in progress at once (multipart uploads streaming plus unfinished "
            "tus uploads); one more is refused with 429.",
        ),
    )
    upload_daily_quota_mb: int = field(
        default=51200,
        **_s(
            "THMNAYAH_UPLOAD_DAILY_QUOTA_MB",
            "51200",
            "MiB one user may upload per UTC day (every byte received, refused uploads included); an "
            "upload beyond it is refused with 413.",
        ),
    )
    upload_min_free_mb: int = field(
        default=1024,
        **_s(
            "THMNAYAH_UPLOAD_MIN_FREE_MB",
            "1024",
            "MiB the file system of <data_dir>/uploads keeps free: an upload that would leave less is "
            "refused with 507 (checked before and while the bytes come in).",
        ),
    )
    media_reprocess_per_hour: int = field(
        default=20,
        **_s(
            "THMNAYAH_MEDIA_REPROCESS_PER_HOUR",
            "20",
            "Re-processing requests (POST /api/v1/media/transcode and /analyze) one user may make in a "
            "sliding hour; one more is refused with 429 and Retry-After.",
        ),
    )
    secret_key: str = field(
        default="",
        **_s(
            "THMNAYAH_SECRET_KEY",
            "<generated into data_dir/secret_key>",
            "The platform secret: keys derived from it sign access tokens, links and media URLs and encrypt "
            "TOTP and webhook secrets. Required in prod (32+ random bytes).",
            secret=True,
        ),
    )
    secret_key_previous: str = field(
        default="",
        **_s(
            "THMNAYAH_SECRET_KEY_PREVIOUS",
            "",
            "Earlier platform secrets, comma-separated, newest first, during a rotation: what they signed "
            "or encrypted is still accepted, nothing new uses them. Drop one when what it made has expired "
            "and `thmnayah rotate-keys` has re-encrypted the stored secrets.",
            secret=True,
        ),
    )
    jwt_issuer: str = field(
        default="thmnayah", **_s("THMNAYAH_JWT_ISSUER", "thmnayah", "`iss` of our access tokens.")
    )
    jwt_audience: str = field(
        default="thmnayah-api", **_s("THMNAYAH_JWT_AUDIENCE", "thmnayah-api", "`aud` of our access tokens.")
    )
    access_token_ttl_seconds: int = field(
        default=900, **_s("THMNAYAH_ACCESS_TOKEN_TTL_SECONDS", "900", "Lifetime of an access token.")
    )
    public_base_url: str = field(
        default="http://127.0.0.1:8000",
        **_s(
            "THMNAYAH_PUBLIC_BASE_URL",
            "http://127.0.0.1:8000",
            "Base of links in emails (verification, reset).",
        ),
    )
    trusted_proxies: str = field(
        default="",
        **_s(
            "THMNAYAH_TRUSTED_PROXIES",
            "",
            "Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed; empty: none.",
        ),
    )
    smtp_host: str = field(
        default="",
        **_s(
            "THMNAYAH_SMTP_HOST",
            "",
            "SMTP server of all email (backend smtp, or auto when set); empty with auto: .eml files.",
        ),
    )
    smtp_port: int = field(default=587, **_s("THMNAYAH_SMTP_PORT", "587", "SMTP port."))
    smtp_username: str = field(default="", **_s("THMNAYAH_SMTP_USERNAME", "", "SMTP user."))
    smtp_password: str = field(default="", **_s("THMNAYAH_SMTP_PASSWORD", "", "SMTP password.", secret=True))
    smtp_starttls: bool = field(default=True, **_s("THMNAYAH_SMTP_STARTTLS", "true", "Use STARTTLS."))
    smtp_from: str = field(
        default="thmnayah <no-reply@localhost>",
        **_s("THMNAYAH_SMTP_FROM", "thmnayah <no-reply@localhost>", "From address of platform email."),
    )
    email_backend: str = field(
        default="auto",
        **_s(
            "THMNAYAH_EMAIL_BACKEND",
            "auto",
            "All email (account mail and notifications): `smtp`, `ses`, `files` (.eml under "
            "<data_dir>/mail), or `auto` (smtp when THMNAYAH_SMTP_HOST is set, else files).",
        ),
    )
    ses_region: str = field(
        default="us-east-1", **_s("THMNAYAH_SES_REGION", "us-east-1", "Amazon SES region.")
    )
    ses_endpoint_url: str = field(
        default="", **_s("THMNAYAH_SES_ENDPOINT_URL", "", "Amazon SES endpoint; empty for AWS.")
    )
    fcm_project_id: str = field(
        default="", **_s("THMNAYAH_FCM_PROJECT_ID", "", "Push: Firebase project id; empty: push is off.")
    )
    fcm_credentials_file: str = field(
        default="",
        **_s(
            "THMNAYAH_FCM_CREDENTIALS_FILE",
            "",
            "Push: path of the Firebase service-account JSON (its token_uri is honored).",
            secret=True,
        ),
    )
    fcm_base_url: str = field(
        default="https://fcm.googleapis.com",
        **_s("THMNAYAH_FCM_BASE_URL", "https://fcm.googleapis.com", "Push: FCM HTTP v1 base URL."),
    )
    sms_gateway_url: str = field(
        default="",
        **_s(
            "THMNAYAH_SMS_GATEWAY_URL", "", "SMS: the HTTP gateway's send URL (JSON POST); empty: SMS is off."
        ),
    )
    sms_gateway_token: str = field(
        default="", **_s("THMNAYAH_SMS_GATEWAY_TOKEN", "", "SMS: bearer token of the gateway.", secret=True)
    )
    sms_sender: str = field(default="", **_s("THMNAYAH_SMS_SENDER", "", "SMS: sender id or number."))
    webhook_timeout_seconds: int = field(
        default=10, **_s("THMNAYAH_WEBHOOK_TIMEOUT_SECONDS", "10", "Webhooks: seconds before giving up.")
    )
    webhook_allow_private_networks: bool = field(
        default=False,
        **_s(
            "THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
            "false",
            "Webhooks: allow URLs whose host resolves to loopback/private/link-local addresses.",
        ),
    )
    notification_default_language: str = field(
        default="en",
        **_s(
            "THMNAYAH_NOTIFICATION_DEFAULT_LANGUAGE",
            "en",
            "Templates: the last language of the locale fallback (ar-SA -> ar -> this).",
        ),
    )
    notification_rate_limits: str = field(
        default="email=100,sms=10,push=500,webhook=50",
        **_s(
            "THMNAYAH_NOTIFICATION_RATE_LIMITS",
            "email=100,sms=10,push=500,webhook=50",
            "Deliveries per second per channel (`channel=n` pairs) for the delivery and broadcast jobs.",
        ),
    )
    notification_max_attempts: int = field(
        default=6,
        **_s("THMNAYAH_NOTIFICATION_MAX_ATTEMPTS", "6", "Delivery attempts before a message is failed."),
    )
    notification_retry_base_seconds: int = field(
        default=30,
        **_s(
            "THMNAYAH_NOTIFICATION_RETRY_BASE_SECONDS",
            "30",
            "First retry delay; each further attempt doubles it (with jitter, capped at 6 h).",
        ),
    )
    oidc_jwks_url: str = field(
        default="",
        **_s("THMNAYAH_OIDC_JWKS_URL", "", "SSO: JWKS URL of the OpenID Connect provider; empty: off."),
    )
    oidc_issuer: str = field(
        default="", **_s("THMNAYAH_OIDC_ISSUER", "", "SSO: expected `iss` of provider tokens.")
    )
    oidc_audience: str = field(
        default="", **_s("THMNAYAH_OIDC_AUDIENCE", "", "SSO: expected `aud` of provider tokens.")
    )
    oidc_roles_claim: str = field(
        default="realm_access.roles",
        **_s(
            "THMNAYAH_OIDC_ROLES_CLAIM", "realm_access.roles", "SSO: dotted path of the roles/groups claim."
        ),
    )
    oidc_role_map: str = field(
        default="",
        **_s("THMNAYAH_OIDC_ROLE_MAP", "", "SSO: `provider-role=our-role` pairs, comma-separated."),
    )
    password_hash_concurrency: int = field(
        default=2,
        **_s("THMNAYAH_PASSWORD_HASH_CONCURRENCY", "2", "Password hashes computed at once per API process."),
    )
    import_feed_max_mb: int = field(
        default=10,
        **_s(
            "THMNAYAH_IMPORT_FEED_MAX_MB",
            "10",
            "Imports: MiB a feed document may have (decompressed); a bigger one is refused while it streams.",
        ),
    )
    import_feed_timeout_seconds: int = field(
        default=30,
        **_s(
            "THMNAYAH_IMPORT_FEED_TIMEOUT_SECONDS",
            "30",
            "Imports: seconds one feed fetch may take, redirects and body included.",
        ),
    )
    import_feed_host_concurrency: int = field(
        default=2,
        **_s("THMNAYAH_IMPORT_FEED_HOST_CONCURRENCY", "2", "Imports: feed requests in flight per host."),
    )
    import_allow_private_networks: bool = field(
        default=False,
        **_s(
            "THMNAYAH_IMPORT_ALLOW_PRIVATE_NETWORKS",
            "false",
            "Imports: allow feed, enclosure and API URLs whose host resolves to loopback/private/link-local addresses.",
        ),
    )
    debug: bool = field(
        default=False, **_s("THMNAYAH_DEBUG", "false", "Litestar debug mode (never in prod).")
    )

    def __post_init__(self) -> None:
        if self.deployment not in DEPLOYMENTS:
            raise SettingsError(f"THMNAYAH_DEPLOYMENT must be one of {DEPLOYMENTS}, got {self.deployment!r}")
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.media_partition_retention_days < 1:
            raise SettingsError(
                "THMNAYAH_MEDIA_PARTITION_RETENTION_DAYS must be at least 1, "
                f"got {self.media_partition_retention_days}"
            )
        if self.upload_max_concurrent < 1 or self.upload_daily_quota_mb < 1 or self.upload_min_free_mb < 0:
            raise SettingsError(
                "THMNAYAH_UPLOAD_MAX_CONCURRENT and THMNAYAH_UPLOAD_DAILY_QUOTA_MB must be at least 1, "
                "THMNAYAH_UPLOAD_MIN_FREE_MB at least 0"
            )
        if (
            self.import_feed_max_mb < 1
            or self.import_feed_timeout_seconds < 1
            or self.import_feed_host_concurrency < 1
        ):
            raise SettingsError(
                "THMNAYAH_IMPORT_FEED_MAX_MB, THMNAYAH_IMPORT_FEED_TIMEOUT_SECONDS and "
                "THMNAYAH_IMPORT_FEED_HOST_CONCURRENCY must be at least 1"
            )
        if self.media_reprocess_per_hour < 1:
            raise SettingsError("THMNAYAH_MEDIA_REPROCESS_PER_HOUR must be at least 1")
        if not self.database_url:
            object.__setattr__(self, "database_url", self._embedded_database_url())
        if self.email_backend not in ("auto", "smtp", "ses", "files"):
            raise SettingsError(
                f"THMNAYAH_EMAIL_BACKEND must be auto, smtp, ses or files, got {self.email_backend!r}"
            )
        if self.email_backend == "smtp" and not self.smtp_host:
            raise SettingsError("THMNAYAH_EMAIL_BACKEND=smtp needs THMNAYAH_SMTP_HOST")
        # `channel=rate` pairs (checked here; parsed by domain.notifications.delivery.parse_rate_limits).
        for pair in filter(str.strip, self.notification_rate_limits.split(",")):
            channel, _, rate = pair.partition("=")
            try:
                valid = channel.strip() in ("email", "sms", "push", "webhook") and float(rate) > 0
            except ValueError:
                valid = False
            if not valid:
                raise SettingsError(
                    "THMNAYAH_NOTIFICATION_RATE_LIMITS must be channel=deliveries-per-second pairs "
                    f"(email, sms, push, webhook; rates above 0), got {pair.strip()!r}"
                )
        if self.notification_max_attempts < 1 or self.notification_retry_base_seconds < 1:
            raise SettingsError(
                "THMNAYAH_NOTIFICATION_MAX_ATTEMPTS and THMNAYAH_NOTIFICATION_RETRY_BASE_SECONDS must be at least 1"
            )
        if self.deployment == "prod":
            missing = [
                name
                for name, value in (
                    ("THMNAYAH_DATABASE_URL", not self.database_url.startswith("sqlite")),
                    ("THMNAYAH_CLICKHOUSE_HOST", self.clickhouse_host),
                    ("THMNAYAH_S3_BUCKET", self.s3_bucket),
                    ("THMNAYAH_NATS_URL", self.nats_url),
                    ("THMNAYAH_REDIS_URL", self.redis_url),
                    ("THMNAYAH_SECRET_KEY", len(self.secret_key) >= 32),
                )
                if not value
            ]
            if missing:
                raise SettingsError(f"THMNAYAH_DEPLOYMENT=prod needs {', '.join(missing)}")

    @property
    def previous_secret_keys(self) -> tuple[str, ...]:
        """`THMNAYAH_SECRET_KEY_PREVIOUS` as a list (blank entries and surrounding spaces dropped)."""
        return tuple(s.strip() for s in self.secret_key_previous.split(",") if s.strip())

    # Derived paths of the embedded backends.
    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "chdb"

    @property
    def object_store_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    def _embedded_database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'thmnayah.db'}"

    def with_(self, **changes) -> Settings:
        # A database URL derived from the old data_dir follows the new one instead of pointing back.
        if (
            "data_dir" in changes
            and "database_url" not in changes
            and self.database_url == self._embedded_database_url()
        ):
            changes["database_url"] = ""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            setting: Setting = f.metadata["setting"]
            if setting.env not in env or env[setting.env] == "":
                continue
            raw = env[setting.env]
            if f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError as exc:
                    raise SettingsError(f"{setting.env} must be an integer, got {raw!r}") from exc
            elif f.type in ("bool", bool):
                flag = raw.strip().lower()
                if flag not in _TRUE | _FALSE:
                    raise SettingsError(f"{setting.env} must be true or false, got {raw!r}")
                values[f.name] = flag in _TRUE
            elif f.type in ("Path", Path):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        return cls(**values)

    @classmethod
    def documented(cls) -> list[Setting]:
        return [f.metadata["setting"] for f in fields(cls)]
