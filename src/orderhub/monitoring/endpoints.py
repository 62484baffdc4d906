"""Monitoring API: deliveries (SPEC §10)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from orderhub.auth.dependency import CallerDep, container_of
from orderhub.delivery.model import DeliveryStatus, Integration
from orderhub.idempotency.http import IdempotencyKey, run_idempotent
from orderhub.kit.clock import iso_ms
from orderhub.kit.envelope import Envelope, EnvelopeResponse, error_responses, ok
from orderhub.monitoring.health import HealthReport
from orderhub.monitoring.schemas import (
    DeliveryListOut,
    DeliveryOut,
    ErrorsOut,
    HealthOut,
    IntegrationsOut,
    MetricsOut,
    UnhealthyOut,
    delivery_out,
)
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


def health_body(report: HealthReport) -> dict[str, object]:
    services: dict[str, dict[str, object]] = {}
    for result in report.results:
        item: dict[str, object] = {"status": result.status}
        if result.latency_ms is not None:
            item["latency"] = result.latency_ms
        services[result.name] = item
    return {"timestamp": iso_ms(report.timestamp), "status": report.status, "services": services}


@router.get(
    "/health",
    summary="Every configured backend probed now (2 s each, concurrently)",
    response_model=Envelope[HealthOut],
    responses={
        **error_responses(401, 429),
        503: {"model": UnhealthyOut, "description": "The store or the payment provider is down"},
    },
)
async def health(request: Request, _caller: CallerDep) -> Response:
    report = await container_of(request).monitoring.health()
    body = health_body(report)
    if report.status == "unhealthy":
        return EnvelopeResponse(
            {"success": False, "data": body, "error": {"message": "Service unhealthy"}},
            status_code=503,
        )
    return ok(body)


@router.get(
    "/integrations",
    summary="Each integration's status and uptime, from recorded probes and deliveries",
    response_model=Envelope[IntegrationsOut],
    responses=error_responses(401, 429),
)
async def integrations(request: Request, _caller: CallerDep) -> Response:
    return ok(await container_of(request).monitoring.integrations())


@router.get(
    "/metrics",
    summary="Orders, revenue and integration calls over a time range",
    response_model=Envelope[MetricsOut],
    responses=error_responses(400, 401, 429),
)
async def metrics(
    request: Request,
    _caller: CallerDep,
    timeRange: Annotated[str, Query(max_length=10, examples=["24h"])] = "24h",
) -> Response:
    return ok(await container_of(request).monitoring.metrics(timeRange))


@router.get(
    "/errors",
    summary="Recent errors kept for operators, newest first",
    response_model=Envelope[ErrorsOut],
    responses=error_responses(400, 401, 429),
)
async def errors(
    request: Request, _caller: CallerDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Response:
    page = await container_of(request).monitoring.errors(limit)
    items = [
        {
            "timestamp": iso_ms(e.at),
            "level": e.level,
            "message": e.message,
            "service": e.service,
            "orderId": str(e.order_id) if e.order_id else None,
            "error": e.error,
        }
        for e in page.errors
    ]
    return ok({"errors": items, "count": len(items), "period": page.period})
