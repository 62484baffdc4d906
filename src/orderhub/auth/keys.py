"""API keys: generated once, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from orderhub.kit.clock import Clock
from orderhub.kit.ids import new_id, parse_uuid
from orderhub.store.protocol import ApiKeyRecord, Store

KEY_PREFIX = "oh_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: ApiKeyRecord
    key: str


class ApiKeyService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, name: str) -> CreatedKey:
        key = generate_key()
        record = ApiKeyRecord(
            id=new_id(),
            name=name,
            prefix=key[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(key),
            created_at=self._clock.now(),
            last_used_at=None,
            revoked_at=None,
        )
        await self._store.api_keys.add(record)
        return CreatedKey(record, key)

    async def list_all(self) -> list[ApiKeyRecord]:
        return await self._store.api_keys.list_all()

    async def revoke(self, key_id: str) -> bool:
        parsed = parse_uuid(key_id)
        if parsed is None:
            return False
        return await self._store.api_keys.revoke(parsed, self._clock.now())

    async def ensure_one_exists(self, env_keys: list[str]) -> CreatedKey | None:
        """First start with no key at all: create one (its plain text is returned once)."""
        if env_keys:
            return None
        if await self._store.api_keys.count_active() > 0:
            return None
        return await self.create("default")
