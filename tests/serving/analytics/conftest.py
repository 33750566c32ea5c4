"""Fixtures of the analytics management API tests: an analyst who reads, an editor who manages, and
the problem-details check their refusals share."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.serving.conftest import bearer


def assert_problem(res: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """`res` is a problem-details response of `status`, naming `field` among its errors when given."""
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    body = res.json()
    assert body["status"] == status and body["detail"]
    if field is not None:
        fields = [e.get("field") for e in body.get("errors", [])]
        assert field in fields, body
    return body


@pytest.fixture
def analyst(new_user) -> tuple[uuid.UUID, dict[str, str]]:
    """A holder of analytics:read: (user id, authorization headers)."""
    user_id, token = new_user("analytics-analyst", ["analyst"])
    return user_id, bearer(token)


@pytest.fixture
def editor(new_user) -> tuple[uuid.UUID, dict[str, str]]:
    """A holder of analytics:manage: (user id, authorization headers)."""
    user_id, token = new_user("analytics-editor", ["editor"])
    return user_id, bearer(token)
