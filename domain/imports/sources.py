"""Import sources: adding one (its configuration checked for its type), listing, pausing, resuming
and deleting, each write naming who made it and recorded in the audit trail; and their polling
state: when each is due next (its cron schedule, a capped backoff while it fails, Retry-After).

A deleted source is soft-deleted: its jobs and imported records stay, so the origin of the content
it brought in stays queryable, and its locator (the channel or URL) is free to be added again.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import cron
from domain.auth import audit
from domain.errors import Conflict, InvalidValue, NotFound
from domain.imports import polling
from domain.schema import (
    IMPORT_CONFLICT_POLICIES,
    IMPORT_PUBLISH_POLICIES,
    IMPORT_SOURCE_TYPES,
    ImportSource,
    utcnow,
)

NAME_MAX = 200
URL_MAX = 2000
# A channel id is "UC" and 22 base64url characters; a handle is "@" and 3-30 letters, digits, . _ -.
YOUTUBE_CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
YOUTUBE_HANDLE = re.compile(r"^@[A-Za-z0-9._-]{3,30}$")
API_AUTH_TYPES = ("none", "bearer", "api_key_header", "api_key_query", "basic")
API_PAGINATION = ("none", "page_number", "offset", "cursor", "link_header", "next_url")
MANUAL_FORMATS = ("json", "csv")
NO_ORIGIN = audit.Origin()


@dataclass
class NewSource:
    """What a client gives to add a source; everything else is the platform's."""

    name: str
    source_type: str
    configuration: Mapping[str, Any] = field(default_factory=dict)
    mapping_rules: Mapping[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    conflict_policy: str = "merge"
    publish_policy: str = "draft"
    is_active: bool = True


def _http_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{name} is required: an http or https URL", field=name)
    value = value.strip()
    if len(value) > URL_MAX:
        raise InvalidValue(f"{name} is longer than {URL_MAX} characters", field=name)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"{name} {value!r} must be an http or https URL with a host", field=name)
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidValue(f"{name} must be one of {', '.join(choices)}, not {value!r}", field=name)
    return value


def _youtube(config: Mapping[str, Any]) -> str:
    channel_id, handle = config.get("channel_id"), config.get("handle")
    if (channel_id is None) == (handle is None):
        raise InvalidValue(
            "a YouTube source needs exactly one of configuration.channel_id (UC and 22 characters) or"
            " configuration.handle (@name)",
            field="configuration.channel_id",
        )
    if channel_id is not None:
        if not isinstance(channel_id, str) or not YOUTUBE_CHANNEL_ID.match(channel_id):
            raise InvalidValue(
                f"configuration.channel_id {channel_id!r} is not a YouTube channel id: UC followed by 22"
                " letters, digits, - or _",
                field="configuration.channel_id",
            )
        return channel_id
    if not isinstance(handle, str) or not YOUTUBE_HANDLE.match(handle):
        raise InvalidValue(
            f"configuration.handle {handle!r} is not a YouTube handle: @ followed by 3-30 letters, digits,"
            " . _ or -",
            field="configuration.handle",
        )
    return handle.lower()


def _api(config: Mapping[str, Any]) -> str:
    url = _http_url(config.get("url"), "configuration.url")
    auth = config.get("auth") or {}
    if not isinstance(auth, Mapping):
        raise InvalidValue("configuration.auth must be an object", field="configuration.auth")
    auth_type = _choice(auth.get("type", "none"), "configuration.auth.type", API_AUTH_TYPES)
    if auth_type in ("api_key_header", "api_key_query") and not auth.get("name"):
        raise InvalidValue(
            f"configuration.auth.name is required for {auth_type}: the header or query parameter",
            field="configuration.auth.name",
        )
    paginator = config.get("pagination") or {}
    if not isinstance(paginator, Mapping):
        raise InvalidValue("configuration.pagination must be an object", field="configuration.pagination")
    _choice(paginator.get("type", "none"), "configuration.pagination.type", API_PAGINATION)
    return url


def check_configuration(source_type: str, configuration: Any) -> tuple[dict[str, Any], str]:
    """The configuration, checked for `source_type`, and the locator it names (what makes two sources
    the same). InvalidValue names the field at fault."""
    if source_type not in IMPORT_SOURCE_TYPES:
        raise InvalidValue(
            f"source_type must be one of {', '.join(IMPORT_SOURCE_TYPES)}, not {source_type!r}",
            field="source_type",
        )
    if not isinstance(configuration, Mapping):
        raise InvalidValue("configuration must be an object", field="configuration")
    config = dict(configuration)
    if source_type == "youtube":
        locator = _youtube(config)
    elif source_type == "rss":
        locator = _http_url(config.get("url"), "configuration.url")
    elif source_type == "api":
        locator = _api(config)
    else:
        _choice(config.get("format", "json"), "configuration.format", MANUAL_FORMATS)
        locator = ""
    return config, locator


def create_source(
    session: Session, new: NewSource, *, actor: uuid.UUID | None, origin: audit.Origin = NO_ORIGIN
) -> ImportSource:
    """Add a source; InvalidValue names the first field at fault, Conflict the live source that
    already imports from the same place."""
    name = (new.name or "").strip() if isinstance(new.name, str) else ""
    if not name or len(name) > NAME_MAX:
        raise InvalidValue(f"name must be 1-{NAME_MAX} characters", field="name")
    configuration, locator = check_configuration(new.source_type, new.configuration)
    if not isinstance(new.mapping_rules, Mapping):
        raise InvalidValue("mapping_rules must be an object", field="mapping_rules")
    _choice(new.conflict_policy, "conflict_policy", IMPORT_CONFLICT_POLICIES)
    _choice(new.publish_policy, "publish_policy", IMPORT_PUBLISH_POLICIES)
    schedule = None
    if new.schedule is not None and new.schedule.strip():
        if new.source_type == "manual":
            raise InvalidValue("a manual source has no schedule: its files are uploaded", field="schedule")
        schedule, _ = cron.parse(new.schedule)
    if locator:
        existing = session.scalar(
            sa.select(ImportSource.id).where(
                ImportSource.source_type == new.source_type,
                ImportSource.locator == locator,
                ImportSource.deleted_at.is_(None),
            )
        )
        if existing is not None:
            raise Conflict(f"source {existing} already imports from {locator}", field="configuration")
    now = utcnow()
    source = ImportSource(
        name=name,
        source_type=new.source_type,
        locator=locator,
        configuration=configuration,
        mapping_rules=dict(new.mapping_rules),
        schedule=schedule,
        conflict_policy=new.conflict_policy,
        publish_policy=new.publish_policy,
        is_active=bool(new.is_active),
        next_poll_at=now if new.is_active and schedule else None,
        created_by=actor,
        updated_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(source)
    session.flush()
    _audit(session, audit.IMPORT_SOURCE_CREATED, source, actor, origin, source_type=source.source_type)
    return source


def _audit(
    session: Session,
    action: str,
    source: ImportSource,
    actor: uuid.UUID | None,
    origin: audit.Origin,
    **meta: Any,
) -> None:
    audit.record(
        session,
        action,
        user_id=actor,
        origin=origin,
        resource="import_source",
        resource_id=str(source.id),
        metadata={"name": source.name, **meta},
    )


def get_source(session: Session, source_id: uuid.UUID, *, for_update: bool = False) -> ImportSource:
    """A live source; NotFound for one that never existed or was deleted."""
    query = sa.select(ImportSource).where(ImportSource.id == source_id, ImportSource.deleted_at.is_(None))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    source = session.scalar(query)
    if source is None:
        raise NotFound(f"import source {source_id} does not exist")
    return source


def list_sources(
    session: Session, *, source_type: str | None = None, is_active: bool | None = None
) -> list[ImportSource]:
    """Live sources, oldest first (ids are UUIDv7)."""
    query = sa.select(ImportSource).where(ImportSource.deleted_at.is_(None))
    if source_type is not None:
        query = query.where(ImportSource.source_type == source_type)
    if is_active is not None:
        query = query.where(ImportSource.is_active.is_(is_active))
    return list(session.scalars(query.order_by(ImportSource.id)))


def pause_source(
    session: Session, source_id: uuid.UUID, *, actor: uuid.UUID | None, origin: audit.Origin = NO_ORIGIN
) -> ImportSource:
    """Stop polling a source until it is resumed (its jobs so far and its content stay)."""
    source = get_source(session, source_id, for_update=True)
    if source.is_active:
        source.is_active, source.next_poll_at = False, None
        _touch(source, actor)
        _audit(session, audit.IMPORT_SOURCE_PAUSED, source, actor, origin)
    return source


def resume_source(
    session: Session,
    source_id: uuid.UUID,
    *,
    actor: uuid.UUID | None,
    origin: audit.Origin = NO_ORIGIN,
    now: datetime | None = None,
) -> ImportSource:
    """Poll a paused source again, at once: due now, its failure streak forgotten."""
    source = get_source(session, source_id, for_update=True)
    if not source.is_active:
        now = now or utcnow()
        source.is_active, source.failure_count = True, 0
        source.next_poll_at = now if source.schedule else None
        _touch(source, actor, now)
        _audit(session, audit.IMPORT_SOURCE_RESUMED, source, actor, origin)
    return source


def delete_source(
    session: Session, source_id: uuid.UUID, *, actor: uuid.UUID | None, origin: audit.Origin = NO_ORIGIN
) -> ImportSource:
    """Soft-delete a source: it is no longer listed or polled; what it imported keeps its origin."""
    source = get_source(session, source_id, for_update=True)
    now = utcnow()
    source.deleted_at, source.is_active, source.next_poll_at = now, False, None
    _touch(source, actor, now)
    _audit(session, audit.IMPORT_SOURCE_DELETED, source, actor, origin)
    return source


def _touch(source: ImportSource, actor: uuid.UUID | None, now: datetime | None = None) -> None:
    source.updated_at, source.updated_by = now or utcnow(), actor


def record_poll(
    source: ImportSource,
    now: datetime,
    *,
    error: str | None = None,
    retry_after_s: float | None = None,
    rand=random.random,
) -> None:
    """After a run of `source`: a success ends its failure streak, a failure counts one more and shows
    `error`. The next poll is its next cron time, pushed back by the backoff after a failure and by a
    server's Retry-After (or feed TTL) when given; a source without a schedule is not polled."""
    if error is None:
        source.failure_count, source.last_error = 0, None
    else:
        source.failure_count += 1
        source.last_error = error[:1000]
    if not source.is_active or source.deleted_at is not None or not source.schedule:
        source.next_poll_at = None
        return
    at = cron.next_run(source.schedule, now)
    if error is not None:  # polling.backoff_delay: capped, jittered, never a hard stop
        at = max(at, now + polling.backoff_delay(source.failure_count, rand))
    if retry_after_s is not None and retry_after_s > 0:
        at = max(at, now + timedelta(seconds=retry_after_s))
    source.next_poll_at = at


def due_sources(session: Session, now: datetime, *, limit: int = 500) -> list[ImportSource]:
    """Active, scheduled sources whose next poll time has come, the longest waiting first."""
    query = (
        sa.select(ImportSource)
        .where(
            ImportSource.is_active.is_(True),
            ImportSource.deleted_at.is_(None),
            ImportSource.schedule.is_not(None),
            ImportSource.next_poll_at <= now,
        )
        .order_by(ImportSource.next_poll_at, ImportSource.id)
        .limit(limit)
    )
    return list(session.scalars(query))
