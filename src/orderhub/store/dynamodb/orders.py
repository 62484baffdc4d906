"""Orders in DynamoDB: reads by key (strongly consistent) and by index, and the unit of
work that writes an order change with its events, deliveries and counters in one
TransactWriteItems."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from orderhub.delivery.model import DeliveryTargets
from orderhub.kit.clock import epoch_ms
from orderhub.orders.domain import Order, OrderEvent
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.counters import journal_put
from orderhub.store.dynamodb.engine import DynamoEngine, TransactionCancelled, first_items
from orderhub.store.dynamodb.mappers import (
    EVENT_NAMES,
    EVENT_PROJECTION,
    Item,
    compact_json,
    delivery_item,
    event_item,
    intent_item,
    item_bytes,
    order_document,
    order_item,
    order_of,
    values,
)
from orderhub.store.mapping import event_from
from orderhub.store.protocol import AlreadyExists, ConcurrencyConflict, OrderFilter, StoreError
from orderhub.store.unit_of_work import OrderRepositoryBase, OrderWrite, UnitOfWorkBase


class DynamoOrderRepository(OrderRepositoryBase):
    def __init__(self, db: DynamoEngine, targets: DeliveryTargets) -> None:
        super().__init__(targets)
        self._db = db

    async def _get(self, order_id: uuid.UUID) -> Order | None:
        item = await self._db.get(t.Table.key(t.order_pk(order_id), t.ORDER_SK))
        return order_of(item) if item else None

    async def _get_by_payment_intent(self, intent_id: str) -> Order | None:
        """The intent item (written in the order's transaction) names the order; an
        order whose intent has changed since no longer answers to the old one."""
        item = await self._db.get(t.Table.key(t.intent_pk(intent_id), t.INTENT_SK))
        if item is None:
            return None
        order = await self._get(uuid.UUID(item["order_id"]["S"]))
        return order if order is not None and order.payment_intent_id == intent_id else None

    async def list_page(
        self, order_filter: OrderFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Order]:
        status = order_filter.status.value if order_filter.status is not None else None
        if order_filter.customer_id is not None:
            items = await self._db.newest_first(
                "orders_by_customer",
                [f"CUSTOMER#{order_filter.customer_id}"],
                before_id,
                limit,
                keep=lambda item: status is None or item["status"]["S"] == status,
            )
        elif status is not None:
            months = await self._db.months_back(before_id)
            items = await self._db.newest_first(
                "orders_by_status", [f"ORDERS#{status}#{m}" for m in months], before_id, limit
            )
        else:
            months = await self._db.months_back(before_id)
            items = await self._db.newest_first(
                "orders_by_month", [f"ORDERS#{m}" for m in months], before_id, limit
            )
        return [order_of(item) for item in items]

    async def history(self, order_id: uuid.UUID) -> list[OrderEvent]:
        return [
            event_from(values(item))
            async for item in self._db.query(
                "pk = :pk AND begins_with(sk, :events)",
                EVENT_NAMES,
                {":pk": {"S": t.order_pk(order_id)}, ":events": {"S": t.EVENT_PREFIX}},
                consistent=True,
                projection=EVENT_PROJECTION,
            )
        ]

    async def with_unsent_refunds(self, changed_before: datetime, limit: int) -> list[Order]:
        unsent = self._db.query(
            "ou_pk = :unsent AND updated_at < :before",
            {},
            {":unsent": {"S": "UNSENT"}, ":before": {"N": str(epoch_ms(changed_before))}},
            index="orders_unsent_refunds",
            page_size=limit,
        )
        return [order_of(item) for item in await first_items(unsent, limit)]


def check_transaction_size(actions: list[dict[str, Any]]) -> None:
    """Refuse, before sending, a transaction DynamoDB would refuse: more than 100 actions,
    more than 4 MB, or an item over 400 KB. An order change is about ten actions (the
    order, its intent, one item per event and per delivery, the counters)."""
    if len(actions) > t.MAX_ACTIONS:
        raise StoreError(
            f"this change needs {len(actions)} writes; one DynamoDB transaction takes at "
            f"most {t.MAX_ACTIONS} (commit fewer order changes at once)"
        )
    total = 0
    for action in actions:
        body = next(iter(action.values()))
        size = item_bytes(body.get("Item") or body.get("Key") or {})
        if size > t.MAX_ITEM_BYTES:
            raise StoreError("an item of this change is over DynamoDB's 400 KB item limit")
        total += size
    if total > t.MAX_TRANSACTION_BYTES:
        raise StoreError("this change is over DynamoDB's 4 MB transaction limit")


class DynamoUnitOfWork(UnitOfWorkBase):
    def __init__(self, db: DynamoEngine, targets: DeliveryTargets, signal: asyncio.Event) -> None:
        super().__init__(signal)
        self._db = db
        self.orders = DynamoOrderRepository(db, targets)

    async def _actions(self, write: OrderWrite) -> list[dict[str, Any]]:
        """The order item first (its index is where a lost race shows), then its events,
        deliveries and counter journal entry."""
        table = self._db.name
        order = write.order
        document = order_document(order)
        put: dict[str, Any] = {
            "TableName": table,
            "Item": order_item(order, await self._db.month_of(order.id), document),
        }
        if write.expected_version is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#v = :expected"
            put["ExpressionAttributeNames"] = {"#v": "version"}
            put["ExpressionAttributeValues"] = {":expected": {"N": str(write.expected_version)}}
        actions: list[dict[str, Any]] = [{"Put": put}]
        event_keys = {e.id: t.event_sk(order.version, e.id) for e in write.events}
        event_doc = compact_json(write.event_document)
        actions += [
            {"Put": {"TableName": table, "Item": event_item(e, order, event_doc)}}
            for e in write.events
        ]
        for delivery in write.deliveries:
            item = delivery_item(
                delivery, event_keys[delivery.event_id], await self._db.month_of(delivery.id)
            )
            actions.append({"Put": {"TableName": table, "Item": item}})
        if write.counters:
            actions.append(journal_put(table, write.counters))
        return actions

    async def _write(self, writes: list[OrderWrite]) -> None:
        actions: list[dict[str, Any]] = []
        guarded: dict[int, OrderWrite] = {}  # action index -> the order write it guards
        intents: dict[str, Item] = {}
        for write in writes:
            guarded[len(actions)] = write
            actions += await self._actions(write)
            intent = write.order.payment_intent_id
            if intent and (write.expected_version is None or write.previous_intent_id != intent):
                intents[intent] = intent_item(intent, write.order.id)
        actions += [{"Put": {"TableName": self._db.name, "Item": i}} for i in intents.values()]
        check_transaction_size(actions)
        try:
            await self._db.transact(actions)
        except TransactionCancelled as cancelled:
            for index, reason in enumerate(cancelled.reasons):
                lost = guarded.get(index)
                if lost is not None and reason == "ConditionalCheckFailed":
                    order_id = str(lost.order.id)
                    if lost.expected_version is None:
                        raise AlreadyExists(order_id) from None
                    raise ConcurrencyConflict(order_id) from None
            if cancelled.conflicted:
                raise ConcurrencyConflict("the order was being changed concurrently") from None
            raise StoreError("store error: the order change was refused") from None
