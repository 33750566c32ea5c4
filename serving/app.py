"""The Litestar application factory."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, Tag

from domain.settings import Settings
from serving.content.controllers import ContentController
from serving.db import Database
from serving.deployment import build_backends
from serving.health.controllers import HealthController
from serving.problems import EXCEPTION_HANDLERS

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    database = Database(settings.database_url)
    backends = build_backends(settings)
    return Litestar(
        route_handlers=[HealthController, ContentController],
        dependencies={
            "db_session": Provide(database.provide_session),
            "db": Provide(lambda: database, use_cache=True, sync_to_thread=False),
            "backends": Provide(lambda: backends, use_cache=True, sync_to_thread=False),
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
        },
        lifespan=[database.lifespan],
        stores=backends.stores,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="thmnayah content platform API",
            version=API_VERSION,
            description="CMS core, media, users and notifications APIs. Errors are RFC 9457 problem details.",
            path="/api/docs",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            tags=[
                Tag(name="content", description="Content items and their editorial workflow"),
                Tag(name="health", description="Backend health"),
            ],
            components=Components(),
        ),
        cors_config=CORSConfig(allow_origins=[], allow_credentials=False),
        logging_config=LoggingConfig(
            log_exceptions="debug", disable_stack_trace={404, 400, 409, 412, 422, 428}
        ),
        debug=settings.debug,
        state={"settings": settings},
    )
