"""The outbox event types the notifications service emits: a notification made, and the outcome of
its deliveries."""

NOTIFICATION_CREATED = "notification.created"
NOTIFICATION_DELIVERED = "notification.delivered"
NOTIFICATION_FAILED = "notification.failed"  # every destination failed or bounced
