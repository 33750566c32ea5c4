"""The Litestar application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, Tag

from domain.auth import rbac
from domain.auth.keys import platform_keyring
from domain.migrate import require_current
from domain.notifications import account as account_emails
from domain.notifications import rules as notification_rules
from domain.settings import Settings
from resources.event_lake import EventLake
from resources.notifiers.email import account_mail_dir, email_transport
from resources.upload_staging import UploadStaging
from serving.analytics.controllers import AnalyticsController
from serving.analytics.dashboard_page import DashboardPageController
from serving.analytics.live import LiveMetrics
from serving.analytics.management import AnalyticsManagementController
from serving.auth.controllers import AuthController
from serving.auth.hashing import PasswordHashing
from serving.auth.oidc import OidcVerifier
from serving.auth.principal import PrincipalCache
from serving.auth.security import AuthContext, build_jwt_auth, permission_guard
from serving.auth.sockets import session_end_publisher
from serving.auth.throttle import LoginThrottle, parse_trusted_proxies
from serving.content.controllers import ContentController
from serving.db import Database
from serving.deployment import build_backends
from serving.events import EventsSocket
from serving.health.controllers import HealthChecks, HealthController
from serving.media.controllers import MediaController, TusController
from serving.media.files import MediaFilesController
from serving.media.processing import MediaProcessingController
from serving.notifications.controllers import NotificationsController
from serving.notifications.realtime import NotificationPump, NotificationsSocket, channels_plugin
from serving.problems import EXCEPTION_HANDLERS
from serving.users.controllers import PERMISSIONS_CACHE_KEY, AuditController, RolesController, UsersController

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    require_current(settings.database_url)  # one line naming `thmnayah migrate`, not a traceback later
    parse_trusted_proxies(settings.trusted_proxies)  # a malformed setting fails at start, not per request
    database = Database(settings.database_url)
    backends = build_backends(settings)
    keys = platform_keyring(settings)  # the process's one keyring: current and previous secrets' keys
    staging = UploadStaging(root=str((settings.data_dir / "uploads").resolve()))
    Path(staging.root).mkdir(parents=True, exist_ok=True)
    jwt_auth = build_jwt_auth(settings)
    channels = channels_plugin(backends.channels)
    auth = AuthContext(
        settings=settings,
        keys=keys,
        db=database,
        # A revoked session's open WebSockets are told through the channels (any API process).
        principals=PrincipalCache(backends.stores["auth"], on_revoked=session_end_publisher(channels)),
        jwt=jwt_auth,
        hashing=PasswordHashing(settings.password_hash_concurrency),
        throttle=LoginThrottle(backends.stores["rate_limit"]),
        email=email_transport(settings, account_mail_dir(settings)),
        oidc=OidcVerifier.from_settings(settings),
    )
    pump = NotificationPump(database, channels)  # joins the lifespan after `channels` (plugin order)
    event_lake = EventLake(settings.data_dir / "analytics" / "buffer", backends.object_store)
    live_metrics = LiveMetrics(database)
    health = HealthChecks(database, backends)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        async with database.lifespan(_app):
            await database.write(rbac.seed_system_roles)
            await database.write(notification_rules.seed_default_templates)  # adds only missing ones
            await database.write(account_emails.seed_templates)
            await auth.principals.store.delete(PERMISSIONS_CACHE_KEY)
            await event_lake.start()  # flushes what a stopped process left in the buffer first
            await live_metrics.start()
            # What startup loaded (routes, schemas, settings) lives as long as the process: moved out
            # of the collector's generations, full collections stop walking it on every request burst.
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await live_metrics.stop()
                await event_lake.stop()
                await backends.close()

    app = Litestar(
        route_handlers=[
            HealthController,
            ContentController,
            AuthController,
            UsersController,
            RolesController,
            AuditController,
            EventsSocket,
            MediaController,
            MediaProcessingController,
            TusController,
            MediaFilesController,
            NotificationsController,
            NotificationsSocket,
            AnalyticsController,
            DashboardPageController,
            AnalyticsManagementController,
        ],
        dependencies={
            "db_session": Provide(database.provide_session),
            "db": Provide(lambda: database, use_cache=True, sync_to_thread=False),
            "auth": Provide(lambda: auth, use_cache=True, sync_to_thread=False),
            "backends": Provide(lambda: backends, use_cache=True, sync_to_thread=False),
            "staging": Provide(lambda: staging, use_cache=True, sync_to_thread=False),
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "event_lake": Provide(lambda: event_lake, use_cache=True, sync_to_thread=False),
            "live_metrics": Provide(lambda: live_metrics, use_cache=True, sync_to_thread=False),
            "health": Provide(lambda: health, use_cache=True, sync_to_thread=False),
        },
        on_app_init=[jwt_auth.on_app_init],
        plugins=[channels, pump],
        guards=[permission_guard],
        lifespan=[lifespan],
        stores=backends.stores,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="thmnayah content platform API",
            version=API_VERSION,
            description="CMS core, auth, users, media, notifications and analytics APIs. Errors are RFC 9457 problem details. "
            "Authenticate with `Authorization: Bearer <access token>` from POST /api/v1/auth/login.",
            path="/api/docs",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            tags=[
                Tag(name="content", description="Content items and their editorial workflow"),
                Tag(name="auth", description="Login, tokens, sessions, registration, password reset"),
                Tag(name="users", description="Accounts, roles, MFA, audit"),
                Tag(name="media", description="Uploads (multipart and tus 1.0), processing jobs, media"),
                Tag(
                    name="notifications",
                    description="Sending, the in-app inbox and its WebSocket, preferences, contacts, "
                    "subscriptions, templates, deliveries and broadcasts",
                ),
                Tag(
                    name="analytics",
                    description="Event tracking into the event lake; content, user, search and system "
                    "metrics; the dashboard overview with live numbers; reports and alert rules",
                ),
                Tag(name="health", description="Liveness (public) and backend health (health:read)"),
            ],
            components=Components(),
        ),
        logging_config=LoggingConfig(
            log_exceptions="debug", disable_stack_trace={400, 401, 403, 404, 409, 412, 422, 428, 429}
        ),
        debug=settings.debug,
        state=State({"settings": settings, "auth": auth, "notification_pump": pump}),
    )
    live_metrics.wrap(app)  # outermost: records the status each client was actually sent
    return app
