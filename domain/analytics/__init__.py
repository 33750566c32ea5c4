"""Analytics: tracked events, their validation, and the event lake they are written to."""
