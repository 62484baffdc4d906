"""The sandbox provider's intents and refunds in DynamoDB.

An intent is `SANDBOX#<pi>` / `INTENT` (guarded by its `version`), its refunds live in the
same partition (`REFUND#<idempotency key>`), and `SANDBOXKEY#<key>` points from the
idempotency key the intent was created with to the intent; the intent and its pointer
are written in one transaction, a refund and its intent's new state in another."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import ConditionFailed, DynamoEngine, TransactionCancelled
from orderhub.store.dynamodb.mappers import Item, av, item_of, plain
from orderhub.store.fields import record_from, text_map, values_of
from orderhub.store.protocol import (
    AlreadyExists,
    ConcurrencyConflict,
    SandboxIntent,
    SandboxRefund,
)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


# Kept as JSON text: the intent's metadata, next action and last error.
_JSON_FIELDS = frozenset({"metadata", "next_action", "last_error"})


def intent_item(intent: SandboxIntent) -> Item:
    values = {**values_of(intent), "metadata": dict(intent.metadata)}
    for name in _JSON_FIELDS:
        values[name] = _json(values[name])
    return item_of(pk=t.sandbox_pk(intent.id), sk=t.SANDBOX_INTENT_SK, **values)


def _loaded(item: Item, name: str) -> Any:
    return json.loads(item[name]["S"]) if name in item else None


def _attribute(item: Item) -> Callable[[str, str], Any]:
    def value(name: str, kind: str) -> Any:
        if name == "metadata":
            return text_map(_loaded(item, name))
        if name in _JSON_FIELDS:
            return _loaded(item, name)
        if kind.endswith("| None") and name not in item:
            return None  # item_of leaves None out
        return plain(item[name])

    return value


def intent_of(item: Item) -> SandboxIntent:
    return record_from(SandboxIntent, _attribute(item))


def refund_item(refund: SandboxRefund) -> Item:
    return item_of(
        pk=t.sandbox_pk(refund.intent_id),
        sk=t.sandbox_refund_sk(refund.idempotency_key),
        **values_of(refund),
    )


def refund_of(item: Item) -> SandboxRefund:
    return record_from(SandboxRefund, _attribute(item))


class DynamoSandboxRepository:
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def _get(self, pk: str, sk: str) -> Item | None:
        return await self._db.get(t.Table.key(pk, sk))

    async def get_intent(self, intent_id: str) -> SandboxIntent | None:
        item = await self._get(t.sandbox_pk(intent_id), t.SANDBOX_INTENT_SK)
        return intent_of(item) if item is not None else None

    async def intent_for_key(self, idempotency_key: str) -> SandboxIntent | None:
        pointer = await self._get(t.sandbox_key_pk(idempotency_key), t.SANDBOX_KEY_SK)
        if pointer is None:
            return None
        return await self.get_intent(plain(pointer["intent_id"]))

    def _guarded_put(self, intent: SandboxIntent, expected_version: int) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._db.name,
                "Item": intent_item(intent),
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": av(expected_version)},
            }
        }

    async def put_intent(self, intent: SandboxIntent, expected_version: int | None) -> None:
        if expected_version is not None:
            action = self._guarded_put(intent, expected_version)["Put"]
            try:
                await self._db.call("put_item", **action)
            except ConditionFailed:
                raise ConcurrencyConflict(intent.id) from None
            return
        pointer = item_of(
            pk=t.sandbox_key_pk(intent.idempotency_key),
            sk=t.SANDBOX_KEY_SK,
            intent_id=intent.id,
        )
        try:
            await self._db.transact(
                [self._db.put_new(intent_item(intent)), self._db.put_new(pointer)]
            )
        except TransactionCancelled as cancelled:
            if cancelled.conflicted and "ConditionalCheckFailed" not in cancelled.reasons:
                raise ConcurrencyConflict(intent.id) from None
            raise AlreadyExists(intent.id) from None

    async def add_refund(
        self, refund: SandboxRefund, intent: SandboxIntent, expected_version: int
    ) -> None:
        try:
            await self._db.transact(
                [
                    self._db.put_new(refund_item(refund)),
                    self._guarded_put(intent, expected_version),
                ]
            )
        except TransactionCancelled as cancelled:
            if cancelled.reasons and cancelled.reasons[0] == "ConditionalCheckFailed":
                raise AlreadyExists(refund.idempotency_key) from None
            raise ConcurrencyConflict(intent.id) from None

    async def get_refund(self, intent_id: str, idempotency_key: str) -> SandboxRefund | None:
        item = await self._get(t.sandbox_pk(intent_id), t.sandbox_refund_sk(idempotency_key))
        return refund_of(item) if item is not None else None

    async def list_refunds(self, intent_id: str) -> list[SandboxRefund]:
        refunds = [
            refund_of(item)
            async for item in self._db.query(
                "pk = :pk AND begins_with(sk, :prefix)",
                {},
                {":pk": av(t.sandbox_pk(intent_id)), ":prefix": av(t.SANDBOX_REFUND_PREFIX)},
                consistent=True,
            )
        ]
        return sorted(refunds, key=lambda r: (r.created, r.id))
