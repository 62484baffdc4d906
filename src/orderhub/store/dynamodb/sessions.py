"""The operator console's sessions in DynamoDB: one item per session,
`SESSION#<token hash>` / `SESSION`, removed by TTL once expired (and never returned
after its expiry, TTL or not)."""

from __future__ import annotations

import contextlib
from datetime import datetime

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import ConditionFailed, DynamoEngine
from orderhub.store.dynamodb.mappers import av, item_of, values
from orderhub.store.protocol import ConsoleSession


def _key(token_hash: str) -> dict[str, dict[str, str]]:
    return t.Table.key(t.console_session_pk(token_hash), t.CONSOLE_SESSION_SK)


class DynamoConsoleSessionRepository:
    def __init__(self, db: DynamoEngine) -> None:
        self._db = db

    async def add(self, session: ConsoleSession) -> None:
        await self._db.call(
            "put_item",
            TableName=self._db.name,
            Item={
                **_key(session.token_hash),
                **item_of(
                    key_hash=session.key_hash,
                    identity=session.identity,
                    created_at=epoch_ms(session.created_at),
                    expires_at=epoch_ms(session.expires_at),
                    expires=t.ttl_seconds(session.expires_at),
                ),
            },
        )

    async def get(self, token_hash: str, now: datetime) -> ConsoleSession | None:
        found = await self._db.call(
            "get_item", TableName=self._db.name, Key=_key(token_hash), ConsistentRead=True
        )
        item = found.get("Item")
        if item is None:
            return None
        v = values(item)
        if v["expires_at"] <= epoch_ms(now):
            return None  # TTL deletes some time after the expiry, not at it
        return ConsoleSession(
            token_hash=token_hash,
            key_hash=v["key_hash"],
            identity=v["identity"],
            created_at=from_epoch_ms(v["created_at"]),
            expires_at=from_epoch_ms(v["expires_at"]),
        )

    async def extend(self, token_hash: str, expires_at: datetime) -> None:
        with contextlib.suppress(ConditionFailed):  # signed out meanwhile: stays gone
            await self._db.call(
                "update_item",
                TableName=self._db.name,
                Key=_key(token_hash),
                UpdateExpression="SET expires_at = :at, expires = :ttl",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={
                    ":at": av(epoch_ms(expires_at)),
                    ":ttl": av(t.ttl_seconds(expires_at)),
                },
            )

    async def delete(self, token_hash: str) -> None:
        await self._db.call("delete_item", TableName=self._db.name, Key=_key(token_hash))
