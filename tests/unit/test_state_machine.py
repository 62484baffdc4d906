"""The order's two state machines and the events they raise (SPEC §7), without I/O."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from orderhub.kit.errors import ValidationFailed
from orderhub.orders.domain import (
    Address,
    Amounts,
    EventSource,
    EventType,
    InvalidTransition,
    LineItem,
    Order,
    OrderChanges,
    OrderDraft,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundStatus,
    check_patch_move,
)

T0 = datetime(2025, 11, 29, 10, 30, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
T2 = T0 + timedelta(minutes=2)
T3 = T0 + timedelta(minutes=3)

S = OrderStatus
P = PaymentStatus
E = EventType

ADDRESS = Address("123 Main St", "New York", "NY", "10001", "USA")
OTHER_ADDRESS = Address("1 Elm St", "Boston", "MA", "02108", "USA")
TOTAL = 10997  # the seed order: 2 x 29.99 + 49.99

# SPEC §7, written out independently of the code: the only fulfilment moves PATCH may make.
SPEC_PATCH_MOVES = {
    (S.PAID, S.PROCESSING),
    (S.PAID, S.SHIPPED),
    (S.PROCESSING, S.SHIPPED),
    (S.SHIPPED, S.DELIVERED),
}
SPEC_CANCELLABLE = {S.PENDING, S.PAID, S.PROCESSING}


def new_order() -> Order:
    amounts = Amounts(
        currency="usd",
        items=(LineItem("item_1", "Product A", 2, 2999), LineItem("item_2", "Product B", 1, 4999)),
    )
    draft = OrderDraft(
        customer_id="cust_abc123",
        customer_email="john.doe@example.com",
        customer_name="John Doe",
        amounts=amounts,
        shipping_address=ADDRESS,
        billing_address=None,
        metadata=None,
    )
    return Order.create(
        uuid.uuid4(), draft, payment_provider="sandbox", payment_intent_id="pi_test", now=T0
    )


def refund(refund_id: str, amount: int, status: RefundStatus = RefundStatus.SUCCEEDED) -> Refund:
    return Refund(refund_id, amount, "requested_by_customer", status, T0)


def order_in(status: OrderStatus) -> Order:
    """An order brought to `status` the way the service does it; events already taken."""
    order = new_order()
    if status == S.CANCELLED:
        order.cancel(T0)
    elif status != S.PENDING:
        order.record_payment_succeeded(T0, EventSource.WEBHOOK)
        if status == S.REFUNDED:
            order.record_refund(refund("re_all", TOTAL), T0, EventSource.PROVIDER)
        path = {
            S.PROCESSING: [S.PROCESSING],
            S.SHIPPED: [S.SHIPPED],
            S.DELIVERED: [S.SHIPPED, S.DELIVERED],
        }.get(status, [])
        for step in path:
            order.apply_changes(OrderChanges(status=step), T0)
    assert order.status == status
    order.take_events()
    return order


def event_types(order: Order) -> list[EventType]:
    return [event.type for event in order.take_events()]


# -- creation -------------------------------------------------------------------------


def test_create_raises_order_created() -> None:
    order = new_order()
    assert order.status == S.PENDING
    assert order.payment_status == P.PENDING
    assert order.total_minor == TOTAL
    assert order.paid_at is None
    assert order.refundable_minor == 0
    [event] = order.take_events()
    assert event.type == E.CREATED
    assert event.order_id == order.id
    assert (event.status, event.payment_status) == (S.PENDING, P.PENDING)
    assert event.at == T0
    assert event.source == EventSource.API
    assert order.take_events() == []


# -- PATCH status moves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    list(itertools.product(OrderStatus, OrderStatus)),
    ids=lambda status: str(status),
)
def test_check_patch_move_every_pair(current: OrderStatus, target: OrderStatus) -> None:
    if target == S.CANCELLED:
        with pytest.raises(InvalidTransition) as caught:
            check_patch_move(current, target)
        assert caught.value.message == "Use DELETE /api/orders/:id to cancel an order"
        assert caught.value.status_code == 409
    elif target == current or (current, target) in SPEC_PATCH_MOVES:
        assert check_patch_move(current, target) is None
    else:
        with pytest.raises(InvalidTransition) as caught:
            check_patch_move(current, target)
        assert caught.value.message == f"Cannot move order from {current.value} to {target.value}"
        assert caught.value.status_code == 409
        assert caught.value.code == "invalid_transition"


def test_patch_move_message_example() -> None:
    with pytest.raises(InvalidTransition, match=r"^Cannot move order from pending to shipped$"):
        check_patch_move(S.PENDING, S.SHIPPED)
    with pytest.raises(InvalidTransition, match=r"^Cannot move order from delivered to paid$"):
        check_patch_move(S.DELIVERED, S.PAID)


@pytest.mark.parametrize(("current", "target"), sorted(SPEC_PATCH_MOVES), ids=str)
def test_every_legal_move_applies_and_raises_its_event(
    current: OrderStatus, target: OrderStatus
) -> None:
    order = order_in(current)
    assert order.apply_changes(OrderChanges(status=target), T1) is True
    assert order.status == target
    assert order.payment_status == P.COMPLETED
    assert order.updated_at == T1
    [event] = order.take_events()
    assert event.type == EventType(f"order.{target.value}")
    assert (event.status, event.payment_status, event.at) == (target, P.COMPLETED, T1)
    assert event.source == EventSource.API


@pytest.mark.parametrize("status", list(OrderStatus), ids=str)
def test_patch_cannot_pay_or_refund(status: OrderStatus) -> None:
    """Only payment events move `status` to paid or refunded."""
    for target in (S.PAID, S.REFUNDED):
        if target == status:
            continue
        order = order_in(status)
        with pytest.raises(InvalidTransition):
            order.apply_changes(OrderChanges(status=target), T1)
        assert order.status == status
        assert order.take_events() == []


# -- PATCH: apply_changes -------------------------------------------------------------


@pytest.mark.parametrize("status", [s for s in OrderStatus if s != S.CANCELLED], ids=str)
def test_same_status_is_no_change(status: OrderStatus) -> None:
    order = order_in(status)
    before = order.updated_at
    assert order.apply_changes(OrderChanges(status=status), T1) is False
    assert order.status == status
    assert order.updated_at == before
    assert order.take_events() == []


def test_empty_changes_are_a_validation_error() -> None:
    order = order_in(S.PAID)
    with pytest.raises(ValidationFailed) as caught:
        order.apply_changes(OrderChanges(), T1)
    assert caught.value.status_code == 400
    assert [p.field for p in caught.value.details] == ["body"]
    assert caught.value.message.startswith("Validation error: body ")
    assert order.take_events() == []


def test_tracking_number_before_paid_is_a_conflict() -> None:
    order = order_in(S.PENDING)
    with pytest.raises(InvalidTransition) as caught:
        order.apply_changes(OrderChanges(tracking_number="1Z999"), T1)
    assert caught.value.status_code == 409
    assert caught.value.message == "Cannot set trackingNumber while the order is pending"
    assert order.tracking_number is None
    assert order.take_events() == []


@pytest.mark.parametrize("status", [S.PAID, S.PROCESSING, S.SHIPPED, S.DELIVERED], ids=str)
def test_tracking_number_from_paid_on(status: OrderStatus) -> None:
    order = order_in(status)
    assert order.apply_changes(OrderChanges(tracking_number="1Z999"), T1) is True
    assert order.tracking_number == "1Z999"
    assert order.status == status
    assert order.updated_at == T1
    # once shipped, the new number is also mailed (the internal order.tracking_updated)
    mailed = [E.TRACKING_UPDATED] if status in (S.SHIPPED, S.DELIVERED) else []
    assert event_types(order) == [E.UPDATED, *mailed]
    # the same tracking number again changes nothing
    assert order.apply_changes(OrderChanges(tracking_number="1Z999"), T2) is False
    assert order.updated_at == T1
    assert order.take_events() == []


def test_same_status_with_new_tracking_number_fixes_it() -> None:
    order = order_in(S.SHIPPED)
    order.apply_changes(OrderChanges(tracking_number="WRONG"), T1)
    order.take_events()
    changed = order.apply_changes(OrderChanges(status=S.SHIPPED, tracking_number="1Z999"), T2)
    assert changed is True
    assert order.status == S.SHIPPED
    assert order.tracking_number == "1Z999"
    assert event_types(order) == [E.UPDATED, E.TRACKING_UPDATED]


@pytest.mark.parametrize("status", [S.PENDING, S.PAID, S.PROCESSING], ids=str)
def test_shipping_address_before_shipped(status: OrderStatus) -> None:
    order = order_in(status)
    assert order.apply_changes(OrderChanges(shipping_address=OTHER_ADDRESS), T1) is True
    assert order.shipping_address == OTHER_ADDRESS
    assert event_types(order) == [E.UPDATED]
    assert order.apply_changes(OrderChanges(shipping_address=OTHER_ADDRESS), T2) is False
    assert order.take_events() == []


@pytest.mark.parametrize("status", [S.SHIPPED, S.DELIVERED], ids=str)
def test_shipping_address_after_shipped_is_refused(status: OrderStatus) -> None:
    order = order_in(status)
    with pytest.raises(InvalidTransition) as caught:
        order.apply_changes(OrderChanges(shipping_address=OTHER_ADDRESS), T1)
    assert caught.value.status_code == 409
    assert caught.value.message == f"Cannot change shippingAddress while the order is {status}"
    assert order.shipping_address == ADDRESS
    assert order.take_events() == []


def test_shipping_address_with_move_to_shipped_is_refused_and_nothing_changes() -> None:
    order = order_in(S.PAID)
    with pytest.raises(InvalidTransition):
        order.apply_changes(
            OrderChanges(status=S.SHIPPED, shipping_address=OTHER_ADDRESS, metadata={"a": "b"}),
            T1,
        )
    assert order.status == S.PAID
    assert order.shipping_address == ADDRESS
    assert order.metadata is None
    assert order.updated_at == T0
    assert order.take_events() == []


@pytest.mark.parametrize("start", [S.PAID, S.PROCESSING], ids=str)
def test_shipped_with_tracking_number_is_one_shipped_event(start: OrderStatus) -> None:
    order = order_in(start)
    changed = order.apply_changes(OrderChanges(status=S.SHIPPED, tracking_number="1Z999"), T1)
    assert changed is True
    assert order.status == S.SHIPPED
    assert order.tracking_number == "1Z999"
    events = order.take_events()
    assert [e.type for e in events] == [E.SHIPPED]
    assert events[0].status == S.SHIPPED


def test_processing_with_tracking_number_is_processing_then_updated() -> None:
    order = order_in(S.PAID)
    order.apply_changes(OrderChanges(status=S.PROCESSING, tracking_number="1Z999"), T1)
    assert order.tracking_number == "1Z999"
    assert event_types(order) == [E.PROCESSING, E.UPDATED]


def test_move_with_metadata_is_move_then_updated() -> None:
    order = order_in(S.PROCESSING)
    order.apply_changes(OrderChanges(status=S.SHIPPED, metadata={"carrier": "ups"}), T1)
    assert order.metadata == {"carrier": "ups"}
    assert event_types(order) == [E.SHIPPED, E.UPDATED]


@pytest.mark.parametrize("status", list(OrderStatus), ids=str)
def test_metadata_change_raises_order_updated(status: OrderStatus) -> None:
    order = order_in(status)
    asked = {"giftWrap": "yes"}
    assert order.apply_changes(OrderChanges(metadata=asked), T1) is True
    asked["giftWrap"] = "no"  # the order keeps its own copy
    assert order.metadata == {"giftWrap": "yes"}
    assert order.status == status
    assert order.updated_at == T1
    events = order.take_events()
    assert [e.type for e in events] == [E.UPDATED]
    assert events[0].status == status
    assert order.apply_changes(OrderChanges(metadata={"giftWrap": "yes"}), T2) is False
    assert order.take_events() == []


def test_invalid_move_with_other_changes_changes_nothing() -> None:
    order = order_in(S.PENDING)
    with pytest.raises(InvalidTransition, match=r"^Cannot move order from pending to shipped$"):
        order.apply_changes(OrderChanges(status=S.SHIPPED, metadata={"a": "b"}), T1)
    assert order.status == S.PENDING
    assert order.metadata is None
    assert order.take_events() == []


def test_patch_to_cancelled_is_refused_with_the_delete_hint() -> None:
    order = order_in(S.PAID)
    with pytest.raises(InvalidTransition, match=r"^Use DELETE /api/orders/:id to cancel an order$"):
        order.apply_changes(OrderChanges(status=S.CANCELLED), T1)
    assert order.status == S.PAID
    assert order.cancelled_at is None


# -- DELETE: cancel -------------------------------------------------------------------


@pytest.mark.parametrize("status", list(OrderStatus), ids=str)
def test_cancel_from_each_status(status: OrderStatus) -> None:
    order = order_in(status)
    payment_before = order.payment_status
    if status in SPEC_CANCELLABLE:
        order.cancel(T1)
        assert order.status == S.CANCELLED
        assert order.cancelled_at == T1
        assert order.updated_at == T1
        # an unpaid payment is cancelled with the order; a paid one is refunded by the caller
        expected_payment = P.CANCELLED if status == S.PENDING else P.COMPLETED
        assert order.payment_status == expected_payment
        events = order.take_events()
        assert [e.type for e in events] == [E.CANCELLED]
        assert (events[0].status, events[0].payment_status) == (S.CANCELLED, expected_payment)
    else:
        with pytest.raises(InvalidTransition) as caught:
            order.cancel(T1)
        assert caught.value.status_code == 409
        assert caught.value.message == f"Cannot cancel an order that is {status}"
        assert order.status == status
        assert order.payment_status == payment_before
        assert order.take_events() == []


def test_cancel_after_failed_payment_cancels_the_payment() -> None:
    order = order_in(S.PENDING)
    order.record_payment_failed(T1, EventSource.WEBHOOK)
    order.take_events()
    order.cancel(T2)
    assert (order.status, order.payment_status) == (S.CANCELLED, P.CANCELLED)
    assert event_types(order) == [E.CANCELLED]


# -- payment outcomes -----------------------------------------------------------------


def test_payment_succeeded_marks_paid_once() -> None:
    order = order_in(S.PENDING)
    assert order.record_payment_succeeded(T1, EventSource.WEBHOOK) is True
    assert (order.status, order.payment_status) == (S.PAID, P.COMPLETED)
    assert order.paid_at == T1
    assert order.refundable_minor == TOTAL
    [event] = order.take_events()
    assert (event.type, event.status, event.payment_status) == (E.PAID, S.PAID, P.COMPLETED)
    assert event.source == EventSource.WEBHOOK
    # a repeated success (webhook redelivery) changes nothing
    assert order.record_payment_succeeded(T2, EventSource.PROVIDER) is False
    assert order.paid_at == T1
    assert order.take_events() == []


def test_payment_failed_then_retried_then_succeeded() -> None:
    order = order_in(S.PENDING)
    assert order.record_payment_failed(T1, EventSource.WEBHOOK) is True
    assert (order.status, order.payment_status) == (S.PENDING, P.FAILED)
    [event] = order.take_events()
    assert (event.type, event.status, event.payment_status) == (
        E.PAYMENT_FAILED,
        S.PENDING,
        P.FAILED,
    )
    assert order.record_payment_failed(T1, EventSource.WEBHOOK) is False  # already failed
    assert order.take_events() == []

    assert order.record_payment_retrying(T2) is True
    assert (order.status, order.payment_status) == (S.PENDING, P.PENDING)
    assert order.take_events() == []  # no event of its own
    assert order.record_payment_retrying(T2) is False  # only from failed

    assert order.record_payment_succeeded(T3, EventSource.WEBHOOK) is True
    assert (order.status, order.payment_status, order.paid_at) == (S.PAID, P.COMPLETED, T3)
    assert event_types(order) == [E.PAID]


def test_failed_payment_can_succeed_without_a_retry_notice() -> None:
    order = order_in(S.PENDING)
    order.record_payment_failed(T1, EventSource.WEBHOOK)
    order.take_events()
    assert order.record_payment_succeeded(T2, EventSource.WEBHOOK) is True
    assert (order.status, order.payment_status) == (S.PAID, P.COMPLETED)
    assert event_types(order) == [E.PAID]


@pytest.mark.parametrize(
    "status", [S.PAID, S.PROCESSING, S.SHIPPED, S.DELIVERED, S.REFUNDED], ids=str
)
def test_late_failure_after_success_changes_nothing(status: OrderStatus) -> None:
    order = order_in(status)
    payment_before = order.payment_status
    assert order.record_payment_failed(T1, EventSource.WEBHOOK) is False
    assert order.status == status
    assert order.payment_status == payment_before
    assert order.paid_at == T0
    assert order.updated_at == T0
    assert order.take_events() == []
    assert order.record_payment_retrying(T1) is False
    assert order.payment_status == payment_before


def test_failure_on_a_cancelled_order_changes_nothing() -> None:
    order = order_in(S.CANCELLED)
    assert order.record_payment_failed(T1, EventSource.WEBHOOK) is False
    assert (order.status, order.payment_status) == (S.CANCELLED, P.CANCELLED)
    assert order.take_events() == []


def test_success_on_a_cancelled_order_keeps_it_cancelled() -> None:
    order = order_in(S.CANCELLED)
    assert order.record_payment_succeeded(T1, EventSource.WEBHOOK) is True
    assert order.status == S.CANCELLED
    assert order.payment_status == P.COMPLETED
    assert order.paid_at == T1
    assert order.refundable_minor == TOTAL  # so it can be refunded automatically
    assert event_types(order) == [E.PAID]
    order.record_refund(refund("re_auto", TOTAL), T2, EventSource.SYSTEM)
    assert (order.status, order.payment_status) == (S.CANCELLED, P.REFUNDED)
    assert event_types(order) == [E.REFUNDED]


# -- refunds --------------------------------------------------------------------------


def test_refund_before_payment_is_refused() -> None:
    order = order_in(S.PENDING)
    with pytest.raises(InvalidTransition) as caught:
        order.record_refund(refund("re_1", 100), T1, EventSource.API)
    assert caught.value.status_code == 409
    assert order.refunds == []
    assert order.take_events() == []


def test_partial_then_full_refund() -> None:
    order = order_in(S.PAID)
    assert order.record_refund(refund("re_1", 5000), T1, EventSource.WEBHOOK) is True
    assert (order.status, order.payment_status) == (S.PAID, P.PARTIALLY_REFUNDED)
    assert order.refunded_minor == 5000
    assert order.refundable_minor == TOTAL - 5000
    [event] = order.take_events()
    assert (event.type, event.status, event.payment_status) == (
        E.PARTIALLY_REFUNDED,
        S.PAID,
        P.PARTIALLY_REFUNDED,
    )

    assert order.record_refund(refund("re_2", TOTAL - 5000), T2, EventSource.WEBHOOK) is True
    assert order.status == S.REFUNDED
    assert order.payment_status == P.REFUNDED
    assert order.refunded_minor == TOTAL
    assert order.refundable_minor == 0
    assert order.updated_at == T2
    [event] = order.take_events()
    assert (event.type, event.status, event.payment_status) == (E.REFUNDED, S.REFUNDED, P.REFUNDED)
    assert [r.id for r in order.refunds] == ["re_1", "re_2"]


def test_full_refund_at_once() -> None:
    order = order_in(S.PROCESSING)
    order.record_refund(refund("re_1", TOTAL), T1, EventSource.API)
    assert (order.status, order.payment_status) == (S.REFUNDED, P.REFUNDED)
    assert event_types(order) == [E.REFUNDED]


def test_every_partial_refund_raises_an_event() -> None:
    order = order_in(S.SHIPPED)
    order.record_refund(refund("re_1", 1000), T1, EventSource.API)
    order.record_refund(refund("re_2", 1000), T2, EventSource.API)
    assert (order.status, order.payment_status) == (S.SHIPPED, P.PARTIALLY_REFUNDED)
    assert order.refunded_minor == 2000
    assert event_types(order) == [E.PARTIALLY_REFUNDED, E.PARTIALLY_REFUNDED]


def test_pending_refunds_count_as_refunded() -> None:
    order = order_in(S.PAID)
    order.record_refund(refund("re_1", 4000, RefundStatus.PENDING), T1, EventSource.API)
    assert order.refunded_minor == 4000
    assert order.payment_status == P.PARTIALLY_REFUNDED
    order.take_events()
    # the same refund now succeeding: recorded, but nothing new to announce
    changed = order.record_refund(refund("re_1", 4000), T2, EventSource.WEBHOOK)
    assert changed is True
    assert order.refunds[0].status == RefundStatus.SUCCEEDED
    assert order.refunded_minor == 4000
    assert order.take_events() == []


def test_same_refund_twice_is_idempotent() -> None:
    order = order_in(S.PAID)
    order.record_refund(refund("re_1", 1000), T1, EventSource.WEBHOOK)
    order.take_events()
    assert order.record_refund(refund("re_1", 1000), T2, EventSource.WEBHOOK) is False
    assert len(order.refunds) == 1
    assert order.refunded_minor == 1000
    assert order.updated_at == T1
    assert order.take_events() == []


def test_failed_refund_does_not_count() -> None:
    order = order_in(S.PAID)
    order.record_refund(refund("re_1", 3000, RefundStatus.FAILED), T1, EventSource.WEBHOOK)
    assert order.refunded_minor == 0
    assert (order.status, order.payment_status) == (S.PAID, P.COMPLETED)
    assert order.take_events() == []


@pytest.mark.parametrize(
    ("first", "second"), [(0, TOTAL + 1), (5000, TOTAL - 5000 + 1), (TOTAL, 1)]
)
def test_over_refund_is_refused(first: int, second: int) -> None:
    order = order_in(S.PAID)
    if first:
        order.record_refund(refund("re_1", first), T1, EventSource.API)
    order.take_events()
    status, payment_status = order.status, order.payment_status
    with pytest.raises(InvalidTransition) as caught:
        order.record_refund(refund("re_2", second), T2, EventSource.API)
    assert caught.value.status_code == 409
    assert caught.value.message == "Refund amount exceeds the amount left to refund"
    assert order.refunded_minor == first
    assert (order.status, order.payment_status) == (status, payment_status)
    assert [r.id for r in order.refunds] == (["re_1"] if first else [])
    assert order.take_events() == []


@pytest.mark.parametrize("start", [S.PAID, S.PROCESSING], ids=str)
def test_refund_on_cancelled_order_keeps_status_cancelled(start: OrderStatus) -> None:
    order = order_in(start)
    order.cancel(T1)
    assert event_types(order) == [E.CANCELLED]
    order.record_refund(refund("re_1", 3000), T2, EventSource.PROVIDER)
    assert (order.status, order.payment_status) == (S.CANCELLED, P.PARTIALLY_REFUNDED)
    order.record_refund(refund("re_2", TOTAL - 3000), T3, EventSource.PROVIDER)
    assert order.status == S.CANCELLED
    assert order.payment_status == P.REFUNDED
    assert order.refunded_minor == TOTAL
    events = order.take_events()
    assert [e.type for e in events] == [E.PARTIALLY_REFUNDED, E.REFUNDED]
    assert [e.status for e in events] == [S.CANCELLED, S.CANCELLED]


def test_a_snapshot_is_equal_and_shares_nothing_that_can_change() -> None:
    import copy
    import dataclasses

    order = new_order()
    order.metadata = {"channel": "web"}
    order.refunds.append(refund("rf_1", 100))
    snapshot = order.snapshot()
    assert snapshot == copy.deepcopy(order)
    assert snapshot.dirty == order.dirty and snapshot.version == order.version
    for name in ("metadata", "refunds", "pending_events"):
        assert getattr(snapshot, name) is not getattr(order, name)
    order.metadata["channel"] = "phone"
    order.refunds.append(refund("rf_2", 200))
    order.take_events()
    order.status = OrderStatus.CANCELLED
    assert snapshot.metadata == {"channel": "web"}
    assert [r.id for r in snapshot.refunds] == ["rf_1"]
    assert [e.type for e in snapshot.pending_events] == [EventType.CREATED]
    assert snapshot.status == OrderStatus.PENDING
    # Every other field holds something immutable; a new field must be looked at here
    # (and copied in snapshot() if it can change in place).
    copied = {"metadata", "refunds", "pending_events"}
    immutable = {
        "id", "customer_id", "customer_email", "customer_name", "amounts", "total_minor",
        "shipping_address", "billing_address", "status", "payment_status",
        "payment_provider", "payment_intent_id", "tracking_number", "paid_at",
        "cancelled_at", "created_at", "updated_at", "version", "status_before_refund",
        "dirty",
    }  # fmt: skip
    assert {f.name for f in dataclasses.fields(Order)} == copied | immutable
    for name in ("amounts", "shipping_address"):
        assert dataclasses.is_dataclass(getattr(order, name))
        assert type(getattr(order, name)).__dataclass_params__.frozen  # type: ignore[attr-defined]
