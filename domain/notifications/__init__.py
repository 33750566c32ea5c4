"""Notifications: in-app inbox, email/push/SMS/webhook delivery, templates, preferences, broadcasts."""
