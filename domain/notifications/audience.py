"""Who a broadcast reaches, and the topics users follow.

`recipient_query(criteria)` is the one definition of a broadcast's audience: the API counts it when
the broadcast is requested, and the broadcast job walks it in batches (`WHERE User.id > cursor`),
so both always agree. Criteria (every one given must hold; none given: every active user):

- `roles`: holds at least one of these roles (an active, unexpired grant);
- `languages`: the user's language (`preferences.locale` or `preferences.language`, else the
  platform default) is one of these, region variants included (`ar` matches `ar-SA`);
- `subscribed_to`: follows at least one of these topics;
- `active_within_days`: logged in within that many days.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.errors import InvalidValue
from domain.schema import NotificationSubscription, Role, User, UserRole, utcnow

CRITERIA_KEYS = ("roles", "languages", "subscribed_to", "active_within_days")
LIST_MAX = 100
TOPIC_KINDS = ("series", "content", "category", "tag")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")
_SLUG = re.compile(r"^[^\W_]+(?:-[^\W_]+)*$", re.UNICODE)
_TAG = re.compile(r"^[^|%_\\]{1,64}$")


def check_topic(value: str, field: str = "topic") -> str:
    """`series:<uuid>`, `content:<uuid>`, `category:<slug>` or `tag:<tag>`, normalized (lowercase)."""
    kind, sep, rest = (value or "").strip().partition(":")
    kind, rest = kind.lower(), rest.strip()
    if not sep or kind not in TOPIC_KINDS or not rest:
        raise InvalidValue(
            f"{value!r} is not a topic: use series:<id>, content:<id>, category:<slug> or tag:<tag>",
            field=field,
        )
    if kind in ("series", "content"):
        try:
            return f"{kind}:{uuid.UUID(rest)}"
        except ValueError as exc:
            raise InvalidValue(f"{kind} topics name an id (a UUID); got {rest!r}", field=field) from exc
    if kind == "category":
        if len(rest) > 100 or not _SLUG.match(rest) or rest != rest.lower():
            raise InvalidValue(
                f"{rest!r} is not a category slug (lowercase words joined by hyphens)", field=field
            )
        return f"category:{rest}"
    if not _TAG.match(rest):
        raise InvalidValue("a tag is 1-64 characters without | % _ or backslash", field=field)
    return f"tag:{rest.lower()}"


def _strings(criteria: Mapping[str, Any], key: str) -> list[str]:
    value = criteria.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > LIST_MAX or not all(isinstance(v, str) for v in value):
        raise InvalidValue(f"{key} must be a list of at most {LIST_MAX} strings", field=f"criteria.{key}")
    return value


def check_criteria(session: Session, criteria: Mapping[str, Any]) -> dict[str, Any]:
    """Validated, normalized criteria (as stored on the broadcast); `InvalidValue` names the field."""
    unknown = sorted(set(criteria) - set(CRITERIA_KEYS))
    if unknown:
        raise InvalidValue(
            f"unknown criteria {', '.join(unknown)}; use {', '.join(CRITERIA_KEYS)}",
            field=f"criteria.{unknown[0]}",
        )
    out: dict[str, Any] = {}
    roles = _strings(criteria, "roles")
    if roles:
        known = set(session.scalars(sa.select(Role.name).where(Role.name.in_(roles))))
        for index, role in enumerate(roles):
            if role not in known:
                raise InvalidValue(f"there is no role named {role!r}", field=f"criteria.roles[{index}]")
        out["roles"] = sorted(set(roles))
    languages = []
    for index, language in enumerate(_strings(criteria, "languages")):
        tag = language.strip().replace("_", "-").lower()
        if not _LANGUAGE.match(tag):
            raise InvalidValue(
                f"{language!r} is not a language tag (like ar, en or ar-SA)",
                field=f"criteria.languages[{index}]",
            )
        languages.append(tag)
    if languages:
        out["languages"] = sorted(set(languages))
    topics = [
        check_topic(topic, f"criteria.subscribed_to[{index}]")
        for index, topic in enumerate(_strings(criteria, "subscribed_to"))
    ]
    if topics:
        out["subscribed_to"] = sorted(set(topics))
    days = criteria.get("active_within_days")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise InvalidValue(
                "active_within_days must be a whole number of days from 1 to 3650",
                field="criteria.active_within_days",
            )
        out["active_within_days"] = days
    return out


def recipient_query(
    criteria: Mapping[str, Any], *, now: datetime | None = None, default_language: str = "en"
) -> sa.Select:
    """`SELECT users.id` of the active users matching `criteria` (already checked), ordered by id."""
    query = sa.select(User.id).where(User.is_active.is_(True)).order_by(User.id)
    now = now or utcnow()
    if criteria.get("roles"):
        granted = (
            sa.select(UserRole.user_id)
            .join(Role, Role.id == UserRole.role_id)
            .where(
                UserRole.user_id == User.id,
                UserRole.is_active.is_(True),
                sa.or_(UserRole.expires_at.is_(None), UserRole.expires_at > now),
                Role.name.in_(list(criteria["roles"])),
            )
        )
        query = query.where(granted.exists())
    if criteria.get("languages"):
        spoken = sa.func.lower(
            sa.func.replace(
                sa.func.coalesce(
                    User.preferences["locale"].as_string(),
                    User.preferences["language"].as_string(),
                    default_language,
                ),
                "_",
                "-",
            )
        )
        query = query.where(
            sa.or_(*(sa.or_(spoken == lang, spoken.like(f"{lang}-%")) for lang in criteria["languages"]))
        )
    if criteria.get("subscribed_to"):
        follows = sa.select(NotificationSubscription.user_id).where(
            NotificationSubscription.user_id == User.id,
            NotificationSubscription.topic.in_(list(criteria["subscribed_to"])),
        )
        query = query.where(follows.exists())
    if criteria.get("active_within_days"):
        query = query.where(User.last_login >= now - timedelta(days=int(criteria["active_within_days"])))
    return query


def count(session: Session, criteria: Mapping[str, Any], **kwargs: Any) -> int:
    query = recipient_query(criteria, **kwargs).order_by(None)
    return int(session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)
