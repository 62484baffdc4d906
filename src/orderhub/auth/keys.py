"""API keys: generated once, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from orderhub.kit.clock import Clock
from orderhub.kit.ids import new_id, parse_uuid
from orderhub.store.protocol import ApiKeyRecord, Store

KEY_PREFIX = "oh_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


# A stored key found by its hash is believed for this long without asking the store again,
# so a revocation made elsewhere (another instance, `orderhub keys revoke`) takes effect
# within this time; a revocation through this process's own ApiKeyService at once.
KEY_CACHE_SECONDS = 1.0
KEY_CACHE_LIMIT = 1024


class KeyCache:
    """Stored API keys recently found active, by hash: key hash -> key id, each kept for
    `KEY_CACHE_SECONDS`. Only keys the store confirmed are kept (an unknown key is asked
    for every time), at most `KEY_CACHE_LIMIT` of them."""

    def __init__(
        self,
        seconds: float = KEY_CACHE_SECONDS,
        *,
        limit: int = KEY_CACHE_LIMIT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._limit = limit
        self._monotonic = monotonic
        self._known: dict[str, tuple[float, uuid.UUID]] = {}

    def get(self, key_hash: str) -> uuid.UUID | None:
        entry = self._known.get(key_hash)
        if entry is None:
            return None
        expires, key_id = entry
        if self._monotonic() >= expires:
            del self._known[key_hash]
            return None
        return key_id

    def put(self, key_hash: str, key_id: uuid.UUID) -> None:
        if self._seconds <= 0:
            return
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[key_hash] = (self._monotonic() + self._seconds, key_id)

    def clear(self) -> None:
        self._known.clear()


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: ApiKeyRecord
    key: str


class ApiKeyService:
    def __init__(self, store: Store, clock: Clock, cache: KeyCache | None = None) -> None:
        self._store = store
        self._clock = clock
        self._cache = cache

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
        revoked = await self._store.api_keys.revoke(parsed, self._clock.now())
        if self._cache is not None:
            self._cache.clear()  # this process stops accepting it at once
        return revoked

    async def ensure_one_exists(self, env_keys: list[str]) -> CreatedKey | None:
        """First start with no key at all: create one (its plain text is returned once)."""
        if env_keys:
            return None
        if await self._store.api_keys.count_active() > 0:
            return None
        return await self.create("default")
