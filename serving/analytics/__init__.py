"""The analytics API: event tracking into the event lake."""
