"""Single-record repositories in DynamoDB: API keys, idempotency keys, webhook event ids,
named leases, the error log. Each operation is one conditional write (or a small
transaction) of its own, outside any unit of work."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

from orderhub.kit.clock import epoch_ms
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import (
    ConditionFailed,
    DynamoEngine,
    TransactionCancelled,
    first_items,
)
from orderhub.store.dynamodb.mappers import (
    api_key_item,
    av,
    error_item,
    idempotency_item,
    item_of,
    values,
)
from orderhub.store.mapping import (
    api_key_from,
    error_entry_from,
    idempotency_from,
)
from orderhub.store.protocol import (
    AlreadyExists,
    ApiKeyRecord,
    ErrorEntry,
    IdempotencyRecord,
    StoreError,
)


class DynamoApiKeyRepository:
    """Keys live in one small partition (`APIKEYS`, one item per key); a second item
    keyed by the hash finds a key by its hash with a strongly consistent GetItem."""

    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    def _key(self, key_id: uuid.UUID | str) -> dict[str, Any]:
        return t.Table.key(t.API_KEYS_PK, str(key_id))

    async def add(self, record: ApiKeyRecord) -> None:
        item = api_key_item(record)
        pointer = item_of(pk=t.api_key_hash_pk(record.key_hash), sk="APIKEY", key_id=str(record.id))
        try:
            await self._db.transact([self._db.put_new(item), self._db.put_new(pointer)])
        except TransactionCancelled:
            raise AlreadyExists("an API key with that id or hash exists") from None

    async def find_active_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        pointer = await self._db.get(t.Table.key(t.api_key_hash_pk(key_hash), "APIKEY"))
        if pointer is None:
            return None
        item = await self._db.get(self._key(pointer["key_id"]["S"]))
        if item is None or "revoked_at" in item:
            return None
        return api_key_from(values(item))

    async def _all(self) -> list[ApiKeyRecord]:
        return [
            api_key_from(values(item))
            async for item in self._db.query(
                "pk = :pk", {}, {":pk": {"S": t.API_KEYS_PK}}, consistent=True
            )
        ]

    async def list_all(self) -> list[ApiKeyRecord]:
        return sorted(await self._all(), key=lambda r: (r.created_at, str(r.id)))

    async def revoke(self, key_id: uuid.UUID, at: datetime) -> bool:
        try:
            await self._db.call(
                "update_item",
                TableName=self._db.name,
                Key=self._key(key_id),
                UpdateExpression="SET revoked_at = :at",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues={":at": av(epoch_ms(at))},
            )
        except ConditionFailed:
            return False
        return True

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        with contextlib.suppress(ConditionFailed):  # no such key: nothing to record
            await self._db.call(
                "update_item",
                TableName=self._db.name,
                Key=self._key(key_id),
                UpdateExpression="SET last_used_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":at": av(epoch_ms(at))},
            )

    async def count_active(self) -> int:
        return sum(1 for record in await self._all() if record.revoked_at is None)


class DynamoIdempotencyRepository:
    """One item per (scope, key), with `expires` as its TTL; an expired item counts as
    absent for every read, whether or not DynamoDB has deleted it yet."""

    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def claim(
        self, candidate: IdempotencyRecord, now: datetime
    ) -> tuple[bool, IdempotencyRecord]:
        now_ms = av(epoch_ms(now))
        fresh = idempotency_item(candidate)
        for attribute in ("status_code", "response_body"):
            fresh.pop(attribute, None)
        key = t.Table.key(t.idempotency_pk(candidate.scope, candidate.key), "IDEM")
        for _attempt in range(5):
            # Insert when there is none, or only an expired one.
            with contextlib.suppress(ConditionFailed):
                await self._db.call(
                    "put_item",
                    TableName=self._db.name,
                    Item=fresh,
                    ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                    ExpressionAttributeValues={":now": now_ms},
                )
                return True, idempotency_from(values(fresh))
            # Take over an abandoned attempt of the same request (lock expired or
            # released, no response kept), keeping its resource id.
            lock = (
                ("SET locked_until = :lu", {":lu": av(epoch_ms(candidate.locked_until))})
                if candidate.locked_until is not None
                else ("REMOVE locked_until", {})
            )
            with contextlib.suppress(ConditionFailed):
                taken = await self._db.call(
                    "update_item",
                    TableName=self._db.name,
                    Key=key,
                    UpdateExpression=lock[0],
                    ConditionExpression=(
                        "attribute_exists(pk) AND expires_at > :now AND fingerprint = :fp"
                        " AND attribute_not_exists(status_code)"
                        " AND (attribute_not_exists(locked_until) OR locked_until <= :now)"
                    ),
                    ExpressionAttributeValues={
                        ":now": now_ms,
                        ":fp": av(candidate.fingerprint),
                        **lock[1],
                    },
                    ReturnValues="ALL_NEW",
                )
                return True, idempotency_from(values(taken["Attributes"]))
            stored = await self._db.get(key)
            if stored is not None and idempotency_from(values(stored)).expires_at > now:
                return False, idempotency_from(values(stored))
            # gone or expired between our writes and our read: try again
        raise StoreError("idempotency record kept changing")

    async def purge_expired(self, now: datetime) -> int:
        """Nothing to do: DynamoDB's TTL deletes expired records (`expires`), and every
        read treats an expired one as absent meanwhile."""
        return 0

    async def complete(
        self, scope: str, key: str, status_code: int, body: bytes, expires_at: datetime
    ) -> None:
        with contextlib.suppress(ConditionFailed):  # forgotten meanwhile: nothing to complete
            await self._db.call(
                "update_item",
                TableName=self._db.name,
                Key=t.Table.key(t.idempotency_pk(scope, key), "IDEM"),
                UpdateExpression=(
                    "SET status_code = :s, response_body = :b, expires_at = :e, expires = :ttl "
                    "REMOVE locked_until"
                ),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={
                    ":s": av(status_code),
                    ":b": av(body),
                    ":e": av(epoch_ms(expires_at)),
                    ":ttl": av(t.ttl_seconds(expires_at)),
                },
            )

    async def release(self, scope: str, key: str, *, forget: bool) -> None:
        item_key = t.Table.key(t.idempotency_pk(scope, key), "IDEM")
        if forget:
            await self._db.call("delete_item", TableName=self._db.name, Key=item_key)
            return
        with contextlib.suppress(ConditionFailed):
            await self._db.call(
                "update_item",
                TableName=self._db.name,
                Key=item_key,
                UpdateExpression="REMOVE locked_until",
                ConditionExpression="attribute_exists(pk)",
            )


class DynamoErrorLogRepository:
    """Entries by id, and in the `errors_by_time` index (one partition: errors are few,
    and their TTL keeps the partition to a week)."""

    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def record(self, entry: ErrorEntry) -> None:
        await self._db.call("put_item", TableName=self._db.name, Item=error_item(entry))

    async def recent(self, limit: int, since: datetime) -> list[ErrorEntry]:
        newest = self._db.query(
            "ge_pk = :e AND ge_sk >= :since",
            {},
            {":e": av(t.ERRORS_PK), ":since": av(t.padded(epoch_ms(since)))},
            index="errors_by_time",
            forward=False,
            page_size=limit,
        )
        return [error_entry_from(values(item)) for item in await first_items(newest, limit)]


class DynamoWebhookEventRepository:
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def begin(self, event_id: str, event_type: str, now: datetime) -> bool:
        key = t.Table.key(t.webhook_pk(event_id), "WEBHOOK")
        try:
            await self._db.call(
                "put_item",
                TableName=self._db.name,
                Item={**key, **item_of(type=event_type, received_at=epoch_ms(now))},
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except ConditionFailed:
            stored = await self._db.get(key)
            return stored is None or "handled_at" not in stored

    async def finish(self, event_id: str, outcome: str, error: str | None, now: datetime) -> None:
        vals: dict[str, Any] = {":h": av(epoch_ms(now)), ":o": av(outcome)}
        if error is not None:
            vals[":e"] = av(error)
        with contextlib.suppress(ConditionFailed):  # never begun: nothing to finish
            await self._db.call(
                "update_item",
                TableName=self._db.name,
                Key=t.Table.key(t.webhook_pk(event_id), "WEBHOOK"),
                UpdateExpression="SET handled_at = :h, outcome = :o"
                + (", #e = :e" if error is not None else " REMOVE #e"),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#e": "error"},
                ExpressionAttributeValues=vals,
            )


class DynamoLeaseRepository:
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def acquire(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        try:
            await self._db.call(
                "put_item",
                TableName=self._db.name,
                Item={
                    **t.Table.key(t.lease_pk(name), "LEASE"),
                    **item_of(owner=owner, until=epoch_ms(until)),
                },
                ConditionExpression=("attribute_not_exists(pk) OR #o = :owner OR #u <= :now"),
                ExpressionAttributeNames={"#o": "owner", "#u": "until"},
                ExpressionAttributeValues={":owner": av(owner), ":now": av(epoch_ms(now))},
            )
        except ConditionFailed:
            return False  # held by someone else
        return True

    async def release(self, name: str, owner: str) -> None:
        with contextlib.suppress(ConditionFailed):  # not ours (any more): no effect
            await self._db.call(
                "delete_item",
                TableName=self._db.name,
                Key=t.Table.key(t.lease_pk(name), "LEASE"),
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": av(owner)},
            )
