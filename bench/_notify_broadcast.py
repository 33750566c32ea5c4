"""`notifications.broadcast_100k`: seconds to fan a broadcast out to 100,000 in-app recipients on the
embedded SQLite DB with `domain.notifications.broadcast.run`: batches of 2,000 users, each one
transaction with its bulk insert (duplicates ignored by the unique index) and the resume cursor.
Users are a third Arabic, the rest English; the message is rendered once per language. The users
are inserted in bulk beforehand and not timed. `n` is the number of notifications the run created
(checked equal to `--recipients`). Target: under 60 s.

    python bench/_notify_broadcast.py [--recipients 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.db import sync_engine
from domain.ids import new_id
from domain.migrate import upgrade
from domain.notifications import broadcast
from domain.schema import Broadcast, Notification, User

USER_BATCH = 10_000


def _users(engine: sa.Engine, count: int) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        for first in range(0, count, USER_BATCH):
            rows = [
                {
                    "id": new_id(),
                    "username": f"reader{i}",
                    "email": f"reader{i}@bench.test",
                    "is_active": True,
                    "is_verified": True,
                    "preferences": {"locale": "ar-SA"} if i % 3 == 0 else {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(first, min(count, first + USER_BATCH))
            ]
            session.execute(sa.insert(User.__table__), rows)


def broadcast_100k(recipients: int = 100_000) -> dict:
    """Fan one in-app broadcast out to `recipients` users; returns the figure as a JSON-able dict."""
    with tempfile.TemporaryDirectory(prefix="thmnayah-bench-broadcast-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = sync_engine(url)

        @contextmanager
        def session() -> Iterator[Session]:
            with Session(engine, expire_on_commit=False) as s, s.begin():
                yield s

        try:
            _users(engine, recipients)
            with session() as s:
                row = Broadcast(
                    name="bench",
                    message={
                        "subject": {"ar": "أهلاً بكم في ثمانية", "en": "Welcome to thmnayah"},
                        "content": {"ar": "رسالة إلى كل الحسابات.", "en": "A message to every account."},
                    },
                    criteria={},
                    channels=["in_app"],
                )
                s.add(row)
                s.flush()
                broadcast_id = row.id
            started = time.perf_counter()
            progress = broadcast.run(session, broadcast_id)
            elapsed = time.perf_counter() - started
            with session() as s:
                created = s.scalar(
                    sa.select(sa.func.count())
                    .select_from(Notification)
                    .where(Notification.broadcast_id == broadcast_id)
                )
        finally:
            engine.dispose()
    if progress.status != "completed" or created != recipients or progress.created != recipients:
        raise RuntimeError(
            f"broadcast {progress.status}: {created} notifications for {recipients} recipients"
        )
    return {"bench": "notifications.broadcast_100k", "value": round(elapsed, 3), "unit": "s", "n": created}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=100_000)
    print(json.dumps(broadcast_100k(parser.parse_args().recipients)), flush=True)
