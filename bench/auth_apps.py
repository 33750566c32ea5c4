"""The baseline of `bench/auth.py`: the platform app with `GET /api/v1/content/{id}` declared public
(no token, no guard check), everything else identical."""

from __future__ import annotations

from litestar import Litestar

from serving.app import create_app
from serving.permissions import PUBLIC, requires


def create_public_read_app() -> Litestar:
    app = create_app()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if getattr(handler, "operation_id", None) == "getContent":
                handler.opt.update(requires(PUBLIC))
    return app
