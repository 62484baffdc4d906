"""Monitoring API: deliveries (SPEC §10)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from orderhub.auth.dependency import CallerDep, container_of
from orderhub.delivery.model import DeliveryStatus, Integration
from orderhub.idempotency.http import IdempotencyKey, run_idempotent
from orderhub.kit.envelope import Envelope, EnvelopeResponse, error_responses, ok
from orderhub.monitoring.schemas import DeliveryListOut, DeliveryOut, delivery_out
from orderhub.orders.schemas import PaginationOut

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])


@router.get(
    "/deliveries",
    summary="Side-effect deliveries, newest first",
    response_model=DeliveryListOut,
    responses=error_responses(400, 401, 429),
)
async def list_deliveries(
    request: Request,
    _caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    lastKey: Annotated[str | None, Query(max_length=512)] = None,
    status: DeliveryStatus | None = None,
    orderId: Annotated[str | None, Query(max_length=100)] = None,
    integration: Integration | None = None,
) -> Response:
    page = await container_of(request).deliveries.list(
        limit=limit, last_key=lastKey, status=status, order_id=orderId, integration=integration
    )
    body = DeliveryListOut(
        data=[delivery_out(d) for d in page.deliveries],
        pagination=PaginationOut(lastKey=page.last_key, hasMore=page.has_more),
    )
    return EnvelopeResponse(body.model_dump(mode="json"))


@router.post(
    "/deliveries/{delivery_id}/retry",
    summary="Put a dead delivery back in the queue",
    response_model=Envelope[DeliveryOut],
    responses=error_responses(401, 404, 409, 422, 429),
)
async def retry_delivery(
    request: Request,
    delivery_id: str,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    container = container_of(request)

    async def handler(_resource_id: uuid.UUID) -> Response:
        delivery = await container.deliveries.retry(delivery_id)
        return ok(delivery_out(delivery).model_dump(mode="json"), message="Delivery queued")

    return await run_idempotent(request, caller, idempotency_key, handler)
