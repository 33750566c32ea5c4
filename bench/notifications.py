"""Notification figures of issue 5, one JSON line each:

- `notifications.websocket_p99`: ms from `POST /api/v1/notifications/send` (in-app) to the message
  arriving on the recipient's WebSocket, the API under uvicorn on loopback (target < 100; spec: 1 s);
- `notifications.template_render`: mean ms to render a complex email template (loops, Babel dates
  and numbers, the Arabic RTL layout) after warm-up, every render with dates and numbers not
  formatted before (target < 1, the line's `goal`; spec: 100 ms); beside it
  `notifications.template_render_cached`, the same data rendered every time (all formatting cache hits);
- `notifications.broadcast_100k`: s to fan a broadcast out to 100,000 in-app recipients on the
  embedded SQLite DB, batches and resume cursor included (target < 60); `n`: the recipients run;
- `notifications.email_rate`: messages per second through the SMTP transport to a local aiosmtpd
  server (target >= 200).

    python bench/notifications.py [--messages 300] [--renders 5000] [--recipients 100000] [--emails 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _http import report  # noqa: E402
from _notify_broadcast import broadcast_100k  # noqa: E402
from _notify_email import email_rate  # noqa: E402
from _notify_templates import template_render  # noqa: E402
from _notify_ws import websocket_p99  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300, help="WebSocket round trips")
    parser.add_argument("--renders", type=int, default=5000, help="template renders")
    parser.add_argument("--recipients", type=int, default=100_000, help="broadcast recipients")
    parser.add_argument("--emails", type=int, default=2000, help="emails to the local SMTP server")
    args = parser.parse_args()
    for figure in (
        *template_render(args.renders),
        email_rate(args.emails),
        websocket_p99(args.messages),
        broadcast_100k(args.recipients),
    ):
        report(**figure)


if __name__ == "__main__":
    main()
