"""Fixtures of the notifications API tests: the people who send and read, and notifications made the
way a job makes them."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from domain.notifications.service import Draft, send
from tests.serving.conftest import bearer


@pytest.fixture
def people(new_user) -> dict[str, tuple[uuid.UUID, dict[str, str]]]:
    """An editor (send, manage, broadcast), an Arabic-speaking viewer and another viewer."""
    out = {}
    for name, roles, fields in (
        ("editor", ["editor"], {}),
        ("reader", ["viewer"], {"preferences": {"locale": "ar-SA"}}),
        ("other", ["viewer"], {}),
    ):
        user_id, token = new_user(f"{name}-{uuid.uuid4().hex[:6]}", roles, **fields)
        out[name] = (user_id, bearer(token))
    return out


def insert(
    factory: sessionmaker[Session], recipient: uuid.UUID, *, n: int = 1, **draft: object
) -> list[uuid.UUID]:
    """Notifications made the way a job makes them (straight into the DB, not pushed)."""
    ids = []
    for i in range(n):
        spec = {"category": "general", "subject": f"message {i}", **draft}
        with factory.begin() as session:
            ids += [x.id for x in send(session, Draft(**spec), [recipient]).notifications]
    return ids
