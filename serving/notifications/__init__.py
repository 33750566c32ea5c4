"""Notifications API: sending, the in-app inbox and its WebSocket, preferences, contacts, subscriptions,
templates, deliveries and broadcasts (`/api/v1/notifications`)."""
