"""The outbox in DynamoDB: due deliveries from the sparse `deliveries_waiting` index,
conditional transitions (one transaction with the attempt and the counter journal
entry), and each delivery's event with the order as of the event, by key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from orderhub.delivery.model import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryStatus,
    DueDelivery,
    released,
)
from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.store.counting import CountedTransition, DeliveryTransitions, added_counters
from orderhub.store.documents import is_slim, order_as_of_event
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.counters import journal_put
from orderhub.store.dynamodb.engine import (
    ConditionFailed,
    DynamoEngine,
    TransactionCancelled,
    first_items,
)
from orderhub.store.dynamodb.mappers import (
    Item,
    attempt_item,
    av,
    delivery_item,
    delivery_state,
    event_document_of,
    order_document_of,
    update_of,
    values,
)
from orderhub.store.mapping import (
    attempt_from,
    delivery_from,
    event_from,
)
from orderhub.store.protocol import ADD_BATCH, StoreError

BATCH_GET_KEYS = 100
TRANSITIONS_AT_ONCE = 16


def _guard(before: Delivery) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The condition that the stored delivery still has `before`'s status, lease owner
    and lease expiry."""
    names = {"#st": "status", "#lo": "lease_owner", "#lu": "lease_until"}
    vals: dict[str, Any] = {":st": av(before.status.value)}
    parts = ["#st = :st"]
    if before.lease_owner is None:
        parts.append("attribute_not_exists(#lo)")
    else:
        parts.append("#lo = :lo")
        vals[":lo"] = av(before.lease_owner)
    if before.lease_until is None:
        parts.append("attribute_not_exists(#lu)")
    else:
        parts.append("#lu = :lu")
        vals[":lu"] = av(epoch_ms(before.lease_until))
    return " AND ".join(parts), names, vals


class DynamoDeliveryRepository(DeliveryTransitions):
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    def _key(self, delivery_id: uuid.UUID | str) -> dict[str, Any]:
        return t.Table.key(t.delivery_pk(delivery_id), t.DELIVERY_SK)

    async def _waiting(
        self, status: DeliveryStatus, until_ms: int | None, limit: int
    ) -> list[Item]:
        condition = "dw_pk = :w" + (" AND dw_sk <= :now" if until_ms is not None else "")
        vals: dict[str, Any] = {":w": {"S": f"WAITING#{status.value}"}}
        if until_ms is not None:
            vals[":now"] = {"S": t.due_until(until_ms)}
        return await first_items(
            self._db.query(condition, {}, vals, index="deliveries_waiting", page_size=limit),
            limit,
        )

    async def due(self, now: datetime, limit: int) -> list[Delivery]:
        """Pending ones by next attempt and in-flight ones by lease expiry, both up to now
        (the two partitions of `deliveries_waiting`), earliest due first."""
        now_ms = epoch_ms(now)
        pending = await self._waiting(DeliveryStatus.PENDING, now_ms, limit)
        lost = await self._waiting(DeliveryStatus.IN_FLIGHT, now_ms, limit)
        found = sorted(
            (delivery_from(values(item)) for item in pending + lost),
            key=lambda d: (d.next_attempt_at, str(d.id)),
        )
        return found[:limit]

    async def _transition(self, change: CountedTransition) -> bool:
        before, after, attempt = change.before, change.after, change.attempt
        condition, names, vals = _guard(before)
        expression, set_names, set_vals = update_of(
            delivery_state(after, await self._db.month_of(after.id))
        )
        update = {
            "TableName": self._db.name,
            "Key": self._key(before.id),
            "UpdateExpression": expression,
            "ConditionExpression": f"attribute_exists(pk) AND {condition}",
            "ExpressionAttributeNames": {**names, **set_names},
            "ExpressionAttributeValues": {**vals, **set_vals},
        }
        actions: list[dict[str, Any]] = [{"Update": update}]
        if attempt is not None:
            actions.append({"Put": {"TableName": self._db.name, "Item": attempt_item(attempt)}})
        if change.counters:
            actions.append(journal_put(self._db.name, change.counters))
        try:
            await self._db.transact(actions)
        except TransactionCancelled as cancelled:
            if cancelled.reasons and cancelled.reasons[0] in (
                "ConditionalCheckFailed",
                "TransactionConflict",
            ):
                return False
            raise StoreError("store error: the delivery change was refused") from None
        return True

    async def _transition_many(self, changes: list[CountedTransition]) -> list[bool]:
        """Each its own conditional transaction (a DynamoDB transaction fails whole when
        one condition fails), run concurrently, at most `TRANSITIONS_AT_ONCE` at a time."""
        slots = asyncio.Semaphore(TRANSITIONS_AT_ONCE)

        async def one(change: CountedTransition) -> bool:
            async with slots:
                return await self._transition(change)

        results = await asyncio.gather(*(one(c) for c in changes), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [bool(result) for result in results]

    async def load(self, deliveries: list[Delivery]) -> list[DueDelivery]:
        """Each delivery's event item by key, and the order as of the event (an event
        written before slim events carries it whole; a slim one is rebuilt from the current
        order and the events after it)."""
        if not deliveries:
            return []
        keys = await self._event_keys(deliveries)
        events: dict[str, Item] = {}
        wanted = [
            t.Table.key(t.order_pk(d.order_id), keys[d.id]) for d in deliveries if d.id in keys
        ]
        unique = list({(k["pk"]["S"], k["sk"]["S"]): k for k in wanted}.values())
        for start in range(0, len(unique), BATCH_GET_KEYS):
            pending: dict[str, Any] = {
                self._db.name: {
                    "Keys": unique[start : start + BATCH_GET_KEYS],
                    "ConsistentRead": True,
                }
            }
            for _attempt in range(10):
                result = await self._db.call("batch_get_item", RequestItems=pending)
                for item in result.get("Responses", {}).get(self._db.name, []):
                    events[item["id"]["S"]] = item
                pending = result.get("UnprocessedKeys") or {}
                if not pending:
                    break
                await asyncio.sleep(0.05)
        documents = {event_id: event_document_of(item) for event_id, item in events.items()}
        oldest: dict[uuid.UUID, int] = {}
        for delivery in deliveries:
            found = documents.get(str(delivery.event_id))
            if found is not None and is_slim(found[1]):
                version = found[0]
                oldest[delivery.order_id] = min(version, oldest.get(delivery.order_id, version))
        rebuilding = {order_id: await self._since(order_id, v) for order_id, v in oldest.items()}
        loaded = []
        for delivery in deliveries:
            item = events.get(str(delivery.event_id))
            if item is None:
                continue
            version, doc = documents[str(delivery.event_id)]
            current, later = rebuilding.get(delivery.order_id, (None, []))
            order = order_as_of_event(doc, version, current, later)
            loaded.append(
                DueDelivery(delivery=delivery, event=event_from(values(item)), order=order)
            )
        return loaded

    async def _since(
        self, order_id: uuid.UUID, version: int
    ) -> tuple[tuple[dict[str, Any], int] | None, list[tuple[int, dict[str, Any]]]]:
        """The order's current item (consistent, read first) and its events after
        `version` up to the current one: what rebuilds the order as of a slim event."""
        pk = t.order_pk(order_id)
        found = await self._db.get(t.Table.key(pk, t.ORDER_SK))
        if found is None:
            return None, []
        current = order_document_of(found)
        later = [
            event_document_of(item)
            async for item in self._db.query(
                "pk = :pk AND sk BETWEEN :after AND :upto",
                {},
                {
                    ":pk": {"S": pk},
                    ":after": {"S": t.event_sk_from(version + 1)},
                    ":upto": {"S": t.event_sk_from(current[1] + 1)},
                },
                consistent=True,
                projection="order_version, doc",
            )
        ]
        return current, later

    async def _event_keys(self, deliveries: list[Delivery]) -> dict[uuid.UUID, str]:
        """The sort key of each delivery's event (kept on the delivery item)."""
        keys: dict[uuid.UUID, str] = {}
        unique = list({d.id: self._key(d.id) for d in deliveries}.values())
        for start in range(0, len(unique), BATCH_GET_KEYS):
            pending: dict[str, Any] = {
                self._db.name: {
                    "Keys": unique[start : start + BATCH_GET_KEYS],
                    "ConsistentRead": True,
                    "ProjectionExpression": "id, event_sk",
                }
            }
            for _attempt in range(10):
                result = await self._db.call("batch_get_item", RequestItems=pending)
                for item in result.get("Responses", {}).get(self._db.name, []):
                    keys[uuid.UUID(item["id"]["S"])] = item["event_sk"]["S"]
                pending = result.get("UnprocessedKeys") or {}
                if not pending:
                    break
                await asyncio.sleep(0.05)
        return keys

    async def _leased_update(
        self, delivery_id: uuid.UUID, worker_id: str, state: dict[str, Any]
    ) -> bool:
        expression, names, vals = update_of(state)
        try:
            await self._db.call(
                "update_item",
                TableName=self._db.name,
                Key=self._key(delivery_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND #st = :inflight AND #lo = :w",
                ExpressionAttributeNames={**names, "#st": "status", "#lo": "lease_owner"},
                ExpressionAttributeValues={
                    **vals,
                    ":inflight": av(DeliveryStatus.IN_FLIGHT.value),
                    ":w": av(worker_id),
                },
            )
        except ConditionFailed:
            return False
        return True

    async def release(self, delivery_ids: list[uuid.UUID], worker_id: str) -> None:
        """Back to pending, due as before: a read, then one conditional update each
        (still in flight, leased by this worker, due time unchanged), moving the item
        from the in-flight partition of the waiting index to the pending one. The backlog
        does not move."""

        async def give_back(delivery_id: uuid.UUID) -> None:
            current = await self.get(delivery_id)
            if current is None or current.lease_owner != worker_id:
                return
            state = delivery_state(released(current), await self._db.month_of(delivery_id))
            await self._leased_update(delivery_id, worker_id, state)

        await asyncio.gather(*(give_back(i) for i in delivery_ids))

    async def renew(
        self, delivery_ids: list[uuid.UUID], worker_id: str, lease_until: datetime
    ) -> set[uuid.UUID]:
        until = epoch_ms(lease_until)
        kept = await asyncio.gather(
            *(
                self._leased_update(
                    i, worker_id, {"lease_until": until, "dw_sk": t.waiting_sk(until, i)}
                )
                for i in delivery_ids
            )
        )
        return {i for i, ok in zip(delivery_ids, kept, strict=True) if ok}

    async def add(self, deliveries: list[Delivery]) -> None:
        """One `TransactWriteItems` per batch: a `Put` of each delivery (keyed to its
        event's item, found by a consistent `Query` of each order's events) and a counter
        journal entry."""
        events: dict[str, str] = {}
        for order_id in {d.order_id for d in deliveries}:
            async for item in self._db.query(
                "pk = :pk AND begins_with(sk, :e)",
                {},
                {":pk": av(t.order_pk(order_id)), ":e": av(t.EVENT_PREFIX)},
                consistent=True,
                projection="sk, id",
            ):
                events[item["id"]["S"]] = item["sk"]["S"]
        for start in range(0, len(deliveries), ADD_BATCH):
            batch = deliveries[start : start + ADD_BATCH]
            actions: list[dict[str, Any]] = []
            for delivery in batch:
                event_key = events.get(str(delivery.event_id))
                if event_key is None:
                    raise StoreError(f"store error: no event {delivery.event_id} to deliver")
                item = delivery_item(delivery, event_key, await self._db.month_of(delivery.id))
                put = {"TableName": self._db.name, "Item": item}
                actions.append({"Put": {**put, "ConditionExpression": "attribute_not_exists(pk)"}})
            actions.append(journal_put(self._db.name, added_counters(batch)))
            try:
                await self._db.transact(actions)
            except TransactionCancelled:
                raise StoreError("store error: the deliveries could not be added") from None

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None:
        item = await self._db.get(self._key(delivery_id))
        return delivery_from(values(item)) if item else None

    async def list_page(
        self, delivery_filter: DeliveryFilter, before_id: uuid.UUID | None, limit: int
    ) -> list[Delivery]:
        status = delivery_filter.status.value if delivery_filter.status else None
        integration = delivery_filter.integration.value if delivery_filter.integration else None
        since = delivery_filter.created_since
        since_ms = epoch_ms(since) if since is not None else None

        def keep(item: Item) -> bool:
            return (
                (status is None or item["status"]["S"] == status)
                and (integration is None or item["integration"]["S"] == integration)
                and (since_ms is None or int(item["created_at"]["N"]) >= since_ms)
            )

        if delivery_filter.order_id is not None:
            index, partitions = "deliveries_by_order", [f"ORDER#{delivery_filter.order_id}"]
        elif status is not None:
            months = await self._db.months_back(before_id)
            index, partitions = "deliveries_by_status", [f"DELIVERIES#{status}#{m}" for m in months]
        else:
            months = await self._db.months_back(before_id)
            index, partitions = "deliveries_by_month", [f"DELIVERIES#{m}" for m in months]
        items = await self._db.newest_first(index, partitions, before_id, limit, keep)
        return [delivery_from(values(item)) for item in items]

    async def attempts(self, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
        found = [
            attempt_from(values(item))
            async for item in self._db.query(
                "pk = :pk AND begins_with(sk, :a)",
                {},
                {":pk": {"S": t.delivery_pk(delivery_id)}, ":a": {"S": t.ATTEMPT_PREFIX}},
                consistent=True,
            )
        ]
        return sorted(found, key=lambda a: (a.at, str(a.id)))

    async def next_due_at(self) -> datetime | None:
        first = await self._waiting(DeliveryStatus.PENDING, None, 1)
        return from_epoch_ms(int(first[0]["next_attempt_at"]["N"])) if first else None

    async def oldest_waiting_at(self) -> datetime | None:
        page = await self._db.call(
            "query",
            TableName=self._db.name,
            IndexName="deliveries_backlog",
            KeyConditionExpression="db_pk = :b",
            ExpressionAttributeValues={":b": {"S": "BACKLOG"}},
            Limit=1,
        )
        items = page.get("Items", [])
        return from_epoch_ms(int(items[0]["created_at"]["N"])) if items else None
