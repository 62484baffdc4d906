"""Monitoring API: deliveries (SPEC §10), health, integrations, metrics, errors (§11)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.responses import Response

from orderhub.delivery.model import DeliveryStatus, Integration
from orderhub.http.dependencies import (
    CallerDep,
    DeliveryServiceDep,
    IdempotentDep,
    MonitoringServiceDep,
    ResyncServiceDep,
)
from orderhub.http.pages import page_response
from orderhub.kit.clock import iso_ms
from orderhub.kit.envelope import Envelope, EnvelopeResponse, error_responses, ok
from orderhub.kit.money import json_number
from orderhub.kit.openapi import json_body
from orderhub.kit.wire import IdFilter, PageKey, PageLimit
from orderhub.monitoring.health import HealthReport
from orderhub.monitoring.schemas import (
    CallsOut,
    DeliveryListOut,
    DeliveryOut,
    ErrorItemOut,
    ErrorsOut,
    HealthOut,
    IntegrationOut,
    IntegrationsOut,
    MetricsOut,
    OrderCountsOut,
    QueuedOut,
    ResyncIn,
    RetriedOut,
    RetryDeliveriesIn,
    RevenueOut,
    SeriesOut,
    SeriesPointOut,
    ServiceHealthOut,
    UnhealthyOut,
    delivery_out,
)
from orderhub.monitoring.service import (
    STEPS,
    ErrorsPage,
    IntegrationsReport,
    IntegrationStatus,
    MetricsReport,
    SeriesReport,
)

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])

TimeRangeQuery = Annotated[str, Query(max_length=10, examples=["24h"])]


@router.get(
    "/deliveries",
    summary="Side-effect deliveries, newest first",
    response_model=DeliveryListOut,
    responses=error_responses(400, 401, 429),
)
async def list_deliveries(
    _caller: CallerDep,
    deliveries: DeliveryServiceDep,
    limit: PageLimit = 20,
    lastKey: PageKey = None,
    status: DeliveryStatus | None = None,
    orderId: IdFilter = None,
    integration: Integration | None = None,
) -> Response:
    page = await deliveries.list(
        limit=limit, last_key=lastKey, status=status, order_id=orderId, integration=integration
    )
    return page_response(DeliveryListOut, [delivery_out(d) for d in page.deliveries], page)


@router.post(
    "/deliveries/retry",
    summary="Put every matching dead delivery back in the queue",
    response_model=Envelope[RetriedOut],
    responses=error_responses(400, 401, 409, 413, 422, 429),
    openapi_extra=json_body(RetryDeliveriesIn),
)
async def retry_deliveries(deliveries: DeliveryServiceDep, idempotent: IdempotentDep) -> Response:
    async def work(body: RetryDeliveriesIn) -> Response:
        count = await deliveries.retry_matching(integration=body.integration, since=body.since)
        return ok(RetriedOut(retried=count).model_dump(), message=_queued(count))

    return await idempotent.run_json(RetryDeliveriesIn, work)


@router.post(
    "/deliveries/{delivery_id}/retry",
    summary="Put a dead delivery back in the queue",
    response_model=Envelope[DeliveryOut],
    responses=error_responses(401, 404, 409, 422, 429),
)
async def retry_delivery(
    delivery_id: str, deliveries: DeliveryServiceDep, idempotent: IdempotentDep
) -> Response:
    async def handler(_resource_id: uuid.UUID) -> Response:
        delivery = await deliveries.retry(delivery_id)
        return ok(delivery_out(delivery).model_dump(mode="json"), message="Delivery queued")

    return await idempotent.run(handler)


@router.post(
    "/resync",
    summary="Send the current state of orders to the sheet or the notifications again",
    response_model=Envelope[QueuedOut],
    responses=error_responses(400, 401, 404, 409, 413, 422, 429),
    openapi_extra=json_body(ResyncIn),
)
async def resync(resyncs: ResyncServiceDep, idempotent: IdempotentDep) -> Response:
    async def work(body: ResyncIn) -> Response:
        count = await resyncs.resync(body.integration, since=body.since, order_id=body.orderId)
        return ok(QueuedOut(queued=count).model_dump(), message=_queued(count))

    return await idempotent.run_json(ResyncIn, work)


def _queued(count: int) -> str:
    return f"{count} {'delivery' if count == 1 else 'deliveries'} queued"


# -- services' results -> the wire ----------------------------------------------------


def health_out(report: HealthReport) -> HealthOut:
    services = {
        r.name: (
            ServiceHealthOut(status=r.status)
            if r.latency_ms is None
            else ServiceHealthOut(status=r.status, latency=r.latency_ms)
        )
        for r in report.results
    }
    return HealthOut(timestamp=iso_ms(report.timestamp), status=report.status, services=services)


def integration_out(item: IntegrationStatus) -> IntegrationOut:
    last_checked = iso_ms(item.last_checked) if item.last_checked else None
    if item.services is not None:  # a group: its members' statuses, no uptime of its own
        return IntegrationOut(
            name=item.name, status=item.status, lastChecked=last_checked, services=item.services
        )
    out = IntegrationOut(
        name=item.name, status=item.status, lastChecked=last_checked, uptime=item.uptime
    )
    if item.reconciled:
        reconciled = item.last_reconciled
        out.lastReconciledAt = iso_ms(reconciled) if reconciled else None
    return out


def integrations_out(report: IntegrationsReport) -> IntegrationsOut:
    return IntegrationsOut(
        timestamp=iso_ms(report.timestamp),
        integrations={key: integration_out(i) for key, i in report.integrations.items()},
    )


def _order_counts_out(report: MetricsReport) -> OrderCountsOut:
    return OrderCountsOut(total=report.orders.total, **asdict(report.orders))


def _revenue_out(report: MetricsReport) -> RevenueOut:
    return RevenueOut(
        total=json_number(report.revenue_minor, report.currency),
        currency=report.currency,
        byCurrency={
            currency: json_number(minor, currency)
            for currency, minor in report.revenue_by_currency.items()
        },
    )


def _calls_out(report: MetricsReport) -> dict[str, CallsOut]:
    return {key: CallsOut(calls=c.calls, errors=c.errors) for key, c in report.integrations.items()}


def metrics_out(report: MetricsReport) -> MetricsOut:
    return MetricsOut(
        timeRange={"start": iso_ms(report.start), "end": iso_ms(report.end)},
        orders=_order_counts_out(report),
        revenue=_revenue_out(report),
        integrations=_calls_out(report),
    )


def series_out(report: SeriesReport) -> SeriesOut:
    return SeriesOut(
        timeRange={"start": iso_ms(report.start), "end": iso_ms(report.end)},
        step=report.step,
        points=[
            SeriesPointOut(
                start=iso_ms(p.start),
                end=iso_ms(p.end),
                orders=_order_counts_out(p),
                revenue=_revenue_out(p),
                integrations=_calls_out(p),
            )
            for p in report.points
        ],
    )


def errors_out(page: ErrorsPage) -> ErrorsOut:
    items = [
        ErrorItemOut(
            timestamp=iso_ms(e.at),
            level=e.level,
            message=e.message,
            service=e.service,
            orderId=str(e.order_id) if e.order_id else None,
            error=e.error,
        )
        for e in page.errors
    ]
    return ErrorsOut(errors=items, count=len(items), period=page.period)


def _wire(model: BaseModel) -> dict[str, Any]:
    """The JSON of a response model; fields left unset (an absent latency, a group's
    uptime) are absent, not null."""
    return model.model_dump(mode="json", exclude_unset=True)


@router.get(
    "/health",
    summary="Every configured backend probed now (2 s each, concurrently)",
    response_model=Envelope[HealthOut],
    responses={
        **error_responses(401, 429),
        503: {"model": UnhealthyOut, "description": "The store or the payment provider is down"},
    },
)
async def health(_caller: CallerDep, monitoring: MonitoringServiceDep) -> Response:
    report = await monitoring.health()
    body = _wire(health_out(report))
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
async def integrations(_caller: CallerDep, monitoring: MonitoringServiceDep) -> Response:
    return ok(_wire(integrations_out(await monitoring.integrations())))


@router.get(
    "/metrics",
    summary="Orders, revenue and integration calls over a time range",
    response_model=Envelope[MetricsOut],
    responses=error_responses(400, 401, 429),
)
async def metrics(
    _caller: CallerDep, monitoring: MonitoringServiceDep, timeRange: TimeRangeQuery = "24h"
) -> Response:
    return ok(_wire(metrics_out(await monitoring.metrics(timeRange))))


@router.get(
    "/metrics/series",
    summary="The figures of /metrics step by step over a time range (for charts)",
    description=(
        "`step` is `5m`, `1h` or `1d` (default: `5m` up to 6 hours, `1h` up to 7 days, "
        "else `1d`), at most 500 points. Points are cut at whole steps of UTC time, so the "
        "first and the last may be partial; together they cover the range exactly once and "
        "add up to what `/metrics` reports for it."
    ),
    response_model=Envelope[SeriesOut],
    responses=error_responses(400, 401, 429),
)
async def metrics_series(
    _caller: CallerDep,
    monitoring: MonitoringServiceDep,
    timeRange: TimeRangeQuery = "24h",
    step: Annotated[
        str | None, Query(max_length=10, examples=["1h"], json_schema_extra={"enum": list(STEPS)})
    ] = None,
) -> Response:
    return ok(_wire(series_out(await monitoring.series(timeRange, step))))


@router.get(
    "/errors",
    summary="Recent errors kept for operators, newest first",
    response_model=Envelope[ErrorsOut],
    responses=error_responses(400, 401, 429),
)
async def errors(
    _caller: CallerDep,
    monitoring: MonitoringServiceDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    return ok(_wire(errors_out(await monitoring.errors(limit))))
