"""Orders API (seed + SPEC §6, §7): thin handlers over OrderService."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from orderhub.http.dependencies import CallerDep, IdempotentDep, OrderServiceDep
from orderhub.http.pages import page_response
from orderhub.kit.envelope import (
    Envelope,
    MessageEnvelope,
    error_responses,
    ok,
)
from orderhub.kit.jsonbody import parse_json_object
from orderhub.kit.openapi import json_body
from orderhub.kit.validation import read_model, validate_model
from orderhub.kit.wire import IdFilter, PageKey, PageLimit
from orderhub.orders.domain import OrderStatus
from orderhub.orders.schemas import (
    OrderCreatedOut,
    OrderCreateIn,
    OrderListOut,
    OrderOut,
    OrderUpdateIn,
    OrderWithHistoryOut,
    order_out,
    order_summary_out,
    order_with_history_out,
)

router = APIRouter(prefix="/api/orders", tags=["orders"])


class OrderCancelledOut(MessageEnvelope):
    data: OrderOut


@router.post(
    "",
    status_code=201,
    summary="Create an order and its payment intent",
    response_model=Envelope[OrderCreatedOut],
    responses=error_responses(400, 401, 409, 413, 422, 429, 502),
    openapi_extra=json_body(OrderCreateIn),
)
async def create_order(orders: OrderServiceDep, idempotent: IdempotentDep) -> Response:
    raw, body = await read_model(idempotent.request, OrderCreateIn)

    async def handler(order_id: uuid.UUID) -> Response:
        created = await orders.create(body, order_id)
        data = OrderCreatedOut(order=order_out(created.order), clientSecret=created.client_secret)
        return ok(
            data.model_dump(mode="json"), message="Order created successfully", status_code=201
        )

    return await idempotent.run(handler, raw)


@router.get(
    "",
    summary="List orders, newest first",
    response_model=OrderListOut,
    responses=error_responses(400, 401, 429),
)
async def list_orders(
    _caller: CallerDep,
    orders: OrderServiceDep,
    limit: PageLimit = 20,
    lastKey: PageKey = None,
    status: OrderStatus | None = None,
    customerId: IdFilter = None,
) -> Response:
    page = await orders.list(limit=limit, last_key=lastKey, status=status, customer_id=customerId)
    return page_response(OrderListOut, [order_summary_out(o) for o in page.orders], page)


@router.get(
    "/{order_id}",
    summary="Get an order with its history",
    response_model=Envelope[OrderWithHistoryOut],
    responses=error_responses(401, 404, 429),
)
async def get_order(order_id: str, _caller: CallerDep, orders: OrderServiceDep) -> Response:
    order, history = await orders.get(order_id)
    return ok(order_with_history_out(order, history).model_dump(mode="json"))


@router.patch(
    "/{order_id}",
    summary="Update status, tracking number, shipping address or metadata",
    response_model=Envelope[OrderOut],
    responses=error_responses(400, 401, 404, 409, 413, 429),
    openapi_extra=json_body(OrderUpdateIn),
)
async def update_order(
    request: Request, order_id: str, _caller: CallerDep, orders: OrderServiceDep
) -> Response:
    body = validate_model(OrderUpdateIn, parse_json_object(await request.body()))
    order = await orders.update(order_id, body)
    return ok(order_out(order).model_dump(mode="json"), message="Order updated successfully")


@router.delete(
    "/{order_id}",
    summary="Cancel an order (cancelling or refunding its payment)",
    response_model=OrderCancelledOut,
    responses=error_responses(400, 401, 404, 409, 422, 429, 502),
)
async def cancel_order(
    order_id: str, orders: OrderServiceDep, idempotent: IdempotentDep
) -> Response:
    async def handler(_resource_id: uuid.UUID) -> Response:
        order = await orders.cancel(order_id)
        return ok(order_out(order).model_dump(mode="json"), message="Order cancelled successfully")

    return await idempotent.run(handler)
