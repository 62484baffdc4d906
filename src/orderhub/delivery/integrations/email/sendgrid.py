"""`EMAIL_BACKEND=sendgrid`: the SendGrid v3 Mail Send API (`POST /v3/mail/send`).

202 means accepted (delivered, for the outbox). Other answers are classified by
`http_error` (401/403/408/409/425/429 and 5xx transient, honouring `Retry-After`; other
4xx permanent); timeouts and connection errors are transient.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

import httpx

from orderhub.delivery.integrations.base import (
    EmailMessage,
    TransientDeliveryError,
    http_error,
)
from orderhub.delivery.integrations.email.render import message_id
from orderhub.kit.failures import in_words

DEFAULT_API_BASE = "https://api.sendgrid.com"


def _address(value: str) -> dict[str, str]:
    name, address = parseaddr(value)
    result = {"email": address or value}
    if name:
        result["name"] = name
    return result


def mail_body(message: EmailMessage) -> dict[str, Any]:
    """The v3 JSON body: one personalization to the customer, text then HTML content."""
    return {
        "personalizations": [{"to": [_address(message.to)]}],
        "from": _address(message.sender),
        "subject": message.subject,
        "content": [
            {"type": "text/plain", "value": message.text},
            {"type": "text/html", "value": message.html},
        ],
        "headers": {
            "X-Orderhub-Event-Id": message.event_id,
            "X-Orderhub-Delivery-Id": message.delivery_id,
            "X-Orderhub-Message-Id": message_id(message),
        },
        "custom_args": {"event_id": message.event_id, "delivery_id": message.delivery_id},
    }


class SendGridEmailSender:
    def __init__(
        self,
        api_key: str,
        api_base: str = DEFAULT_API_BASE,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10,
    ) -> None:
        """An empty `api_base` (the unset `SENDGRID_API_BASE`) means SendGrid's own."""
        if not api_key:
            raise ValueError("SENDGRID_API_KEY: required when EMAIL_BACKEND=sendgrid")
        self._api_key = api_key
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self.timeout = timeout
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:  # never shows the key
        return f"SendGridEmailSender({self.api_base})"

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return await self._client.request(
                method,
                f"{self.api_base}{path}",
                json=body,
                headers=self._headers,
                timeout=self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError("SendGrid timed out") from exc
        except httpx.TransportError as exc:
            raise TransientDeliveryError(
                f"SendGrid could not be reached: {exc or in_words(exc)}"
            ) from exc

    async def send(self, message: EmailMessage) -> None:
        response = await self._request("POST", "/v3/mail/send", mail_body(message))
        if response.is_success:  # 202 Accepted (200 in sandbox mode)
            return
        raise http_error(
            "SendGrid", response.status_code, response.text, response.headers.get("retry-after")
        )

    async def probe(self) -> None:
        """An authenticated GET of `/v3/scopes`; raises unless it answers 2xx."""
        response = await self._request("GET", "/v3/scopes")
        if not response.is_success:
            raise http_error(
                "SendGrid", response.status_code, response.text, response.headers.get("retry-after")
            )

    async def aclose(self) -> None:
        """Closes the HTTP client if this sender created it."""
        if self._owns_client:
            await self._client.aclose()
