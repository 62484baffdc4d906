"""Stripe webhook intake (SPEC §9): verify, store by event id, apply, then answer 200."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import stripe
import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from orderhub.auth.dependency import container_of
from orderhub.kit.clock import Clock
from orderhub.kit.envelope import EnvelopeResponse, error_responses
from orderhub.kit.errors import BadRequest
from orderhub.monitoring.errors import ErrorRecorder, Service
from orderhub.orders.domain import EventSource
from orderhub.payments.provider import REFUND_ID_METADATA
from orderhub.payments.schemas import WebhookReceivedOut
from orderhub.payments.service import (
    IntentOutcome,
    OutcomeRejected,
    PaymentOutcome,
    PaymentResult,
    PaymentService,
    RefundOutcome,
    refund_status,
)
from orderhub.store.protocol import Store

log = structlog.get_logger(__name__)

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
        event = json.loads(text)
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


def _refund_outcome(refund: dict[str, Any], intent_id: str | None) -> RefundOutcome | None:
    intent = refund.get("payment_intent") or intent_id
    if not isinstance(intent, str):
        return None
    metadata = refund.get("metadata") or {}
    local_id = metadata.get(REFUND_ID_METADATA) if isinstance(metadata, dict) else None
    return RefundOutcome(
        intent_id=intent,
        provider_refund_id=str(refund["id"]),
        local_id=local_id if isinstance(local_id, str) else None,
        amount=int(refund["amount"]),
        currency=str(refund["currency"]),
        status=refund_status(str(refund.get("status") or "pending")),
        reason=refund.get("reason"),
        created=datetime.fromtimestamp(int(refund.get("created") or 0), tz=UTC),
    )


def outcomes_of(event: dict[str, Any]) -> list[PaymentOutcome]:
    """The payment outcomes an event reports (none for types orderhub does not handle)."""
    kind, obj = event["type"], event["data"]["object"]
    if kind in INTENT_RESULTS:
        return [
            IntentOutcome(
                str(obj["id"]), INTENT_RESULTS[kind], int(obj["amount"]), str(obj["currency"])
            )
        ]
    if kind == "charge.refund.updated":
        outcome = _refund_outcome(obj, None)
        return [outcome] if outcome else []
    if kind == "charge.refunded":
        intent_id = obj.get("payment_intent")
        refunds = (obj.get("refunds") or {}).get("data") or []
        outcomes: list[PaymentOutcome] = []
        for refund in refunds:
            outcome = _refund_outcome({"currency": obj.get("currency"), **refund}, intent_id)
            if outcome is not None:
                outcomes.append(outcome)
        if not refunds and isinstance(intent_id, str) and obj.get("amount_refunded"):
            # API versions that no longer embed the refunds: one refund for the total.
            outcomes.append(
                RefundOutcome(
                    intent_id=intent_id,
                    provider_refund_id=f"{obj['id']}:refunded",
                    local_id=None,
                    amount=int(obj["amount_refunded"]),
                    currency=str(obj["currency"]),
                    status=refund_status("succeeded"),
                    reason=None,
                    created=datetime.fromtimestamp(int(obj.get("created") or 0), tz=UTC),
                )
            )
        return outcomes
    return []


class WebhookService:
    def __init__(
        self, store: Store, payments: PaymentService, clock: Clock, errors: ErrorRecorder
    ) -> None:
        self._store = store
        self._payments = payments
        self._clock = clock
        self._errors = errors

    async def handle(self, event: dict[str, Any]) -> str:
        """Apply a verified event once. Returns its outcome; raises if applying failed
        (the event stays unfinished, so Stripe's retry applies it)."""
        event_id, kind = event["id"], event["type"]
        if not await self._store.webhook_events.begin(event_id, kind, self._clock.now()):
            return "duplicate"
        try:
            outcomes = outcomes_of(event)
        except (KeyError, TypeError, ValueError) as exc:
            return await self._reject(event_id, kind, f"malformed {kind} object: {exc!r}")
        if not outcomes:
            await self._store.webhook_events.finish(event_id, "ignored", None, self._clock.now())
            return "ignored"
        for outcome in outcomes:
            try:
                await self._payments.apply(outcome, EventSource.WEBHOOK)
            except OutcomeRejected as exc:
                return await self._reject(event_id, kind, str(exc))
        await self._store.webhook_events.finish(event_id, "applied", None, self._clock.now())
        return "applied"

    async def _reject(self, event_id: str, kind: str, reason: str) -> str:
        await self._errors.record(
            Service.WEBHOOKS, f"Rejected Stripe event {event_id} ({kind})", error=reason
        )
        await self._store.webhook_events.finish(event_id, "rejected", reason, self._clock.now())
        return "rejected"


router = APIRouter(tags=["webhooks"])


@router.post(
    "/webhooks/stripe",
    summary="Stripe webhook: verified, stored by event id, applied before the 200",
    response_model=WebhookReceivedOut,
    responses=error_responses(400, 413, 500),
    openapi_extra={
        "parameters": [
            {
                "name": "Stripe-Signature",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "t=<unix>,v1=<hmac-sha256> as Stripe sends it",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def stripe_webhook(request: Request) -> Response:
    container = container_of(request)
    event = verify(
        await request.body(),
        request.headers.get("stripe-signature"),
        container.settings.stripe_webhook_secret,
    )
    outcome = await container.webhooks.handle(event)
    log.info("stripe_event", event_id=event["id"], type=event["type"], outcome=outcome)
    return EnvelopeResponse({"received": True})
