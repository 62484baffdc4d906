"""Order <-> JSON document, shared by every backend (a SQL row's `document`, a DynamoDB item),
and the slim document an event keeps of the order as of the event."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.orders.domain import (
    Address,
    Amounts,
    LineItem,
    Order,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundStatus,
)

DOCUMENT_SCHEMA = 1


def _address(address: Address | None) -> dict[str, str] | None:
    if address is None:
        return None
    return {
        "street": address.street,
        "city": address.city,
        "state": address.state,
        "zipCode": address.zip_code,
        "country": address.country,
    }


def _address_from(doc: dict[str, str] | None) -> Address | None:
    if doc is None:
        return None
    return Address(doc["street"], doc["city"], doc["state"], doc["zipCode"], doc["country"])


def _refund(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "amountMinor": refund.amount_minor,
        "reason": refund.reason,
        "status": refund.status.value,
        "createdAt": epoch_ms(refund.created_at),
        "providerId": refund.provider_id,
    }


def order_to_document(order: Order, *, refunds: bool = True) -> dict[str, Any]:
    """The order's document; without `refunds`, all of it but the refunds list."""
    document = {
        "schema": DOCUMENT_SCHEMA,
        "id": str(order.id),
        "customerId": order.customer_id,
        "customerEmail": order.customer_email,
        "customerName": order.customer_name,
        "currency": order.currency,
        "items": [
            {"id": i.id, "name": i.name, "quantity": i.quantity, "priceMinor": i.price_minor}
            for i in order.amounts.items
        ],
        "shippingMinor": order.amounts.shipping_minor,
        "taxMinor": order.amounts.tax_minor,
        "discountMinor": order.amounts.discount_minor,
        "totalMinor": order.total_minor,
        "shippingAddress": _address(order.shipping_address),
        "billingAddress": _address(order.billing_address),
        "metadata": order.metadata,
        "status": order.status.value,
        "paymentStatus": order.payment_status.value,
        "paymentProvider": order.payment_provider,
        "paymentIntentId": order.payment_intent_id,
        "trackingNumber": order.tracking_number,
        "paidAt": epoch_ms(order.paid_at) if order.paid_at else None,
        "cancelledAt": epoch_ms(order.cancelled_at) if order.cancelled_at else None,
        "createdAt": epoch_ms(order.created_at),
        "updatedAt": epoch_ms(order.updated_at),
        "statusBeforeRefund": order.status_before_refund.value
        if order.status_before_refund
        else None,
    }
    if refunds:
        document["refunds"] = [_refund(r) for r in order.refunds]
    return document


def order_from_document(doc: dict[str, Any], version: int) -> Order:
    currency = doc["currency"]
    address = _address_from(doc["shippingAddress"])
    assert address is not None
    return Order(
        id=uuid.UUID(doc["id"]),
        customer_id=doc["customerId"],
        customer_email=doc["customerEmail"],
        customer_name=doc["customerName"],
        amounts=Amounts(
            currency=currency,
            items=tuple(
                LineItem(i["id"], i["name"], i["quantity"], i["priceMinor"]) for i in doc["items"]
            ),
            shipping_minor=doc["shippingMinor"],
            tax_minor=doc["taxMinor"],
            discount_minor=doc["discountMinor"],
        ),
        total_minor=doc["totalMinor"],
        shipping_address=address,
        billing_address=_address_from(doc["billingAddress"]),
        metadata=doc["metadata"],
        status=OrderStatus(doc["status"]),
        payment_status=PaymentStatus(doc["paymentStatus"]),
        payment_provider=doc["paymentProvider"],
        payment_intent_id=doc["paymentIntentId"],
        tracking_number=doc["trackingNumber"],
        refunds=[
            Refund(
                id=r["id"],
                amount_minor=r["amountMinor"],
                reason=r["reason"],
                status=RefundStatus(r["status"]),
                created_at=from_epoch_ms(r["createdAt"]),
                provider_id=r.get("providerId"),
            )
            for r in doc["refunds"]
        ],
        paid_at=from_epoch_ms(doc["paidAt"]) if doc["paidAt"] is not None else None,
        cancelled_at=from_epoch_ms(doc["cancelledAt"]) if doc["cancelledAt"] is not None else None,
        created_at=from_epoch_ms(doc["createdAt"]),
        updated_at=from_epoch_ms(doc["updatedAt"]),
        version=version,
        status_before_refund=OrderStatus(doc["statusBeforeRefund"])
        if doc.get("statusBeforeRefund")
        else None,
    )


# -- the order as of an event -------------------------------------------------------------
#
# An event keeps the order as of the event (what its deliveries send), but not the order's
# refunds: copying them into every event made an order's events grow with the square of
# its refunds. In their place it keeps `refundsBefore`: how many refunds the order had
# before this change and, for each one the change moved, its state before. The refunds as
# of an event are then the current order's, with the changes made after the event undone,
# newest first. Events written before (with a `refunds` list) are read as they are.

REFUNDS_BEFORE = "refundsBefore"


def event_document(order: Order, refunds_before: Sequence[Refund]) -> dict[str, Any]:
    """What an event of the change from `refunds_before` to `order` keeps of the order:
    its size does not grow with the order's refunds or events."""
    document = order_to_document(order, refunds=False)
    after = order.refunds
    document[REFUNDS_BEFORE] = {
        "count": len(refunds_before),
        "changed": [
            [index, _refund(refund)]
            for index, refund in enumerate(refunds_before)
            if index >= len(after) or after[index] != refund
        ],
    }
    return document


def is_slim(event_doc: dict[str, Any] | None) -> bool:
    """True when the event's refunds are to be rebuilt from the current order (not for an
    event stored whole, nor for one stored with no order at all)."""
    return event_doc is not None and "refunds" not in event_doc


def order_as_of_event(
    event_doc: dict[str, Any],
    version: int,
    current: tuple[dict[str, Any], int] | None = None,
    later: Iterable[tuple[int, dict[str, Any]]] = (),
) -> Order:
    """The order as of an event at `version`, from the event's document and, for a slim
    one, the current order (document, version) and the documents of the order's events
    after `version` up to the current one (any order, repeats allowed)."""
    if not is_slim(event_doc):
        return order_from_document(event_doc, version)
    # an order is never deleted; were it missing, the event still goes out, without refunds
    current_doc, current_version = current or ({"refunds": []}, version)
    refunds: list[dict[str, Any]] = list(current_doc["refunds"])
    undo = {v: doc for v, doc in later if version < v <= current_version and is_slim(doc)}
    for v in sorted(undo, reverse=True):
        before = undo[v][REFUNDS_BEFORE]
        # refunds this change added go; those it moved (or removed) are put back
        refunds = refunds[: before["count"]]
        refunds.extend({} for _ in range(before["count"] - len(refunds)))
        for index, refund in before["changed"]:
            refunds[index] = refund
    return order_from_document({**event_doc, "refunds": refunds}, version)
