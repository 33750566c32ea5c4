"""`notifications.email_rate`: emails per second through `SmtpEmailTransport` to an aiosmtpd server
on loopback whose handler only counts. Each message has an Arabic subject and text + HTML parts;
`send_batch` gets batches of 500, as the delivery drain does. Spec: at least 200/s.

The server runs in this process (the controller's thread), so the figure also pays for Python's
SMTP server: a separate mail server leaves the client more of the machine.

    python bench/_notify_email.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import json
import socket
import time
import uuid

import anyio
from aiosmtpd.controller import Controller

from domain.notifications.outgoing import Delivered, Outgoing
from resources.notifiers.email import SmtpEmailTransport

BATCH = 500


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.count += 1  # the handler runs on the controller's one event loop
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _message(number: int) -> Outgoing:
    return Outgoing(
        delivery_id=uuid.uuid4(),
        notification_id=uuid.uuid4(),
        channel="email",
        to=f"reader{number}@bench.test",
        subject=f"إشعار جديد رقم {number}: مقالة منشورة",
        text=f"مرحباً،\nنُشرت مقالة جديدة في القسم الذي تتابعه. ({number})\nA new article was published.",
        html=f"<p dir='rtl'>مرحباً، نُشرت <a href='https://example.test/a/{number}'>مقالة جديدة</a>.</p>",
        language="ar",
    )


def email_rate(messages: int = 2000) -> dict:
    """Send `messages` emails in batches of 500; returns the figure as a JSON-able dict."""
    counter = _Counter()
    port = _free_port()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        transport = SmtpEmailTransport(
            host="127.0.0.1", port=port, starttls=False, sender="ثمنية <no-reply@bench.test>"
        )
        items = [_message(number) for number in range(messages)]
        delivered = 0
        started = time.perf_counter()
        for first in range(0, messages, BATCH):
            outcomes = anyio.run(transport.send_batch, items[first : first + BATCH])
            delivered += sum(isinstance(outcome, Delivered) for outcome in outcomes)
        elapsed = time.perf_counter() - started
    finally:
        controller.stop()
    if delivered != messages or counter.count != messages:
        raise RuntimeError(f"{delivered} delivered and {counter.count} received of {messages}")
    return {"bench": "notifications.email_rate", "value": round(messages / elapsed, 3), "unit": "per_s"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    print(json.dumps(email_rate(parser.parse_args().messages)), flush=True)
