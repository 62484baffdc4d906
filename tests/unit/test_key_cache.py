"""The cache of stored API keys found by hash (auth/keys.py): believed for a second, so a
revocation made elsewhere takes effect within that second."""

from __future__ import annotations

import uuid

from orderhub.auth.keys import KeyCache


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_believed_for_its_second_and_no_longer() -> None:
    clock = FakeMonotonic()
    cache = KeyCache(1.0, monotonic=clock)
    key_id = uuid.uuid4()
    cache.put("hash-a", key_id)
    clock.now += 0.999
    assert cache.get("hash-a") == key_id
    clock.now += 0.001
    assert cache.get("hash-a") is None
    assert cache.get("hash-a") is None  # forgotten, not revived


def test_an_unknown_hash_is_not_known() -> None:
    assert KeyCache(1.0, monotonic=FakeMonotonic()).get("never-put") is None


def test_clear_forgets_every_key() -> None:
    cache = KeyCache(1.0, monotonic=FakeMonotonic())
    cache.put("hash-a", uuid.uuid4())
    cache.clear()
    assert cache.get("hash-a") is None


def test_the_cache_stays_within_its_limit() -> None:
    cache = KeyCache(1.0, limit=3, monotonic=FakeMonotonic())
    ids = [uuid.uuid4() for _ in range(4)]
    for n, key_id in enumerate(ids):
        cache.put(f"hash-{n}", key_id)
    kept = [cache.get(f"hash-{n}") for n in range(4)]
    assert sum(k is not None for k in kept) <= 3
    assert kept[3] == ids[3]  # the newest is kept


def test_zero_seconds_caches_nothing() -> None:
    cache = KeyCache(0.0, monotonic=FakeMonotonic())
    cache.put("hash-a", uuid.uuid4())
    assert cache.get("hash-a") is None
