"""HTTP routes of the notifications API: `/api/v1/notifications` (the WebSocket is in `realtime`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import anyio
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED
from sqlalchemy.orm import Session

from domain.errors import InvalidValue, NotFound
from domain.notifications import contacts, inbox, service, templates
from domain.schema import User, utcnow
from domain.settings import Settings
from serving.auth.principal import Principal
from serving.auth.security import AuthContext
from serving.db import Database
from serving.notifications import services
from serving.notifications.realtime import publish_notifications, publish_read
from serving.notifications.schemas import (
    BroadcastAccepted,
    BroadcastRequest,
    BroadcastStatus,
    Channel,
    ContactIn,
    ContactOut,
    DeliveryReport,
    InboxPage,
    PreferencesOut,
    PreferencesRequest,
    PreviewOut,
    PreviewRequest,
    ReadAllRequest,
    ReadAllResult,
    ReadRequest,
    ReadResult,
    SendRequest,
    SendResult,
    SentOut,
    SkippedOut,
    SubscriptionIn,
    SubscriptionOut,
    TemplateIn,
    TemplateOut,
)
from serving.pagination import decode_cursor, encode_cursor
from serving.permissions import (
    AUTHENTICATED,
    NOTIFICATIONS_BROADCAST,
    NOTIFICATIONS_MANAGE,
    NOTIFICATIONS_SEND,
    requires,
)
from serving.problems import problem

AuthedRequest = Request[Principal, Any, Any]
SEND_RENDER_SECONDS = 3.0  # all the renders of one send request together (they run on the event loop)


def template_error(request: Request, exc: templates.TemplateError) -> Response:
    """A template that does not compile or render: 422 naming the field, part and line."""
    field = services.TEMPLATE_FIELDS.get(exc.part, exc.part)
    if request.url.path.endswith(("/send", "/broadcast")):
        field = "template"
    where = f"{exc.part}" if exc.line is None else f"{exc.part}, line {exc.line}"
    return problem(
        request,
        422,
        f"the template cannot be rendered ({where}): {exc.message}",
        title="Invalid template",
        errors=[{"field": field, "part": exc.part, "line": exc.line, "message": exc.message}],
    )


class NotificationsController(Controller):
    path = "/api/v1/notifications"
    tags = ["notifications"]
    exception_handlers = {templates.TemplateError: template_error}

    # --- sending and the inbox --------------------------------------------------------------------

    @post(
        "/send",
        opt=requires(NOTIFICATIONS_SEND),
        operation_id="sendNotification",
        summary="Send a notification to up to 1,000 users on one or more channels",
        description="In-app notifications reach the recipients' open WebSockets at once; email, SMS, "
        "push and webhook deliveries are queued for the delivery job (after preferences, quiet hours "
        "and digests). Recipients who cannot be reached are listed in `skipped` or get a failed "
        "delivery with its reason.",
        status_code=HTTP_201_CREATED,
    )
    async def send(
        self,
        request: AuthedRequest,
        data: JSONBody[SendRequest],
        db: NamedDependency[Database],
        channels: NamedDependency[ChannelsPlugin],
        settings: NamedDependency[Settings],
    ) -> SendResult:
        services.aware(data.scheduled_at, "scheduled_at")
        draft = service.Draft(
            category=data.category,
            channels=list(dict.fromkeys(data.channels)),
            template=data.template,
            subject=data.subject,
            content=data.content,
            data=data.data,
            notification_type=data.notification_type,
            critical=data.critical,
            sender_id=request.user.user_id,
            scheduled_at=data.scheduled_at,
            metadata=data.metadata,
        )
        recipients = list(dict.fromkeys(data.recipient_ids))

        def run(session: Session) -> tuple[service.Outcome, list[dict[str, Any]]]:
            now = utcnow()
            # The renders run in the request's transaction, on the event loop: all of them together
            # get SEND_RENDER_SECONDS (a broadcast renders in a Dagster job instead).
            with templates.shared_time_limit(SEND_RENDER_SECONDS):
                outcome = service.send(
                    session,
                    draft,
                    recipients,
                    now=now,
                    default_language=settings.notification_default_language,
                )
            live = [
                n
                for n in outcome.notifications
                if n.channel == inbox.IN_APP and (n.scheduled_at is None or n.scheduled_at <= now)
            ]
            for n in live:
                n.pushed_at = now  # published below, right after the commit
            session.flush()
            return outcome, [inbox.message(n) for n in live]

        outcome, messages = await db.write(run)
        publish_notifications(channels, messages)
        return SendResult(
            notifications=[SentOut(n.id, n.recipient_id, n.channel, n.status) for n in outcome.notifications],
            skipped=[SkippedOut(**s) for s in outcome.skipped],
        )

    @get(
        "/{user_id:uuid}/inbox",
        opt={**requires(NOTIFICATIONS_MANAGE), "allow_self": True},
        operation_id="getInbox",
        summary="A user's in-app notifications, newest first (yours, or anyone's with notifications:manage)",
        description="Cursor pages (`next_cursor`), filters by read state and category, and threads: "
        "with `threads=true` one entry per thread (the notifications of one domain event) with "
        "`count` and `unread`.",
    )
    async def inbox(
        self,
        user_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        status: FromQuery[Literal["unread", "read", "all"]] = "all",
        category: Annotated[str | None, QueryParameter(max_length=100)] = None,
        threads: FromQuery[bool] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> InboxPage:
        before = decode_cursor(cursor) if cursor else None
        result = await db.read(
            lambda s: inbox.page(
                s, user_id, status=status, category=category, limit=limit, before=before, threads=threads
            )
        )
        return InboxPage(
            items=[services.inbox_item(e, threads) for e in result.entries],
            next_cursor=encode_cursor(result.next_before) if result.next_before else None,
            unread_count=result.unread_count,
        )

    @put(
        "/{notification_id:uuid}/read",
        opt=requires(AUTHENTICATED),
        operation_id="markNotificationRead",
        summary="Mark one of your notifications read (or unread with read=false)",
        description="Idempotent. Your other open WebSocket connections receive "
        '`{"type": "read", "id", "read", "unread_count"}`. Another user\'s notification is a 404.',
    )
    async def mark_read(
        self,
        request: AuthedRequest,
        notification_id: FromPath[uuid.UUID],
        data: JSONBody[ReadRequest],
        db: NamedDependency[Database],
        channels: NamedDependency[ChannelsPlugin],
    ) -> ReadResult:
        user_id = request.user.user_id

        def mark(session: Session) -> tuple[ReadResult, bool]:
            row, changed = inbox.mark_read(session, user_id, notification_id, data.read)
            unread = inbox.unread_count(session, user_id)
            return ReadResult(row.id, row.status, row.read_at is not None, row.read_at, unread), changed

        result, changed = await db.write(mark)
        if changed:
            publish_read(channels, user_id, [notification_id], data.read, result.unread_count)
        return result

    @put(
        "/read-all",
        opt=requires(AUTHENTICATED),
        operation_id="markAllNotificationsRead",
        summary="Mark all your in-app notifications read (optionally of one category)",
    )
    async def mark_all_read(
        self,
        request: AuthedRequest,
        data: JSONBody[ReadAllRequest],
        db: NamedDependency[Database],
        channels: NamedDependency[ChannelsPlugin],
    ) -> ReadAllResult:
        user_id = request.user.user_id

        def mark(session: Session) -> tuple[list[uuid.UUID], int]:
            ids = inbox.mark_all_read(session, user_id, category=data.category)
            return ids, inbox.unread_count(session, user_id)

        ids, unread = await db.write(mark)
        if ids:
            publish_read(channels, user_id, ids, True, unread)
        return ReadAllResult(marked=len(ids), unread_count=unread)

    # --- preferences, contacts, subscriptions -----------------------------------------------------

    @post(
        "/preferences",
        opt=requires(AUTHENTICATED),
        operation_id="setNotificationPreferences",
        summary="Set notification preferences per type and channel (frequency, quiet hours)",
        description="Upserts each preference (`notification_type` `*` covers every type). `user_id` "
        "defaults to yourself; another user's needs notifications:manage. An impossible entry "
        "(equal quiet-hours start and end, `25:00`, an unknown time zone) is a 422 naming "
        "`preferences[i].<field>`, and nothing is saved.",
        status_code=HTTP_200_OK,
    )
    async def set_preferences(
        self, request: AuthedRequest, data: JSONBody[PreferencesRequest], db: NamedDependency[Database]
    ) -> PreferencesOut:
        principal = request.user
        user_id = data.user_id or principal.user_id
        if user_id != principal.user_id and not principal.can(NOTIFICATIONS_MANAGE):
            raise PermissionDeniedException(
                f"another user's preferences need the {NOTIFICATIONS_MANAGE!r} permission"
            )
        checked = services.check_preferences(data.preferences)

        def save(session: Session) -> PreferencesOut:
            if session.get(User, user_id) is None:
                raise NotFound(f"user {user_id} does not exist")
            rows = services.save_preferences(session, user_id, checked)
            return PreferencesOut(user_id, [services.preference_out(r) for r in rows])

        return await db.write(save)

    @get(
        "/preferences",
        opt=requires(AUTHENTICATED),
        operation_id="getNotificationPreferences",
        summary="Your notification preferences (types and channels not listed use the defaults)",
    )
    async def get_preferences(self, request: AuthedRequest, db: NamedDependency[Database]) -> PreferencesOut:
        user_id = request.user.user_id
        rows = await db.read(lambda s: services.preferences_of(s, user_id))
        return PreferencesOut(user_id, [services.preference_out(r) for r in rows])

    @put(
        "/contacts",
        opt=requires(AUTHENTICATED),
        operation_id="putNotificationContact",
        summary="Register your phone (SMS), device token (push) or webhook URL and signing secret",
        description="Phone numbers in E.164 form; webhook URLs http(s) with a signing secret of 16+ "
        "characters, stored encrypted and never returned. Registering an address again updates it. "
        "A webhook host that is, or resolves to, a loopback, private or link-local address is refused "
        "(422) unless the deployment allows private networks.",
    )
    async def put_contact(
        self,
        request: AuthedRequest,
        data: JSONBody[ContactIn],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
    ) -> ContactOut:
        new = contacts.NewContact(data.channel, data.address, data.secret, data.is_active)
        user_id = request.user.user_id
        allow_private = auth.settings.webhook_allow_private_networks
        if new.channel == "webhook":
            address = contacts.check_address("webhook", new.address, allow_private_networks=allow_private)
            from resources import webhook_http  # httpx loads on the first webhook contact, not at start

            refused = await webhook_http.refuse_private_host(address, allow_private_networks=allow_private)
            if refused:
                raise InvalidValue(refused, field="address")
        return await db.write(
            lambda s: services.contact_out(
                contacts.register(s, user_id, new, keys=auth.keys, allow_private_networks=allow_private)
            )
        )

    @get(
        "/contacts",
        opt=requires(AUTHENTICATED),
        operation_id="listNotificationContacts",
        summary="Your phone numbers, devices and webhooks (without secrets)",
    )
    async def list_contacts(self, request: AuthedRequest, db: NamedDependency[Database]) -> list[ContactOut]:
        user_id = request.user.user_id
        return await db.read(lambda s: [services.contact_out(r) for r in contacts.of_user(s, user_id)])

    @delete(
        "/contacts/{contact_id:uuid}",
        opt=requires(AUTHENTICATED),
        operation_id="deleteNotificationContact",
        summary="Remove one of your contacts",
    )
    async def delete_contact(
        self, request: AuthedRequest, contact_id: FromPath[uuid.UUID], db: NamedDependency[Database]
    ) -> None:
        user_id = request.user.user_id
        await db.write(lambda s: contacts.remove(s, user_id, contact_id))

    @post(
        "/subscriptions",
        opt=requires(AUTHENTICATED),
        operation_id="followTopic",
        summary="Follow a topic: series:<id>, content:<id>, category:<slug> or tag:<tag>",
        description="201 when newly followed, 200 when you already follow it.",
    )
    async def follow(
        self, request: AuthedRequest, data: JSONBody[SubscriptionIn], db: NamedDependency[Database]
    ) -> Response[SubscriptionOut]:
        user_id = request.user.user_id
        row, created = await db.write(lambda s: services.follow(s, user_id, data.topic))
        out = SubscriptionOut(topic=row.topic, created_at=row.created_at)
        return Response(out, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get(
        "/subscriptions",
        opt=requires(AUTHENTICATED),
        operation_id="listSubscriptions",
        summary="The topics you follow",
    )
    async def subscriptions(
        self, request: AuthedRequest, db: NamedDependency[Database]
    ) -> list[SubscriptionOut]:
        user_id = request.user.user_id
        return await db.read(lambda s: services.subscriptions_of(s, user_id))

    @delete(
        "/subscriptions",
        opt=requires(AUTHENTICATED),
        operation_id="unfollowTopic",
        summary="Stop following a topic (`?topic=series:<id>`)",
    )
    async def unfollow(
        self,
        request: AuthedRequest,
        topic: Annotated[str, QueryParameter(min_length=3, max_length=200)],
        db: NamedDependency[Database],
    ) -> None:
        user_id = request.user.user_id
        await db.write(lambda s: services.unfollow(s, user_id, topic))

    # --- templates --------------------------------------------------------------------------------

    @post(
        "/templates",
        opt=requires(NOTIFICATIONS_MANAGE),
        operation_id="saveNotificationTemplate",
        summary="Save a new version of a template (per name, channel and language)",
        description="Jinja in a sandbox. The template is compiled and rendered with "
        "`template_data.sample` first: a syntax error or an undefined variable is a 422 naming the "
        "part (subject, text, html) and line, and so is a render that takes longer than 2 s or makes more "
        "than 1,000,000 characters. Saving adds version N+1 and deactivates the previous one.",
        status_code=HTTP_201_CREATED,
    )
    async def save_template(
        self, request: AuthedRequest, data: JSONBody[TemplateIn], db: NamedDependency[Database]
    ) -> TemplateOut:
        # Rendered in a worker thread: the event loop serves other requests meanwhile, and the
        # render's own time and size limits (domain.notifications.templates) end it.
        await anyio.to_thread.run_sync(services.check_template, data)
        user_id = request.user.user_id
        return await db.write(lambda s: services.template_out(services.save_template(s, data, user_id)))

    @post(
        "/templates/preview",
        opt=requires(NOTIFICATIONS_MANAGE),
        operation_id="previewNotificationTemplate",
        summary="Render a saved template or given sources with data (subject, text, HTML, direction)",
        description="A template that cannot be rendered is a 422 naming the part and line, and so is a "
        "render that takes longer than 2 s or makes more than 1,000,000 characters.",
        status_code=HTTP_200_OK,
    )
    async def preview_template(
        self, data: JSONBody[PreviewRequest], db: NamedDependency[Database]
    ) -> PreviewOut:
        source, sample, language, channel = await db.read(lambda s: services.preview_source(s, data))

        def render() -> templates.Rendered:  # in a worker thread, as when saving
            return templates.validate(source, language=language, channel=channel, sample=sample)

        rendered = await anyio.to_thread.run_sync(render)
        return PreviewOut(
            rendered.subject, rendered.text, rendered.html, rendered.language, rendered.direction
        )

    @get(
        "/templates",
        opt=requires(NOTIFICATIONS_MANAGE),
        operation_id="listNotificationTemplates",
        summary="The active version of every template (filter by name or channel)",
    )
    async def list_templates(
        self,
        db: NamedDependency[Database],
        name: Annotated[str | None, QueryParameter(max_length=100)] = None,
        template_type: FromQuery[Channel | None] = None,
    ) -> list[TemplateOut]:
        rows = await db.read(lambda s: services.active_templates(s, name, template_type))
        return [services.template_out(r) for r in rows]

    @get(
        "/templates/{name:str}/versions",
        opt=requires(NOTIFICATIONS_MANAGE),
        operation_id="listNotificationTemplateVersions",
        summary="Every version of a template, newest first per channel and language",
    )
    async def template_versions(
        self,
        name: FromPath[str],
        db: NamedDependency[Database],
        template_type: FromQuery[Channel | None] = None,
        language: Annotated[str | None, QueryParameter(max_length=16)] = None,
    ) -> list[TemplateOut]:
        rows = await db.read(lambda s: services.template_versions(s, name, template_type, language))
        return [services.template_out(r) for r in rows]

    # --- deliveries and broadcasts ----------------------------------------------------------------

    @get(
        "/delivery/{notification_id:uuid}",
        opt=requires(AUTHENTICATED),
        operation_id="getNotificationDelivery",
        summary="A notification's status and every delivery attempt (its recipient, sender, or managers)",
        description="Visible to the recipient, to the user who sent it and to holders of "
        "notifications:manage; anyone else gets a 404. Destinations (email, phone, device token, "
        "webhook URL) appear in full to the recipient only: masked for everyone else "
        "(`n***@example.test`, `+9665****12`, the webhook's host).",
    )
    async def delivery(
        self, request: AuthedRequest, notification_id: FromPath[uuid.UUID], db: NamedDependency[Database]
    ) -> DeliveryReport:
        principal = request.user
        may_manage = principal.can(NOTIFICATIONS_MANAGE)
        return await db.read(
            lambda s: services.delivery_report(s, notification_id, principal.user_id, may_manage)
        )

    @post(
        "/broadcast",
        opt=requires(NOTIFICATIONS_BROADCAST),
        operation_id="createBroadcast",
        summary="Queue a message to every user matching criteria (roles, languages, subscriptions, activity)",
        description="Accepted at once (202) with the number of users matching now; a batched job "
        "fans it out with per-channel rate limits and records its progress (GET the status URL). "
        "Criteria matching nobody are accepted: the job completes with 0 recipients.",
        status_code=HTTP_202_ACCEPTED,
    )
    async def broadcast(
        self,
        request: AuthedRequest,
        data: JSONBody[BroadcastRequest],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> BroadcastAccepted:
        user_id = request.user.user_id
        row, matching = await db.write(
            lambda s: services.create_broadcast(
                s, data, user_id, default_language=settings.notification_default_language
            )
        )
        return BroadcastAccepted(
            broadcast_id=row.id,
            status=row.status,
            matching_recipients=matching,
            status_url=f"{self.path}/broadcast/{row.id}",
        )

    @get(
        "/broadcast/{broadcast_id:uuid}",
        opt=requires(NOTIFICATIONS_BROADCAST),
        operation_id="getBroadcast",
        summary="A broadcast's progress: recipients processed, notifications created, percent",
    )
    async def broadcast_status(
        self, broadcast_id: FromPath[uuid.UUID], db: NamedDependency[Database]
    ) -> BroadcastStatus:
        return await db.read(lambda s: services.broadcast_status(s, broadcast_id))
