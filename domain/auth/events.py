"""The outbox event types the auth service emits (the notification rules welcome a verified user).

These name domain events in the outbox; the audit log's actions (`domain.auth.audit`) are a separate
vocabulary, even where a name is the same."""

USER_REGISTERED = "user.registered"  # an account was created, not yet verified
USER_VERIFIED = "user.verified"  # its email address was confirmed: the account is live
