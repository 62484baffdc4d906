"""The Orders API on the wire: request models (strict, SPEC §6) and response models (§7)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictStr,
)
from pydantic_core import PydanticCustomError

from orderhub.kit.clock import iso_ms
from orderhub.kit.currencies import is_currency
from orderhub.kit.money import json_number
from orderhub.kit.wire import Amount, JsonAmount, PaginationOut, Text100, Timestamp
from orderhub.orders.domain import (
    Address,
    Order,
    OrderEvent,
    OrderStatus,
    PaymentStatus,
)

# -- request types ----------------------------------------------------------------------


def _email(value: str) -> str:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise PydanticCustomError("email", "must be a valid email") from None
    return value


def _currency(value: str) -> str:
    code = value.lower()
    if not is_currency(code):
        raise PydanticCustomError("currency", "must be a valid ISO 4217 currency code")
    return code


Text200 = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Email = Annotated[
    StrictStr, Field(max_length=254, json_schema_extra={"format": "email"}), AfterValidator(_email)
]
Currency = Annotated[StrictStr, AfterValidator(_currency), Field(examples=["usd"])]
Metadata = Annotated[
    dict[
        Annotated[StrictStr, Field(min_length=1, max_length=40)],
        Annotated[StrictStr, Field(max_length=500)],
    ],
    Field(max_length=50),
]

_STRICT_INPUT = ConfigDict(extra="forbid")


class AddressIn(BaseModel):
    model_config = _STRICT_INPUT

    street: Text200
    city: Text200
    state: Annotated[StrictStr, Field(max_length=200)]
    zipCode: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    country: Text200

    def to_domain(self) -> Address:
        return Address(self.street, self.city, self.state, self.zipCode, self.country)


class ItemIn(BaseModel):
    model_config = _STRICT_INPUT

    id: Text100
    name: Text200
    quantity: Annotated[int, Strict(), Field(ge=1, le=1_000_000)]
    price: Amount


class OrderCreateIn(BaseModel):
    """POST /api/orders (SPEC §6)."""

    model_config = _STRICT_INPUT

    customerId: Text100
    customerEmail: Email
    customerName: Text200
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=100)]
    totalAmount: Amount
    currency: Currency
    shippingAddress: AddressIn
    billingAddress: AddressIn | None = None
    shippingAmount: Amount = Field(default=Decimal(0), json_schema_extra={"default": 0})
    taxAmount: Amount = Field(default=Decimal(0), json_schema_extra={"default": 0})
    discountAmount: Amount = Field(default=Decimal(0), json_schema_extra={"default": 0})
    metadata: Metadata | None = None


class OrderUpdateIn(BaseModel):
    """PATCH /api/orders/:id (SPEC §7): at least one field."""

    model_config = _STRICT_INPUT

    status: OrderStatus | None = None
    trackingNumber: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None
    shippingAddress: AddressIn | None = None
    metadata: Metadata | None = Field(
        default=None,
        description=(
            "Merged into the order's metadata: each key is set, a key set to an empty "
            "string is removed, and null removes every key. At most 50 keys after merging."
        ),
    )


# -- response types ---------------------------------------------------------------------


class AddressOut(BaseModel):
    street: str
    city: str
    state: str
    zipCode: str
    country: str


class ItemOut(BaseModel):
    id: str
    name: str
    quantity: int
    price: JsonAmount


class OrderRefundOut(BaseModel):
    """A refund as an order lists it (amount in major units)."""

    id: str
    amount: JsonAmount
    reason: str | None
    status: str
    createdAt: Timestamp


class HistoryEntryOut(BaseModel):
    type: str = Field(examples=["order.created"])
    at: Timestamp
    status: OrderStatus
    paymentStatus: PaymentStatus
    source: Literal["api", "webhook", "provider", "system", "console"]


class OrderOut(BaseModel):
    id: str = Field(examples=["0192f0c4-5b7e-7cc3-9a40-4f1d2e3c4b5a"])
    customerId: str
    customerEmail: str
    customerName: str
    items: list[ItemOut]
    totalAmount: JsonAmount
    shippingAmount: JsonAmount
    taxAmount: JsonAmount
    discountAmount: JsonAmount
    currency: str
    shippingAddress: AddressOut
    billingAddress: AddressOut | None
    metadata: dict[str, str] | None
    status: OrderStatus
    paymentStatus: PaymentStatus
    paymentIntentId: str | None
    trackingNumber: str | None
    refunds: list[OrderRefundOut]
    refundedAmount: JsonAmount
    paidAt: Timestamp | None
    cancelledAt: Timestamp | None
    createdAt: Timestamp
    updatedAt: Timestamp


class OrderWithHistoryOut(OrderOut):
    history: list[HistoryEntryOut]


class OrderCreatedOut(BaseModel):
    order: OrderOut
    clientSecret: str | None = Field(examples=["pi_3Mtw_secret_yyy"])


class OrderSummaryOut(BaseModel):
    id: str
    customerId: str
    customerName: str
    customerEmail: str
    totalAmount: JsonAmount
    currency: str
    status: OrderStatus
    paymentStatus: PaymentStatus
    createdAt: Timestamp
    updatedAt: Timestamp


class OrderListOut(BaseModel):
    success: bool = True
    data: list[OrderSummaryOut]
    pagination: PaginationOut


# -- presenters -------------------------------------------------------------------------


def _address_out(address: Address | None) -> AddressOut | None:
    if address is None:
        return None
    return AddressOut(
        street=address.street,
        city=address.city,
        state=address.state,
        zipCode=address.zip_code,
        country=address.country,
    )


def _order_fields(order: Order) -> dict[str, Any]:
    currency = order.currency
    shipping = _address_out(order.shipping_address)
    assert shipping is not None
    return {
        "id": str(order.id),
        "customerId": order.customer_id,
        "customerEmail": order.customer_email,
        "customerName": order.customer_name,
        "items": [
            ItemOut(
                id=i.id,
                name=i.name,
                quantity=i.quantity,
                price=json_number(i.price_minor, currency),
            )
            for i in order.amounts.items
        ],
        "totalAmount": json_number(order.total_minor, currency),
        "shippingAmount": json_number(order.amounts.shipping_minor, currency),
        "taxAmount": json_number(order.amounts.tax_minor, currency),
        "discountAmount": json_number(order.amounts.discount_minor, currency),
        "currency": currency,
        "shippingAddress": shipping,
        "billingAddress": _address_out(order.billing_address),
        "metadata": order.metadata,
        "status": order.status,
        "paymentStatus": order.payment_status,
        "paymentIntentId": order.payment_intent_id,
        "trackingNumber": order.tracking_number,
        "refunds": [
            OrderRefundOut(
                id=r.public_id,
                amount=json_number(r.amount_minor, currency),
                reason=r.reason,
                status=r.status.value,
                createdAt=iso_ms(r.created_at),
            )
            for r in order.refunds
        ],
        "refundedAmount": json_number(order.refunded_minor, currency),
        "paidAt": iso_ms(order.paid_at) if order.paid_at else None,
        "cancelledAt": iso_ms(order.cancelled_at) if order.cancelled_at else None,
        "createdAt": iso_ms(order.created_at),
        "updatedAt": iso_ms(order.updated_at),
    }


def order_out(order: Order) -> OrderOut:
    return OrderOut(**_order_fields(order))


def order_with_history_out(order: Order, history: list[OrderEvent]) -> OrderWithHistoryOut:
    return OrderWithHistoryOut(
        **_order_fields(order),
        history=[
            HistoryEntryOut(
                type=e.type.value,
                at=iso_ms(e.at),
                status=e.status,
                paymentStatus=e.payment_status,
                source=e.source.value,
            )
            for e in history
            if not e.type.internal  # the sheet's own bookkeeping, not the audit trail
        ],
    )


def order_summary_out(order: Order) -> OrderSummaryOut:
    return OrderSummaryOut(
        id=str(order.id),
        customerId=order.customer_id,
        customerName=order.customer_name,
        customerEmail=order.customer_email,
        totalAmount=json_number(order.total_minor, order.currency),
        currency=order.currency,
        status=order.status,
        paymentStatus=order.payment_status,
        createdAt=iso_ms(order.created_at),
        updatedAt=iso_ms(order.updated_at),
    )
