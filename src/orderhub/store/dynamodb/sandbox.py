"""The sandbox provider's intents and refunds in DynamoDB.

An intent is `SANDBOX#<pi>` / `INTENT` (guarded by its `version`), its refunds live in the
same partition (`REFUND#<idempotency key>`), and `SANDBOXKEY#<key>` points from the
idempotency key the intent was created with to the intent; the intent and its pointer
are written in one transaction, a refund and its intent's new state in another."""

from __future__ import annotations

import json
from typing import Any

from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import ConditionFailed, DynamoEngine, TransactionCancelled
from orderhub.store.dynamodb.mappers import Item, av, item_of, plain
from orderhub.store.protocol import (
    AlreadyExists,
    ConcurrencyConflict,
    SandboxIntent,
    SandboxRefund,
)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def intent_item(intent: SandboxIntent) -> Item:
    return item_of(
        pk=t.sandbox_pk(intent.id),
        sk=t.SANDBOX_INTENT_SK,
        id=intent.id,
        client_secret=intent.client_secret,
        idempotency_key=intent.idempotency_key,
        amount=intent.amount,
        currency=intent.currency,
        status=intent.status,
        created=intent.created,
        metadata=_json(dict(intent.metadata)),
        refunded=intent.refunded,
        latest_charge=intent.latest_charge,
        payment_method=intent.payment_method,
        next_action=_json(intent.next_action),
        last_error=_json(intent.last_error),
        version=intent.version,
    )


def _loaded(item: Item, name: str) -> Any:
    return json.loads(item[name]["S"]) if name in item else None


def intent_of(item: Item) -> SandboxIntent:
    metadata = _loaded(item, "metadata") or {}
    return SandboxIntent(
        id=plain(item["id"]),
        client_secret=plain(item["client_secret"]),
        idempotency_key=plain(item["idempotency_key"]),
        amount=plain(item["amount"]),
        currency=plain(item["currency"]),
        status=plain(item["status"]),
        created=plain(item["created"]),
        metadata={str(k): str(v) for k, v in metadata.items()},
        refunded=plain(item["refunded"]),
        latest_charge=plain(item["latest_charge"]) if "latest_charge" in item else None,
        payment_method=plain(item["payment_method"]) if "payment_method" in item else None,
        next_action=_loaded(item, "next_action"),
        last_error=_loaded(item, "last_error"),
        version=plain(item["version"]),
    )


def refund_item(refund: SandboxRefund) -> Item:
    return item_of(
        pk=t.sandbox_pk(refund.intent_id),
        sk=t.sandbox_refund_sk(refund.idempotency_key),
        id=refund.id,
        intent_id=refund.intent_id,
        idempotency_key=refund.idempotency_key,
        amount=refund.amount,
        currency=refund.currency,
        status=refund.status,
        reason=refund.reason,
        created=refund.created,
    )


def refund_of(item: Item) -> SandboxRefund:
    return SandboxRefund(
        id=plain(item["id"]),
        intent_id=plain(item["intent_id"]),
        idempotency_key=plain(item["idempotency_key"]),
        amount=plain(item["amount"]),
        currency=plain(item["currency"]),
        status=plain(item["status"]),
        reason=plain(item["reason"]) if "reason" in item else None,
        created=plain(item["created"]),
    )


class DynamoSandboxRepository:
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def _get(self, pk: str, sk: str) -> Item | None:
        found = await self._db.call(
            "get_item", TableName=self._db.name, Key=t.Table.key(pk, sk), ConsistentRead=True
        )
        item: Item | None = found.get("Item")
        return item

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
                [
                    {
                        "Put": {
                            "TableName": self._db.name,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                    for item in (intent_item(intent), pointer)
                ]
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
                    {
                        "Put": {
                            "TableName": self._db.name,
                            "Item": refund_item(refund),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
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
