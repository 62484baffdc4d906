"""Stripe webhook events, read: the signature checked on the raw body, the payload turned
into the payment outcomes it reports. Pure (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import stripe

from orderhub.kit.errors import BadRequest
from orderhub.kit.jsonbody import loads_bounded
from orderhub.payments.outcomes import (
    IntentOutcome,
    PaymentOutcome,
    PaymentResult,
    RefundOutcome,
    refund_status,
)
from orderhub.payments.provider import REFUND_ID_METADATA

SIGNATURE_TOLERANCE_SECONDS = 300

INTENT_RESULTS = {
    "payment_intent.succeeded": PaymentResult.SUCCEEDED,
    "payment_intent.payment_failed": PaymentResult.FAILED,
    "payment_intent.canceled": PaymentResult.CANCELED,
    "payment_intent.processing": PaymentResult.IN_PROGRESS,
}
REFUND_EVENTS = ("charge.refunded", "charge.refund.updated")


class WebhookRejected(BadRequest):
    code = "webhook_rejected"


def verify(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The Stripe SDK's verification on the raw body (several `v1` values allowed)."""
    if not secret:
        raise WebhookRejected("Webhook endpoint is not configured (no signing secret)")
    if not signature:
        raise WebhookRejected("Missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
        )
        event = loads_bounded(text)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise WebhookRejected("Invalid Stripe signature") from None
    except ValueError:
        raise WebhookRejected("Malformed event payload") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise WebhookRejected("Malformed event payload")
    return event


MAX_TIMESTAMP = 2**40  # far beyond any real Unix time; keeps datetime conversion safe


def text_field(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _count(obj: dict[str, Any], key: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_TIMESTAMP:
        raise ValueError(f"{key} must be a non-negative integer")
    return value


def _refund_outcome(refund: dict[str, Any], intent_id: str | None) -> RefundOutcome | None:
    if not isinstance(refund, dict):
        raise ValueError("refund must be an object")
    intent = refund.get("payment_intent") or intent_id
    if not isinstance(intent, str):
        return None
    metadata = refund.get("metadata")
    local_id = metadata.get(REFUND_ID_METADATA) if isinstance(metadata, dict) else None
    reason = refund.get("reason")
    status = refund.get("status")
    return RefundOutcome(
        intent_id=intent,
        provider_refund_id=text_field(refund, "id"),
        local_id=local_id if isinstance(local_id, str) else None,
        amount=_count(refund, "amount"),
        currency=text_field(refund, "currency"),
        status=refund_status(status if isinstance(status, str) else ""),
        reason=reason if isinstance(reason, str) else None,
        created=datetime.fromtimestamp(_count(refund, "created", 0), tz=UTC),
    )


def outcomes_of(event: dict[str, Any]) -> list[PaymentOutcome] | None:
    """The payment outcomes an event reports ([] for types orderhub does not handle). None
    for a `charge.refunded` that does not embed its refunds (current API versions): the
    caller asks the provider for them."""
    kind, obj = event["type"], event["data"]["object"]
    if kind in INTENT_RESULTS:
        return [
            IntentOutcome(
                text_field(obj, "id"),
                INTENT_RESULTS[kind],
                _count(obj, "amount"),
                text_field(obj, "currency"),
            )
        ]
    if kind == "charge.refund.updated":
        outcome = _refund_outcome(obj, None)
        return [outcome] if outcome else []
    if kind == "charge.refunded":
        intent_id = obj.get("payment_intent")
        embedded = obj.get("refunds")
        if not isinstance(embedded, dict) or not isinstance(embedded.get("data"), list):
            return None
        if embedded.get("has_more"):
            return None  # only part of them: ask for all
        outcomes: list[PaymentOutcome] = []
        for refund in embedded["data"]:
            if isinstance(refund, dict):
                refund = {"currency": obj.get("currency"), **refund}
            outcome = _refund_outcome(refund, intent_id if isinstance(intent_id, str) else None)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes
    return []
