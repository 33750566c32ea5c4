"""Demo data the run command seeds, so a newcomer sees every capability working.

Idempotent: items are keyed by slug; running it again adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import content
from domain.auth import audit, rbac, users
from domain.ids import SYSTEM_ACTOR
from domain.schema import ContentItem, User, utcnow

# (slug, type, title, description, tags, final status)
DEMO_CONTENT: list[tuple[str, str, dict[str, str], dict[str, str], list[str], str]] = [
    (
        "ramadan-documentary",
        "video",
        {"ar": "وثائقي: رمضان في المدينة", "en": "Documentary: Ramadan in the City"},
        {
            "ar": "جولة في أسواق المدينة القديمة خلال الشهر الكريم.",
            "en": "A walk through the old city's markets.",
        },
        ["documentary", "culture"],
        "published",
    ),
    (
        "football-weekly-ep-12",
        "episode",
        {"ar": "الأسبوع الكروي - الحلقة ١٢", "en": "Football Weekly - Episode 12"},
        {"ar": "تحليل مباريات الأسبوع.", "en": "This week's matches analysed."},
        ["sport", "football"],
        "published",
    ),
    (
        "arabic-calligraphy-podcast",
        "audio",
        {"ar": "بودكاست: فنّ الخطّ العربيّ", "en": "Podcast: The Art of Arabic Calligraphy"},
        {"en": "A conversation with a master calligrapher."},
        ["podcast", "culture"],
        "published",
    ),
    (
        "desert-photo-essay",
        "image",
        {"ar": "مقال مصور: الصحراء عند الفجر", "en": "Photo essay: The Desert at Dawn"},
        {},
        ["photography"],
        "in_review",
    ),
    (
        "tech-newsletter-draft",
        "article",
        {"en": "Tech Newsletter: AI in Newsrooms"},
        {"en": "Draft of this month's newsletter."},
        ["technology"],
        "draft",
    ),
    (
        "breaking-news-scheduled",
        "article",
        {"ar": "خبر عاجل مجدول للنشر", "en": "Scheduled breaking story"},
        {"en": "Published by the scheduler without a hand in it, about 90 seconds after the demo starts."},
        ["news"],
        "scheduled",
    ),
]


def seed_demo(
    session: Session, *, now: datetime | None = None, schedule_delay: timedelta = timedelta(seconds=90)
) -> int:
    """Create the demo items that do not exist yet, written by the demo editor (the system when
    there is no such account); returns how many were created."""
    now = now or utcnow()
    actor = session.scalar(sa.select(User.id).where(User.username == DEMO_EDITOR)) or SYSTEM_ACTOR
    existing = set(session.scalars(sa.select(ContentItem.slug).where(ContentItem.deleted_at.is_(None))))
    created = 0
    for slug, type_, title, description, tags, final in DEMO_CONTENT:
        if slug in existing:
            continue
        item = content.create_content(
            session,
            content.NewContent(
                type=type_,
                title=title,
                description=description,
                slug=slug,
                tags=tags,
                metadata={"demo": True},
            ),
            actor=actor,
        )
        if final in ("in_review", "published", "scheduled"):
            content.update_content(
                session, item.id, {"status": "in_review"}, expected_version=item.version, actor=actor
            )
        if final == "published":
            content.publish(session, item.id, actor=actor)
        elif final == "scheduled":
            content.schedule(session, item.id, now + schedule_delay, now=now, actor=actor)
        created += 1
    return created


# Demo accounts, one per system role; the README lists them. Demo only: change or remove them
# before anything real reaches the platform.
DEMO_USERS: list[tuple[str, str, str, str]] = [
    # (username, email, password, role)
    ("admin", "admin@demo.thmnayah.local", "demo-admin-thmnayah", "admin"),
    ("editor", "editor@demo.thmnayah.local", "demo-editor-thmnayah", "editor"),
    ("author", "author@demo.thmnayah.local", "demo-author-thmnayah", "author"),
    ("analyst", "analyst@demo.thmnayah.local", "demo-analyst-thmnayah", "analyst"),
    ("viewer", "viewer@demo.thmnayah.local", "demo-viewer-thmnayah", "viewer"),
]


def seed_demo_users(session: Session, hash_password: Callable[[str], str]) -> int:
    """Create the demo accounts that do not exist yet (verified and active); returns how many."""
    rbac.seed_system_roles(session)
    existing = set(session.scalars(sa.select(User.username)))
    created = 0
    for username, email, password, role in DEMO_USERS:
        if username in existing:
            continue
        users.create_user(
            session,
            users.NewUser(
                username=username,
                email=email,
                password_hash=hash_password(password),
                roles=[role],
                first_name=username.title(),
                last_name="Demo",
            ),
            created_by=None,
            origin=audit.Origin(user_agent="thmnayah demo"),
        )
        created += 1
    return created


DEMO_EMAIL_DOMAIN = "@demo.thmnayah.local"


def demo_accounts(
    session: Session, verify_password: Callable[[str, str], tuple[bool, str | None]]
) -> list[str]:
    """The usernames of demo accounts present: an account with a demo username that still has the
    demo's email address or still takes the demo's published password. (An `admin` made with
    `thmnayah create-admin` and a password of its own is not one.)"""
    found = []
    for username, _email, password, _role in DEMO_USERS:
        user = session.scalar(sa.select(User).where(User.username == username))
        if user is None:
            continue
        if user.email.endswith(DEMO_EMAIL_DOMAIN) or (
            user.password_hash is not None and verify_password(user.password_hash, password)[0]
        ):
            found.append(username)
    return found


# The viewer reads in Arabic (Saudi locale: templates fall back ar-SA -> ar) and follows the news
# and culture tags, so the scheduled breaking story reaches their inbox when the sensor publishes it.
DEMO_EDITOR = "editor"  # writes the demo content and "uploaded" the demo media
DEMO_SUBSCRIPTIONS: list[tuple[str, str]] = [
    ("viewer", "tag:news"),
    ("viewer", "tag:culture"),
    ("editor", "tag:news"),
]
DEMO_LOCALES: dict[str, str] = {"viewer": "ar-SA", "editor": "en"}
DEMO_BROADCAST_NAME = "demo-welcome"
DEMO_BROADCAST_MESSAGE = {
    "subject": {"ar": "أهلاً بكم في منصة ثمانية", "en": "Welcome to thmnayah"},
    "content": {
        "ar": "هذه رسالة ترحيب وصلت إلى كل الحسابات عبر البث الجماعي.",
        "en": "This welcome reached every account through a broadcast.",
    },
}


def seed_demo_notifications(session: Session) -> int:
    """Default templates (the account emails' too), the demo users' locales and subscriptions, and one welcome broadcast to
    every account (in-app and email), fanned out by the broadcast job. Returns the rows added."""
    from domain.notifications import account, rules
    from domain.schema import Broadcast, NotificationSubscription

    added = rules.seed_default_templates(session) + account.seed_templates(session)
    by_name = {
        u.username: u for u in session.scalars(sa.select(User).where(User.username.in_(list(DEMO_LOCALES))))
    }
    for username, locale in DEMO_LOCALES.items():
        user = by_name.get(username)
        if user is not None and (user.preferences or {}).get("locale") != locale:
            user.preferences = {**(user.preferences or {}), "locale": locale}
    users_by_name = dict(session.execute(sa.select(User.username, User.id)).tuples().all())
    existing = set(
        session.execute(sa.select(NotificationSubscription.user_id, NotificationSubscription.topic)).tuples()
    )
    for username, topic in DEMO_SUBSCRIPTIONS:
        user_id = users_by_name.get(username)
        if user_id is not None and (user_id, topic) not in existing:
            session.add(NotificationSubscription(user_id=user_id, topic=topic))
            added += 1
    if session.scalar(sa.select(sa.func.count()).where(Broadcast.name == DEMO_BROADCAST_NAME)) == 0:
        session.add(
            Broadcast(
                name=DEMO_BROADCAST_NAME,
                category="broadcast",
                message=DEMO_BROADCAST_MESSAGE,
                criteria={},
                channels=["in_app", "email"],
                created_by=users_by_name.get("editor"),
            )
        )
        added += 1
    session.flush()
    return added
