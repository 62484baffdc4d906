"""The Stripe provider, with the official SDK's async client.

`STRIPE_API_BASE` is honoured (a local Stripe-protocol server in tests); requests time
out after `STRIPE_TIMEOUT_SECONDS` (10 s), and the SDK retries network failures, 409s and
5xx itself (and 429s Stripe marks retryable), with the same idempotency key, so a retry
can never act twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import stripe

from orderhub.payments.provider import (
    REFUND_ID_METADATA,
    CardDeclined,
    IntentNotFound,
    IntentStatus,
    PaymentIntent,
    ProviderError,
    ProviderRefund,
    ProviderRejected,
)

_STATUSES = {status.value: status for status in IntentStatus}
TIMEOUT_SECONDS = 10.0
NETWORK_RETRIES = 2
T = TypeVar("T")


def _data(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain JSON data."""
    if isinstance(obj, stripe.StripeObject):
        data: dict[str, Any] = obj.to_dict(for_json=True)
        return data
    return dict(obj)


def _intent(source: Any) -> PaymentIntent:
    obj = _data(source)
    status = obj["status"]
    last_error = obj.get("last_payment_error")
    next_action = obj.get("next_action")
    latest_charge = obj.get("latest_charge")
    return PaymentIntent(
        id=obj["id"],
        client_secret=obj.get("client_secret") or "",
        amount=int(obj["amount"]),
        currency=str(obj["currency"]),
        status=_STATUSES.get(status, IntentStatus.PROCESSING),
        created=int(obj["created"]),
        metadata={str(k): str(v) for k, v in (obj.get("metadata") or {}).items()},
        latest_charge=latest_charge if isinstance(latest_charge, str) else None,
        next_action=next_action or None,
        last_payment_error=(last_error.get("message") if last_error else None),
    )


def _refund(source: Any) -> ProviderRefund:
    obj = _data(source)
    metadata = obj.get("metadata") or {}
    intent = obj.get("payment_intent")
    return ProviderRefund(
        id=obj["id"],
        amount=int(obj["amount"]),
        status=str(obj.get("status") or "pending"),
        created=int(obj["created"]),
        currency=str(obj["currency"]),
        payment_intent=intent if isinstance(intent, str) else None,
        reason=obj.get("reason"),
        local_id=metadata.get(REFUND_ID_METADATA),
    )


async def _answer(call: Awaitable[T]) -> T:
    """Stripe's answer to `call`; its errors as the provider's (`_translate`)."""
    try:
        return await call
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


def _translate(exc: stripe.StripeError) -> ProviderError:
    message = exc.user_message or str(exc) or _in_words(exc)
    if isinstance(exc, stripe.CardError):
        error = exc.error
        intent = getattr(error, "payment_intent", None) if error else None
        return CardDeclined(
            message,
            _intent(intent) if intent else None,
            getattr(error, "decline_code", None) if error else None,
        )
    if isinstance(exc, stripe.InvalidRequestError):
        if exc.code == "resource_missing" and getattr(exc, "param", None) in ("intent", "id"):
            return IntentNotFound(message)
        return ProviderRejected(message, code=exc.code)
    if isinstance(exc, stripe.IdempotencyError):
        return ProviderRejected(message, code="idempotency_error")
    # Authentication, permission, rate limits after the SDK's retries, 5xx, network.
    return ProviderError(f"{_in_words(exc)}: {message}")


def _in_words(exc: stripe.StripeError) -> str:
    """What went wrong with Stripe, for operators (the SDK's class names stay in logs)."""
    if isinstance(exc, stripe.APIConnectionError):
        return "Stripe could not be reached"
    if isinstance(exc, stripe.AuthenticationError):
        return "Stripe refused the API key"
    if isinstance(exc, stripe.PermissionError):
        return "Stripe refused the request for this API key"
    if isinstance(exc, stripe.RateLimitError):
        return "Stripe is limiting the request rate"
    status = getattr(exc, "http_status", None)
    return f"Stripe answered HTTP {status}" if status else "Stripe answered with an error"


class StripePaymentProvider:
    name = "stripe"

    def __init__(
        self, secret_key: str, api_base: str = "", timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self._http = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=NETWORK_RETRIES,
            http_client=self._http,
        )

    async def open(self) -> None:
        """At start-up, in a thread: import what the SDK imports on first use (its services
        and the classes of the objects it answers with; the payment intent's alone takes
        a quarter of a second), which would otherwise block the event loop on the first
        request or health probe."""
        await asyncio.to_thread(self._load_lazy_parts)

    def _load_lazy_parts(self) -> None:
        services = self._client.v1
        for service in ("payment_intents", "refunds", "balance"):
            getattr(services, service)
        for name in ("PaymentIntent", "Refund", "Balance", "ListObject"):
            getattr(stripe, name)

    async def aclose(self) -> None:
        """Close the HTTP connection pool (at shutdown)."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_intent(
        self, *, amount: int, currency: str, order_id: str, idempotency_key: str
    ) -> PaymentIntent:
        obj = await _answer(
            self._client.v1.payment_intents.create_async(
                {
                    "amount": amount,
                    "currency": currency,
                    "metadata": {"orderId": order_id},
                    # server-side confirmation needs no redirect-based methods
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                },
                {"idempotency_key": idempotency_key},
            )
        )
        return _intent(obj)

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        return _intent(await _answer(self._client.v1.payment_intents.retrieve_async(intent_id)))

    async def confirm_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        obj = await _answer(
            self._client.v1.payment_intents.confirm_async(
                intent_id,
                {"payment_method": payment_method},
            )
        )
        return _intent(obj)

    async def cancel_intent(self, intent_id: str) -> PaymentIntent:
        try:
            obj = await self._client.v1.payment_intents.cancel_async(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "payment_intent_unexpected_state":
                return await self.retrieve_intent(intent_id)  # succeeded already: as it is
            raise _translate(exc) from exc
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return _intent(obj)

    async def refund(
        self, *, intent_id: str, amount: int, reason: str | None, idempotency_key: str
    ) -> ProviderRefund:
        params: dict[str, Any] = {
            "payment_intent": intent_id,
            "amount": amount,
            "metadata": {REFUND_ID_METADATA: idempotency_key},
        }
        if reason is not None:
            params["reason"] = reason
        obj = await _answer(
            self._client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        )
        return _refund(obj)

    async def list_refunds(self, intent_id: str) -> list[ProviderRefund]:
        refunds: list[ProviderRefund] = []
        params: dict[str, Any] = {"payment_intent": intent_id, "limit": 100}
        try:
            while True:
                page = await self._client.v1.refunds.list_async(params)  # type: ignore[arg-type]
                data = _data(page)
                refunds.extend(_refund(item) for item in data.get("data", []))
                if not data.get("has_more") or not data.get("data"):
                    return refunds
                params["starting_after"] = data["data"][-1]["id"]
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    async def probe(self) -> None:
        await _answer(self._client.v1.balance.retrieve_async(options={"max_network_retries": 0}))
