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
from orderhub.kit.errors import AppError, BadRequest, ServiceUnavailable
from orderhub.monitoring.errors import ErrorRecorder, Service
from orderhub.orders.domain import EventSource
from orderhub.payments.provider import REFUND_ID_METADATA, ProviderError
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


MAX_TIMESTAMP = 2**40  # far beyond any real Unix time; keeps datetime conversion safe


def _text(obj: dict[str, Any], key: str) -> str:
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
        provider_refund_id=_text(refund, "id"),
        local_id=local_id if isinstance(local_id, str) else None,
        amount=_count(refund, "amount"),
        currency=_text(refund, "currency"),
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
                _text(obj, "id"),
                INTENT_RESULTS[kind],
                _count(obj, "amount"),
                _text(obj, "currency"),
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
        (the event stays unfinished, and the 5xx makes Stripe send it again)."""
        event_id, kind = event["id"], event["type"]
        if not await self._store.webhook_events.begin(event_id, kind, self._clock.now()):
            return "duplicate"
        try:
            outcomes = outcomes_of(event)
            if outcomes is None:
                outcomes = await self._refunds_from_provider(event["data"]["object"])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            return await self._reject(event_id, kind, f"malformed {kind} object: {exc}")
        if not outcomes:
            await self._store.webhook_events.finish(event_id, "ignored", None, self._clock.now())
            return "ignored"
        for outcome in outcomes:
            try:
                await self._payments.apply(outcome, EventSource.WEBHOOK)
            except OutcomeRejected as exc:
                return await self._reject(event_id, kind, str(exc))
            except AppError as exc:
                # a conflict that outlasted the retries, a provider that is down: try later
                log.warning("webhook_apply_failed", event_id=event_id, error=exc.message)
                raise ServiceUnavailable(
                    "The event could not be applied now; it will be retried",
                    code="webhook_apply_failed",
                ) from exc
        await self._store.webhook_events.finish(event_id, "applied", None, self._clock.now())
        return "applied"

    async def _refunds_from_provider(self, charge: dict[str, Any]) -> list[PaymentOutcome]:
        intent_id = _text(charge, "payment_intent")
        try:
            return list(await self._payments.provider_refunds(intent_id))
        except ProviderError as exc:
            raise ServiceUnavailable(
                "The refunds of this charge could not be read from the provider",
                code="payment_provider_error",
            ) from exc

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
