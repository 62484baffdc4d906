"""Payments API (seed + SPEC §8): confirm, refund, read an intent; and Stripe's webhook
(SPEC §9)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from orderhub.http.dependencies import (
    CallerDep,
    IdempotentDep,
    PaymentServiceDep,
    WebhookServiceDep,
)
from orderhub.kit.envelope import Envelope, EnvelopeResponse, error_responses, ok
from orderhub.kit.openapi import json_body
from orderhub.kit.validation import read_model
from orderhub.payments.provider import IntentStatus
from orderhub.payments.schemas import (
    ConfirmIn,
    ConfirmOut,
    PaymentIntentOut,
    RefundIn,
    RefundOut,
    WebhookReceivedOut,
)
from orderhub.payments.units import to_provider

router = APIRouter(prefix="/api/payments", tags=["payments"])


CONFIRM_MESSAGES = {
    IntentStatus.SUCCEEDED: "Payment confirmed successfully",
    IntentStatus.REQUIRES_ACTION: "Payment requires authentication",
    IntentStatus.PROCESSING: "Payment is processing",
    IntentStatus.REQUIRES_PAYMENT_METHOD: "Payment requires a payment method",
    IntentStatus.REQUIRES_CONFIRMATION: "Payment requires confirmation",
    IntentStatus.CANCELED: "Payment was canceled",
}


@router.post(
    "/confirm",
    summary="Confirm a payment (server-side with a payment method, or read its status)",
    response_model=Envelope[ConfirmOut],
    responses=error_responses(400, 401, 402, 404, 409, 413, 422, 429, 502),
    openapi_extra=json_body(ConfirmIn),
)
async def confirm_payment(payments: PaymentServiceDep, idempotent: IdempotentDep) -> Response:
    raw, body = await read_model(idempotent.request, ConfirmIn)

    async def handler(_resource_id: uuid.UUID) -> Response:
        result = await payments.confirm(body.orderId, body.paymentIntentId, body.paymentMethod)
        data = ConfirmOut(status=result.status, nextAction=result.next_action)
        message = CONFIRM_MESSAGES.get(IntentStatus(result.status), "Payment updated")
        return ok(data.model_dump(mode="json", exclude_none=True), message=message)

    return await idempotent.run(handler, raw)


@router.post(
    "/refund",
    summary="Refund an order, in full or in part",
    response_model=Envelope[RefundOut],
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502),
    openapi_extra=json_body(RefundIn),
)
async def refund_payment(payments: PaymentServiceDep, idempotent: IdempotentDep) -> Response:
    raw, body = await read_model(idempotent.request, RefundIn)

    async def handler(refund_id: uuid.UUID) -> Response:
        result = await payments.refund(body.orderId, body.amount, body.reason, refund_id)
        refund = result.refund
        data = RefundOut(
            id=refund.public_id,
            # the seed's minor units are the provider's (e.g. ISK in hundredths)
            amount=to_provider(refund.amount_minor, result.order.currency),
            status=refund.status.value,
            created=int(refund.created_at.timestamp()),
        )
        return ok(data.model_dump(mode="json"), message="Refund processed successfully")

    return await idempotent.run(handler, raw)


@router.get(
    "/{payment_intent_id}",
    summary="Payment intent details, from the provider",
    response_model=Envelope[PaymentIntentOut],
    responses=error_responses(401, 404, 409, 429, 502),
)
async def get_payment(
    payment_intent_id: str, _caller: CallerDep, payments: PaymentServiceDep
) -> Response:
    intent = await payments.get_intent(payment_intent_id)
    data = PaymentIntentOut(
        id=intent.id,
        amount=intent.amount,
        currency=intent.currency,
        status=intent.status.value,
        created=intent.created,
        metadata=intent.metadata,
    )
    return ok(data.model_dump(mode="json"))


webhooks_router = APIRouter(tags=["webhooks"])


@webhooks_router.post(
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
async def stripe_webhook(request: Request, webhooks: WebhookServiceDep) -> Response:
    await webhooks.receive(await request.body(), request.headers.get("stripe-signature"))
    return EnvelopeResponse({"received": True})
