"""The order: its money rules, its two state machines and the events it raises.

Pure: no I/O, no clock of its own (callers pass `now`), no framework types.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from orderhub.kit.currencies import MAXIMUM_CHARGE_MINOR, minimum_charge_minor
from orderhub.kit.errors import Conflict, FieldProblem, ValidationFailed
from orderhub.kit.ids import new_id
from orderhub.kit.money import format_major


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    CREATED = "order.created"
    PAID = "order.paid"
    PAYMENT_FAILED = "order.payment_failed"
    PROCESSING = "order.processing"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"
    UPDATED = "order.updated"
    CANCELLED = "order.cancelled"
    PARTIALLY_REFUNDED = "order.partially_refunded"
    REFUNDED = "order.refunded"
    # Internal: a saved change that raised no event of its own (a payment retried after a
    # decline, a pending refund settling). It keeps the sheet row current and goes nowhere
    # else: not in the history, not mailed, not notified.
    CHANGED = "order.changed"
    # Internal: the tracking number was added or changed once the order had shipped. It
    # rides beside that change's public `order.updated` and only sends the customer the
    # tracking-number email: not in the history, not notified, not another sheet write.
    TRACKING_UPDATED = "order.tracking_updated"

    @property
    def internal(self) -> bool:
        return self in INTERNAL_EVENTS


INTERNAL_EVENTS = frozenset({EventType.CHANGED, EventType.TRACKING_UPDATED})


class EventSource(StrEnum):
    """Who made a change, as the order's history tells it."""

    API = "api"
    WEBHOOK = "webhook"
    PROVIDER = "provider"
    SYSTEM = "system"
    CONSOLE = "console"  # an operator, from the console's pages


class RefundStatus(StrEnum):
    REQUESTED = "requested"  # saved here; the provider has not answered yet
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# Fulfilment moves a client may ask for with PATCH (SPEC §7). Everything else is a 409.
PATCH_MOVES: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PAID: frozenset({OrderStatus.PROCESSING, OrderStatus.SHIPPED}),
    OrderStatus.PROCESSING: frozenset({OrderStatus.SHIPPED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
}
CANCELLABLE = frozenset({OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.PROCESSING})
TRACKABLE = frozenset(
    {OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED}
)
ADDRESS_EDITABLE = frozenset({OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.PROCESSING})
# Once shipped, a new tracking number is mailed to the customer on its own.
SHIPPED_ALREADY = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})
STATUS_EVENT = {
    OrderStatus.PROCESSING: EventType.PROCESSING,
    OrderStatus.SHIPPED: EventType.SHIPPED,
    OrderStatus.DELIVERED: EventType.DELIVERED,
}
UNPAID = frozenset({PaymentStatus.PENDING, PaymentStatus.FAILED})


class InvalidTransition(Conflict):
    code = "invalid_transition"


# Refunds a client may ask for on one order (a DELETE's or an automatic refund of what is
# left still goes through). The order carries every refund (and so does each message its
# events send): the cap keeps an order, and what is sent about it, bounded.
MAX_REQUESTED_REFUNDS = 100


class TooManyRefunds(Conflict):
    code = "too_many_refunds"


class RefundBeyondPayment(InvalidTransition):
    """A refund reported by the provider would take the refunded total past what was paid."""

    code = "refund_beyond_payment"


def check_patch_move(current: OrderStatus, target: OrderStatus) -> None:
    """Raise InvalidTransition unless PATCH may move `current` to `target`."""
    if target == OrderStatus.CANCELLED:
        raise InvalidTransition("Use DELETE /api/orders/:id to cancel an order")
    if target == current:
        return
    if target not in PATCH_MOVES.get(current, frozenset()):
        raise InvalidTransition(f"Cannot move order from {current} to {target}")


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    city: str
    state: str
    zip_code: str
    country: str


@dataclass(frozen=True, slots=True)
class LineItem:
    id: str
    name: str
    quantity: int
    price_minor: int

    @property
    def total_minor(self) -> int:
        return self.quantity * self.price_minor


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund of the order's payment. `id` is orderhub's own (it is the provider's
    idempotency key); `provider_id` the provider's `re_...` once known."""

    id: str
    amount_minor: int
    reason: str | None
    status: RefundStatus
    created_at: datetime
    provider_id: str | None = None

    @property
    def public_id(self) -> str:
        return self.provider_id or self.id

    @property
    def counts(self) -> bool:
        """Refunds the provider accepted (succeeded, pending): they are what is reported
        as refunded."""
        return self.status in ACCEPTED_REFUNDS

    @property
    def reserved(self) -> bool:
        """Accepted refunds and those still waiting for the provider's answer: together
        they may never exceed what was paid (nothing is refunded twice)."""
        return self.status in RESERVED_REFUNDS


ACCEPTED_REFUNDS = frozenset({RefundStatus.SUCCEEDED, RefundStatus.PENDING})
RESERVED_REFUNDS = ACCEPTED_REFUNDS | {RefundStatus.REQUESTED}

# A refund's status only moves forward; a succeeded refund can still fail later
# (`charge.refund.updated`), which puts its amount back.
REFUND_MOVES: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.REQUESTED: frozenset(
        {RefundStatus.PENDING, RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED}
    ),
    RefundStatus.PENDING: frozenset(
        {RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED}
    ),
    RefundStatus.SUCCEEDED: frozenset({RefundStatus.FAILED}),
    RefundStatus.FAILED: frozenset(),
    RefundStatus.CANCELED: frozenset(),
}


def auto_refund_id(intent_id: str) -> str:
    """The refund of a payment that succeeded on a cancelled order: one per intent."""
    return f"auto-{intent_id}"


def cancel_refund_id(order_id: uuid.UUID) -> str:
    """The refund made by cancelling a paid order: one per order."""
    return f"cancel-{order_id}"


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One event of SPEC §10: the audit trail entry, and (later) the outbox's source."""

    id: uuid.UUID
    order_id: uuid.UUID
    type: EventType
    at: datetime
    status: OrderStatus
    payment_status: PaymentStatus
    source: EventSource


@dataclass(frozen=True, slots=True)
class Amounts:
    """Every amount of an order, in minor units of `currency`."""

    currency: str
    items: tuple[LineItem, ...]
    shipping_minor: int = 0
    tax_minor: int = 0
    discount_minor: int = 0

    @property
    def computed_total_minor(self) -> int:
        subtotal = sum(item.total_minor for item in self.items)
        return subtotal + self.shipping_minor + self.tax_minor - self.discount_minor


def check_total(amounts: Amounts, stated_total_minor: int) -> None:
    """The stated total must equal the computed one and be chargeable (SPEC §6); no
    single amount may exceed the maximum charge either."""
    currency = amounts.currency
    ceiling = f"must be at most {format_major(MAXIMUM_CHARGE_MINOR, currency)} {currency}"
    parts = [
        ("totalAmount", stated_total_minor),
        *((f"items[{n}].price", item.price_minor) for n, item in enumerate(amounts.items)),
        ("shippingAmount", amounts.shipping_minor),
        ("taxAmount", amounts.tax_minor),
        ("discountAmount", amounts.discount_minor),
    ]
    problems = [
        FieldProblem(name, ceiling) for name, minor in parts if minor > MAXIMUM_CHARGE_MINOR
    ]
    if problems:
        raise ValidationFailed(problems)
    computed = amounts.computed_total_minor
    if stated_total_minor != computed:
        raise ValidationFailed.one(
            "totalAmount",
            f"{format_major(stated_total_minor, currency)} does not match computed total "
            f"{format_major(computed, currency)}",
        )
    minimum = minimum_charge_minor(currency)
    if computed < minimum:
        raise ValidationFailed.one(
            "totalAmount",
            f"must be at least {format_major(minimum, currency)} {currency}",
        )
    if computed > MAXIMUM_CHARGE_MINOR:
        raise ValidationFailed.one(
            "totalAmount",
            f"must be at most {format_major(MAXIMUM_CHARGE_MINOR, currency)} {currency}",
        )


@dataclass(frozen=True, slots=True)
class OrderDraft:
    """A validated create request, amounts in minor units, ready to become an Order."""

    customer_id: str
    customer_email: str
    customer_name: str
    amounts: Amounts
    shipping_address: Address
    billing_address: Address | None
    metadata: dict[str, str] | None

    @property
    def total_minor(self) -> int:
        return self.amounts.computed_total_minor


# Stripe's limit on metadata keys; it holds for the map a PATCH leaves behind too.
MAX_METADATA_KEYS = 50


@dataclass(frozen=True, slots=True)
class OrderChanges:
    """What a PATCH asks for; None means "not asked".

    `metadata` is merged into the order's map as Stripe does: each key is set, and a key
    set to "" is removed; `clear_metadata` (`"metadata": null`) removes every key."""

    status: OrderStatus | None = None
    tracking_number: str | None = None
    shipping_address: Address | None = None
    metadata: dict[str, str] | None = None
    clear_metadata: bool = False

    def is_empty(self) -> bool:
        return not self.clear_metadata and all(
            value is None
            for value in (self.status, self.tracking_number, self.shipping_address, self.metadata)
        )

    def metadata_after(self, current: dict[str, str] | None) -> dict[str, str] | None:
        """The order's metadata once this change is merged in (None when no key is left).
        Raises ValidationFailed when the merged map has more than MAX_METADATA_KEYS keys."""
        if self.clear_metadata:
            return None
        merged = dict(current or {})
        for key, value in (self.metadata or {}).items():
            if value == "":
                merged.pop(key, None)
            else:
                merged[key] = value
        if len(merged) > MAX_METADATA_KEYS:
            raise ValidationFailed.one(
                "metadata",
                f"must contain at most {MAX_METADATA_KEYS} items ({len(merged)} after merging)",
            )
        return merged or None


@dataclass(slots=True)
class Order:
    id: uuid.UUID
    customer_id: str
    customer_email: str
    customer_name: str
    amounts: Amounts
    total_minor: int
    shipping_address: Address
    billing_address: Address | None
    metadata: dict[str, str] | None
    status: OrderStatus
    payment_status: PaymentStatus
    payment_provider: str
    payment_intent_id: str | None
    tracking_number: str | None
    refunds: list[Refund]
    paid_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    status_before_refund: OrderStatus | None = None
    pending_events: list[OrderEvent] = field(default_factory=list)
    # Set by every change, with or without an event of its own; a store saves a dirty order.
    dirty: bool = field(default=False, compare=False)

    # -- creation -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        order_id: uuid.UUID,
        draft: OrderDraft,
        *,
        payment_provider: str,
        payment_intent_id: str | None,
        now: datetime,
        source: EventSource = EventSource.API,
    ) -> Order:
        order = cls(
            id=order_id,
            customer_id=draft.customer_id,
            customer_email=draft.customer_email,
            customer_name=draft.customer_name,
            amounts=draft.amounts,
            total_minor=draft.total_minor,
            shipping_address=draft.shipping_address,
            billing_address=draft.billing_address,
            metadata=draft.metadata,
            status=OrderStatus.PENDING,
            payment_status=PaymentStatus.PENDING,
            payment_provider=payment_provider,
            payment_intent_id=payment_intent_id,
            tracking_number=None,
            refunds=[],
            paid_at=None,
            cancelled_at=None,
            created_at=now,
            updated_at=now,
        )
        order._record(EventType.CREATED, now, source)
        return order

    def snapshot(self) -> Order:
        """An independent copy (what a store keeps as read or as written). Everything an
        order holds is immutable (frozen dataclasses, tuples, strings, datetimes) but its
        two lists and its metadata dict, which are copied."""
        return replace(
            self,
            metadata=None if self.metadata is None else dict(self.metadata),
            refunds=list(self.refunds),
            pending_events=list(self.pending_events),
        )

    @property
    def currency(self) -> str:
        return self.amounts.currency

    @property
    def refunded_minor(self) -> int:
        """Refunds the provider accepted (succeeded and pending): never `requested` ones."""
        return sum(r.amount_minor for r in self.refunds if r.counts)

    @property
    def reserved_minor(self) -> int:
        """Accepted refunds plus those waiting for the provider's answer."""
        return sum(r.amount_minor for r in self.refunds if r.reserved)

    @property
    def unsent_refunds(self) -> list[Refund]:
        """Refunds saved here that the provider has not answered yet (`requested`; a
        `pending` one without a provider id is how older versions saved them)."""
        return [
            r
            for r in self.refunds
            if r.provider_id is None and r.status in (RefundStatus.REQUESTED, RefundStatus.PENDING)
        ]

    def find_refund(self, refund_id: str) -> Refund | None:
        """By orderhub's id or the provider's `re_...` id."""
        return next((r for r in self.refunds if refund_id in (r.id, r.provider_id)), None)

    @property
    def refundable_minor(self) -> int:
        """What a new refund may still take: requested refunds hold their amount."""
        if self.paid_at is None:
            return 0
        return self.total_minor - self.reserved_minor

    # -- PATCH ----------------------------------------------------------------------

    def apply_changes(
        self, changes: OrderChanges, now: datetime, source: EventSource = EventSource.API
    ) -> bool:
        """Apply a PATCH; return whether anything changed. Raises ValidationFailed/Conflict."""
        if changes.is_empty():
            raise ValidationFailed.one("body", "must contain at least one field to update")
        target = changes.status
        if target is not None:
            check_patch_move(self.status, target)
        status_after = target if target is not None else self.status
        if changes.tracking_number is not None and status_after not in TRACKABLE:
            raise InvalidTransition(f"Cannot set trackingNumber while the order is {status_after}")
        if changes.shipping_address is not None and status_after not in ADDRESS_EDITABLE:
            raise InvalidTransition(
                f"Cannot change shippingAddress while the order is {status_after}"
            )

        metadata_asked = changes.metadata is not None or changes.clear_metadata
        metadata = changes.metadata_after(self.metadata) if metadata_asked else self.metadata
        metadata_edited = metadata_asked and metadata != (self.metadata or None)
        moved = target is not None and target != self.status
        tracking_edited = (
            changes.tracking_number is not None and changes.tracking_number != self.tracking_number
        )
        tracking_mailed = tracking_edited and self.status in SHIPPED_ALREADY
        edited = (
            tracking_edited
            or (
                changes.shipping_address is not None
                and changes.shipping_address != self.shipping_address
            )
            or metadata_edited
        )
        if not moved and not edited:
            return False
        if changes.tracking_number is not None:
            self.tracking_number = changes.tracking_number
        if changes.shipping_address is not None:
            self.shipping_address = changes.shipping_address
        if metadata_edited:
            self.metadata = metadata
        self.updated_at = now
        if moved:
            assert target is not None
            self.status = target
            self._record(STATUS_EVENT[target], now, source)
            # A tracking number given with "shipped" is part of that event; any other edit
            # alongside a move is still an update of its own.
            other_edit = (changes.shipping_address is not None or metadata_asked) or (
                changes.tracking_number is not None and target != OrderStatus.SHIPPED
            )
            if other_edit:
                self._record(EventType.UPDATED, now, source)
        else:
            self._record(EventType.UPDATED, now, source)
        if tracking_mailed:
            self._record(EventType.TRACKING_UPDATED, now, source)
        return True

    # -- cancellation ---------------------------------------------------------------

    def check_cancellable(self) -> None:
        if self.status not in CANCELLABLE:
            raise InvalidTransition(f"Cannot cancel an order that is {self.status}")

    def cancel(self, now: datetime, source: EventSource = EventSource.API) -> None:
        """Cancel the order. An unpaid payment is cancelled with it; a paid one must be
        refunded by the caller (through `record_refund`) in the same unit of work."""
        self.check_cancellable()
        self.status = OrderStatus.CANCELLED
        self.cancelled_at = now
        if self.payment_status in UNPAID:
            self.payment_status = PaymentStatus.CANCELLED
        self.updated_at = now
        self._record(EventType.CANCELLED, now, source)

    # -- payment outcomes -----------------------------------------------------------

    def record_payment_succeeded(self, now: datetime, source: EventSource) -> bool:
        """Mark paid; returns False if it already was (idempotent)."""
        if self.paid_at is not None:
            return False
        self.paid_at = now
        self.payment_status = PaymentStatus.COMPLETED
        if self.status == OrderStatus.PENDING:
            self.status = OrderStatus.PAID
        self.updated_at = now
        self._record(EventType.PAID, now, source)
        return True

    def record_payment_failed(self, now: datetime, source: EventSource) -> bool:
        """A failed attempt; never moves a paid or cancelled order backwards."""
        if self.payment_status != PaymentStatus.PENDING:
            return False
        self.payment_status = PaymentStatus.FAILED
        self.updated_at = now
        self._record(EventType.PAYMENT_FAILED, now, source)
        return True

    def record_payment_retrying(self, now: datetime) -> bool:
        """A new attempt after a failure: `failed` -> `pending` (no event of its own)."""
        if self.payment_status != PaymentStatus.FAILED:
            return False
        self.payment_status = PaymentStatus.PENDING
        self.updated_at = now
        self.dirty = True
        return True

    def record_payment_canceled(self, now: datetime, source: EventSource) -> bool:
        """The provider cancelled the payment: an unpaid order cannot complete any more,
        so it is cancelled with it. A paid or already cancelled order is unchanged."""
        if self.paid_at is not None or self.status == OrderStatus.CANCELLED:
            return False
        self.cancel(now, source)
        return True

    def record_refund(
        self, refund: Refund, now: datetime, source: EventSource, *, enforce_limit: bool = True
    ) -> bool:
        """Add a refund, or move a known one (matched by either id) forward; then derive the
        payment state from the refunded total. Returns whether anything changed.

        `enforce_limit` refuses a new refund larger than what is left (requested refunds
        included). Refunds the provider reports (webhooks) are checked only against what
        the provider accepted: one that would refund more than was paid raises
        RefundBeyondPayment (and nothing changes)."""
        if self.paid_at is None:
            raise InvalidTransition("Cannot refund an order that has not been paid")
        before = (self.payment_status, self.refunded_minor)
        index = next(
            (
                i
                for i, known in enumerate(self.refunds)
                if refund.id in (known.id, known.provider_id)
                or (
                    refund.provider_id is not None
                    and refund.provider_id in (known.id, known.provider_id)
                )
            ),
            None,
        )
        if index is None:
            if enforce_limit and refund.reserved and refund.amount_minor > self.refundable_minor:
                raise InvalidTransition("Refund amount exceeds the amount left to refund")
            if refund.counts and self.refunded_minor + refund.amount_minor > self.total_minor:
                raise RefundBeyondPayment(
                    f"refund {refund.public_id} of {refund.amount_minor} would refund more than "
                    f"was paid ({self.refunded_minor} of {self.total_minor} refunded already)"
                )
            self.refunds.append(refund)
        else:
            known = self.refunds[index]
            status = refund.status if refund.status in REFUND_MOVES[known.status] else known.status
            merged = replace(
                known, status=status, provider_id=known.provider_id or refund.provider_id
            )
            if merged == known:
                return False
            if (
                merged.counts
                and not known.counts
                and self.refunded_minor + merged.amount_minor > self.total_minor
            ):
                raise RefundBeyondPayment(
                    f"refund {merged.public_id} of {merged.amount_minor} would refund more than "
                    f"was paid ({self.refunded_minor} of {self.total_minor} refunded already)"
                )
            self.refunds[index] = merged
        self._settle_refunds(before, now, source)
        return True

    def _settle_refunds(
        self, before: tuple[PaymentStatus, int], now: datetime, source: EventSource
    ) -> None:
        refunded = self.refunded_minor
        if refunded >= self.total_minor:
            payment_status = PaymentStatus.REFUNDED
        elif refunded > 0:
            payment_status = PaymentStatus.PARTIALLY_REFUNDED
        else:
            payment_status = PaymentStatus.COMPLETED
        if payment_status == PaymentStatus.REFUNDED:
            if self.status not in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
                self.status_before_refund = self.status
                self.status = OrderStatus.REFUNDED
        elif self.status == OrderStatus.REFUNDED:
            # a refund failed after all: the order is back where it was
            self.status = self.status_before_refund or OrderStatus.PAID
            self.status_before_refund = None
        self.payment_status = payment_status
        self.updated_at = now
        self.dirty = True
        if (payment_status, refunded) == before:
            return
        if payment_status == PaymentStatus.REFUNDED:
            self._record(EventType.REFUNDED, now, source)
        elif refunded > before[1]:
            self._record(EventType.PARTIALLY_REFUNDED, now, source)
        else:
            self._record(EventType.UPDATED, now, source)

    # -- events ---------------------------------------------------------------------

    def _record(self, event_type: EventType, now: datetime, source: EventSource) -> None:
        self.dirty = True
        self.pending_events.append(
            OrderEvent(
                id=new_id(),
                order_id=self.id,
                type=event_type,
                at=now,
                status=self.status,
                payment_status=self.payment_status,
                source=source,
            )
        )

    def change_event(self, now: datetime) -> OrderEvent:
        """The internal event of a saved change that raised none (`EventType.CHANGED`)."""
        return OrderEvent(
            id=new_id(),
            order_id=self.id,
            type=EventType.CHANGED,
            at=now,
            status=self.status,
            payment_status=self.payment_status,
            source=EventSource.SYSTEM,
        )

    def take_events(self) -> list[OrderEvent]:
        events, self.pending_events = self.pending_events, []
        return events
