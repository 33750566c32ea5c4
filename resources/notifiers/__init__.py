"""Delivery transports: how a batch of `Outgoing` messages leaves the platform, one module per channel.

Each transport is a plain client implementing `domain.notifications.outgoing.Transport` (no Dagster:
the API process sends account mail through the email transport; `resources.dagster.notifiers` wraps
them for the delivery jobs): `send_batch` answers one `Delivered` or `DeliveryFailed` per item, in
order, and never raises for one item's failure. It is a coroutine, so synchronous code calls it with
`anyio.run(transport.send_batch, items)`; network clients (httpx, aiosmtplib) are created inside each
call, so nothing bound to an event loop outlives it.

- `email`: `SmtpEmailTransport`, `SesEmailTransport` (Amazon SES v2 API, raw MIME) or
  `FileEmailTransport` (`.eml` files; the embedded default), chosen by `email_transport`;
- `push`: `FcmPushTransport` (Firebase Cloud Messaging HTTP v1);
- `sms`: `SmsGatewayTransport` (a JSON-over-HTTP gateway);
- `webhook`: `WebhookTransport` (signed with `domain.notifications.webhooks`);
- `base`: the interface, `UnconfiguredTransport` (refuses every item with a reason that says what
  to configure) and the fan-out the channels share; `http`: the plumbing of the HTTP channels.

Failures that a retry can fix (timeouts, 4xx SMTP replies, HTTP 429/5xx, refused credentials,
an unreachable server) are retryable; refusals of the message or address itself are permanent, and
an address the provider says does not exist is `bounced`. Problems with the connection or the
credentials are retryable on purpose: an operator fixes them, and the queued messages then go out.

Nothing here logs a message body, a subject or a secret: logs carry channels, counts, delivery
ids and failure reasons.
"""
