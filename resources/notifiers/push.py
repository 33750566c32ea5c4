"""Push: Firebase Cloud Messaging (HTTP v1 API)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import anyio

from domain.notifications.outgoing import Delivered, DeliveryFailed, Outcome, Outgoing
from resources.notifiers.base import DeliveryTransport, clip, send_each
from resources.notifiers.http import Reply, http_client, post

log = logging.getLogger(__name__)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def _fcm_data(data: Mapping[str, Any]) -> dict[str, str]:
    """FCM data values must be strings: others are sent as JSON."""
    return {
        str(key): value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        for key, value in data.items()
    }


@dataclass(kw_only=True)
class FcmPushTransport(DeliveryTransport):
    """Firebase Cloud Messaging, HTTP v1 API, authenticated with a service account.

    The OAuth access token comes from google-auth (the service-account JSON's `token_uri` is
    honored) and is kept on the resource until it expires; refreshing it runs in a worker thread.
    """

    channel: ClassVar[str] = "push"

    project_id: str
    credentials_file: str
    base_url: str = "https://fcm.googleapis.com"
    timeout_seconds: float = 10.0
    concurrency: int = 16

    _credentials: Any = field(default=None, init=False, repr=False, compare=False)
    _credentials_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def _access_token(self) -> str:
        """A valid access token, refreshed when missing or expired (blocking: run it in a thread)."""
        import google.auth.transport.requests
        from google.oauth2 import service_account

        with self._credentials_lock:
            if self._credentials is None:
                self._credentials = service_account.Credentials.from_service_account_file(
                    self.credentials_file, scopes=[FCM_SCOPE]
                )
            if not self._credentials.valid:
                request = google.auth.transport.requests.Request()
                try:
                    # google-auth's own timeout is two minutes; keep a refresh within ours.
                    self._credentials.refresh(partial(request, timeout=self.timeout_seconds))
                finally:
                    request.session.close()
            return self._credentials.token

    def _forget_token(self) -> None:
        with self._credentials_lock:
            self._credentials = None

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        import google.auth.exceptions

        if not items:
            return []
        try:
            token = await anyio.to_thread.run_sync(self._access_token)
        except (OSError, ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            # A missing or unreadable credentials file, or a refused token request: fixable.
            failed = DeliveryFailed(f"FCM credentials: {type(exc).__name__}: {clip(str(exc))}")
            log.warning("push: no FCM access token (%s); %d deliveries deferred", failed.reason, len(items))
            return [failed for _ in items]
        url = f"{self.base_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"}

        async with http_client(self.timeout_seconds, self.concurrency) as client:

            async def send_one(item: Outgoing) -> Outcome:
                message = {
                    "token": item.to,
                    "notification": {"title": item.subject, "body": item.text},
                    "data": _fcm_data(item.data),
                }
                body = json.dumps({"message": message}, ensure_ascii=False).encode()
                reply = await post(
                    client, url, content=body, headers=headers, timeout_seconds=self.timeout_seconds
                )
                return self._outcome(reply)

            return await send_each(self.channel, items, self.concurrency, send_one)

    def _outcome(self, reply: Reply) -> Outcome:
        payload = reply.json()
        if 200 <= reply.status < 300:
            return Delivered(provider_id=str(payload.get("name", "")))
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        details = error.get("details") if isinstance(error.get("details"), list) else []
        codes = {d.get("errorCode") for d in details if isinstance(d, dict) and d.get("errorCode")}
        status_text = error.get("status") or ""
        reason = f"FCM {reply.status} {'/'.join(sorted(codes)) or status_text}: {clip(str(error.get('message') or reply.text()))}"
        metadata = {"http_status": reply.status, "fcm_error": sorted(codes) or status_text}
        if reply.status == 404 or "UNREGISTERED" in codes:
            return DeliveryFailed(reason, bounced=True, metadata=metadata)
        if reply.status in (429, 503):
            return DeliveryFailed(reason, retry_after=reply.retry_after, metadata=metadata)
        if reply.status >= 500:
            return DeliveryFailed(reason, metadata=metadata)
        if "SENDER_ID_MISMATCH" in codes:  # the token belongs to another Firebase project
            return DeliveryFailed(reason, permanent=True, metadata=metadata)
        if reply.status in (401, 403):  # our token or service account: fixable, so retry later
            if reply.status == 401:
                self._forget_token()
            return DeliveryFailed(reason, metadata=metadata)
        return DeliveryFailed(reason, permanent=True, metadata=metadata)  # 400 INVALID_ARGUMENT and others
