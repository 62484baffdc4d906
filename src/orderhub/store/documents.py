"""Order <-> JSON document, shared by every backend (a SQL row's `document`, a DynamoDB item)."""

from __future__ import annotations

import uuid
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


def order_to_document(order: Order) -> dict[str, Any]:
    return {
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
        "refunds": [
            {
                "id": r.id,
                "amountMinor": r.amount_minor,
                "reason": r.reason,
                "status": r.status.value,
                "createdAt": epoch_ms(r.created_at),
                "providerId": r.provider_id,
            }
            for r in order.refunds
        ],
        "paidAt": epoch_ms(order.paid_at) if order.paid_at else None,
        "cancelledAt": epoch_ms(order.cancelled_at) if order.cancelled_at else None,
        "createdAt": epoch_ms(order.created_at),
        "updatedAt": epoch_ms(order.updated_at),
        "statusBeforeRefund": order.status_before_refund.value
        if order.status_before_refund
        else None,
    }


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
