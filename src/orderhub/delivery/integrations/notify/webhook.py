"""The `webhook` notifier: POST the notification JSON, signed per Standard Webhooks.

Headers: `webhook-id` (the event id, so receivers de-duplicate retries),
`webhook-timestamp` (seconds, the time of this attempt) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), made by the `standardwebhooks`
library. The secret is in the Standard Webhooks form `whsec_<base64>` (the prefix is
optional; the library base64-decodes what follows), and is checked at construction.

A 2xx answer means delivered. Anything else goes through `http_error` (408/409/425/429,
401/403 and 5xx transient, honouring `Retry-After`; other 4xx permanent; redirects are not
followed, so a 3xx is permanent). Timeouts and connection errors are transient; a URL
that cannot be requested at all is permanent.

`probe()` makes no request: a webhook receiver has no standard health endpoint, and a
HEAD or an unsigned POST would be noise (or an error) on the receiver's side, so the probe
only checks that the notifier is configured (URL and secret valid).

The `httpx.AsyncClient` is the caller's when given (the caller closes it); otherwise the
notifier opens its own on first use and `aclose()` releases it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    http_error,
    notification_payload,
)
from orderhub.kit.closing import AsyncClosing
from orderhub.kit.failures import reason

USER_AGENT = "orderhub-webhooks/1"
_DETAIL_BYTES = 2048


class WebhookNotifier(AsyncClosing):
    """`Notifier` + `Probe` posting signed notifications to one URL."""

    def __init__(
        self,
        url: str,
        secret: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10,
        *,
        setting: str = "NOTIFY_WEBHOOK",  # the settings' prefix, for error messages
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError(f"{setting}_URL is not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"{setting}_URL must be an http(s) URL")
        try:
            self._signer = Webhook(secret)
        except Exception as exc:  # empty, not base64 (binascii.Error), wrong type
            raise ValueError(
                f"{setting}_SECRET must be a Standard Webhooks secret (whsec_<base64>)"
            ) from exc
        self.url = url
        self.timeout = timeout
        self._client = client
        self._owned: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    # -- public API ---------------------------------------------------------------------

    def signed_headers(self, msg_id: str, body: str, at: datetime | None = None) -> dict[str, str]:
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, moment, body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }

    async def publish(self, message: DeliveryMessage) -> None:
        await self.post(message.event_id, notification_payload(message))

    async def post(self, msg_id: str, payload: Mapping[str, Any]) -> None:
        """POST `payload` as JSON, signed with `msg_id` as its `webhook-id`."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
        headers = self.signed_headers(msg_id, body)
        client = self._http()
        try:
            async with client.stream(
                "POST",
                self.url,
                content=body.encode("utf-8"),
                headers=headers,
                timeout=self.timeout,
                follow_redirects=False,
            ) as response:
                if 200 <= response.status_code < 300:
                    return
                detail = await _head_of(response)
                raise http_error(
                    "the webhook",
                    response.status_code,
                    detail,
                    response.headers.get("retry-after"),
                )
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError("the webhook timed out") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentDeliveryError(f"webhook URL cannot be requested: {exc}") from exc
        except httpx.TransportError as exc:  # connect errors, resets, protocol errors
            raise TransientDeliveryError(f"the webhook is unreachable: {reason(exc)}") from exc

    async def probe(self) -> None:
        """Configured only: no request is made (see the module docstring)."""
        return None

    async def aclose(self) -> None:
        owned, self._owned = self._owned, None
        if owned is not None:
            await owned[1].aclose()

    # -- internals ----------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        if self._owned is None or self._owned[0] is not loop or self._owned[1].is_closed:
            self._owned = (loop, httpx.AsyncClient(follow_redirects=False))
        return self._owned[1]


async def _head_of(response: httpx.Response) -> str:
    chunks = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            chunks += chunk
            if len(chunks) >= _DETAIL_BYTES:
                break
    except httpx.HTTPError:
        pass
    return bytes(chunks[:_DETAIL_BYTES]).decode("utf-8", "replace")
