"""HTTP routes of the CMS core content API: `/api/v1/content`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, TypeVar

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from domain import content
from serving.auth.security import AuthContext
from serving.content import services
from serving.content.schemas import (
    ContentCreate,
    ContentOut,
    ContentPage,
    ContentStatus,
    ContentType,
    ContentUpdate,
    ScheduleRequest,
    localized,
)
from serving.db import Database
from serving.permissions import (
    CONTENT_CREATE,
    CONTENT_DELETE,
    CONTENT_PUBLISH,
    CONTENT_READ,
    CONTENT_READ_UNPUBLISHED,
    CONTENT_UPDATE,
    holds,
    requires,
)

IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", required=False, description='ETag from a previous read, e.g. "v3"'),
]

T = TypeVar("T")


def _with_etag(out: ContentOut, status_code: int = 200, **headers: str) -> Response[ContentOut]:
    return Response(out, status_code=status_code, headers={"ETag": services.etag(out.version), **headers})


async def _versioned_write(
    request: Request, db: Database, auth: AuthContext, if_match: str | None, change: Callable[..., T]
) -> T:
    """`change(session, expected_version=, actor=, origin=)` in one transaction, with the version the
    If-Match header names and the caller and origin of the request, as every lifecycle route passes them."""
    version = services.parse_if_match(if_match)
    actor, origin = request.user.user_id, auth.origin(request)
    return await db.write(lambda s: change(s, expected_version=version, actor=actor, origin=origin))


class ContentController(Controller):
    path = "/api/v1/content"
    tags = ["content"]

    @post(
        "/",
        opt=requires(CONTENT_CREATE),
        operation_id="createContent",
        summary="Create a content item (draft)",
    )
    async def create(
        self, request: Request, data: JSONBody[ContentCreate], db: NamedDependency[Database]
    ) -> Response[ContentOut]:
        new = content.NewContent(
            type=data.type,
            title=localized(data.title),
            description=localized(data.description),
            slug=data.slug,
            tags=data.tags,
            metadata=data.metadata,
        )
        actor = request.user.user_id
        item = await db.write(lambda s: content.create_content(s, new, actor=actor))
        out = services.to_out(item)
        return _with_etag(out, 201, Location=f"{self.path}/{out.id}")

    @get(
        "/",
        opt=requires(CONTENT_READ),
        operation_id="listContent",
        summary="List and search content",
        description="Published items only, unless you hold content:read_unpublished (drafts, items in "
        "review, scheduled and archived items).",
    )
    async def list_content(
        self,
        request: Request,
        db: NamedDependency[Database],
        status: FromQuery[ContentStatus | None] = None,
        content_type: Annotated[ContentType | None, QueryParameter(name="type")] = None,
        tag: Annotated[str | None, QueryParameter(max_length=64)] = None,
        language: Annotated[str | None, QueryParameter(pattern="^(ar|en)$", description="ar or en")] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=200, description="Full-text search over both languages")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> ContentPage:
        items, next_cursor = await services.list_page(
            db,
            status=status,
            type_=content_type,
            tag=tag,
            language=language,
            q=q,
            limit=limit,
            cursor=cursor,
            may_read_unpublished=holds(request, CONTENT_READ_UNPUBLISHED),
        )
        return ContentPage(items=items, next_cursor=next_cursor)

    @get(
        "/{item_id:uuid}",
        opt=requires(CONTENT_READ),
        operation_id="getContent",
        summary="Get a content item",
        description="An unpublished item is a 404 without content:read_unpublished.",
    )
    async def get_one(
        self,
        request: Request,
        item_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
    ) -> Response[ContentOut]:
        out = await services.get(db, item_id, may_read_unpublished=holds(request, CONTENT_READ_UNPUBLISHED))
        tag = services.etag(out.version)
        if request.headers.get("if-none-match") == tag:
            return Response(None, status_code=304, headers={"ETag": tag})  # type: ignore[arg-type]
        return _with_etag(out)

    @patch(
        "/{item_id:uuid}",
        opt=requires(CONTENT_UPDATE),
        operation_id="updateContent",
        summary="Update fields of a content item (optimistic concurrency with If-Match)",
        description="A published or scheduled item (editing, archiving, moving back to draft) needs "
        "content:publish as well.",
    )
    async def update(
        self,
        request: Request,
        item_id: FromPath[uuid.UUID],
        data: JSONBody[ContentUpdate],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
        if_match: IfMatch = None,
    ) -> Response[ContentOut]:
        if if_match is None:
            raise ClientException(
                status_code=428, detail="send If-Match with the ETag from your last read; updates need it"
            )
        version = services.parse_if_match(if_match)
        changes = data.changes()
        actor, origin = request.user.user_id, auth.origin(request)
        may_publish = request.user.can(CONTENT_PUBLISH)
        item = await db.write(
            lambda s: content.update_content(
                s,
                item_id,
                changes,
                expected_version=version,
                actor=actor,
                may_publish=may_publish,
                origin=origin,
            ),
        )
        return _with_etag(services.to_out(item))

    @delete(
        "/{item_id:uuid}",
        opt=requires(CONTENT_DELETE),
        operation_id="deleteContent",
        summary="Soft-delete content",
    )
    async def remove(
        self,
        request: Request,
        item_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
        if_match: IfMatch = None,
    ) -> None:
        await _versioned_write(
            request, db, auth, if_match, lambda s, **who: content.soft_delete(s, item_id, **who)
        )

    @post(
        "/{item_id:uuid}/publish",
        opt=requires(CONTENT_PUBLISH),
        operation_id="publishContent",
        summary="Publish now",
        status_code=200,
    )
    async def publish(
        self,
        request: Request,
        item_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
        if_match: IfMatch = None,
    ) -> Response[ContentOut]:
        item = await _versioned_write(
            request, db, auth, if_match, lambda s, **who: content.publish(s, item_id, **who)
        )
        return _with_etag(services.to_out(item))

    @post(
        "/{item_id:uuid}/schedule",
        opt=requires(CONTENT_PUBLISH),
        operation_id="scheduleContent",
        summary="Schedule publication at publish_at (published by the scheduler when due)",
        status_code=200,
    )
    async def schedule(
        self,
        request: Request,
        item_id: FromPath[uuid.UUID],
        data: JSONBody[ScheduleRequest],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
        if_match: IfMatch = None,
    ) -> Response[ContentOut]:
        item = await _versioned_write(
            request, db, auth, if_match, lambda s, **who: content.schedule(s, item_id, data.publish_at, **who)
        )
        return _with_etag(services.to_out(item))
