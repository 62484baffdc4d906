"""Payments API (seed + SPEC §8): confirm, refund, read an intent."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from orderhub.auth.dependency import CallerDep, container_of
from orderhub.idempotency.http import IdempotencyKey, run_idempotent
from orderhub.kit.envelope import Envelope, error_responses, ok
from orderhub.kit.jsonbody import parse_json_object
from orderhub.kit.openapi import json_body
from orderhub.kit.validation import validate_model
from orderhub.payments.provider import IntentStatus
from orderhub.payments.schemas import (
    ConfirmIn,
    ConfirmOut,
    PaymentIntentOut,
    RefundIn,
    RefundOut,
)

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
async def confirm_payment(
    request: Request, caller: CallerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    raw = await request.body()
    body = validate_model(ConfirmIn, parse_json_object(raw))
    container = container_of(request)

    async def handler(_resource_id: uuid.UUID) -> Response:
        result = await container.payment_service.confirm(
            body.orderId, body.paymentIntentId, body.paymentMethod
        )
        data = ConfirmOut(status=result.status, nextAction=result.next_action)
        message = CONFIRM_MESSAGES.get(IntentStatus(result.status), "Payment updated")
        return ok(data.model_dump(mode="json", exclude_none=True), message=message)

    return await run_idempotent(request, caller, idempotency_key, handler, raw)


@router.post(
    "/refund",
    summary="Refund an order, in full or in part",
    response_model=Envelope[RefundOut],
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502),
    openapi_extra=json_body(RefundIn),
)
async def refund_payment(
    request: Request, caller: CallerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    raw = await request.body()
    body = validate_model(RefundIn, parse_json_object(raw))
    container = container_of(request)

    async def handler(refund_id: uuid.UUID) -> Response:
        result = await container.payment_service.refund(
            body.orderId, body.amount, body.reason, refund_id
        )
        refund = result.refund
        data = RefundOut(
            id=refund.public_id,
            amount=refund.amount_minor,
            status=refund.status.value,
            created=int(refund.created_at.timestamp()),
        )
        return ok(data.model_dump(mode="json"), message="Refund processed successfully")

    return await run_idempotent(request, caller, idempotency_key, handler, raw)


@router.get(
    "/{payment_intent_id}",
    summary="Payment intent details, from the provider",
    response_model=Envelope[PaymentIntentOut],
    responses=error_responses(401, 404, 429, 502),
)
async def get_payment(request: Request, payment_intent_id: str, _caller: CallerDep) -> Response:
    intent = await container_of(request).payment_service.get_intent(payment_intent_id)
    data = PaymentIntentOut(
        id=intent.id,
        amount=intent.amount,
        currency=intent.currency,
        status=intent.status.value,
        created=intent.created,
        metadata=intent.metadata,
    )
    return ok(data.model_dump(mode="json"))
