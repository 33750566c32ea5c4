"""The outbox event types the analytics service emits (reports and alerts; the notification rules
turn them into notifications). Not to be confused with `domain.analytics.events`, the schemas of the
tracking events apps send."""

REPORT_READY = "report.ready"
ALERT_FIRED = "alert.fired"
ALERT_ESCALATED = "alert.escalated"
ALERT_RESOLVED = "alert.resolved"
