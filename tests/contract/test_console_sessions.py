"""The operator console's sessions, on every store: added, read until their idle expiry,
extended, and gone at once when deleted."""

from __future__ import annotations

from datetime import timedelta

from orderhub.store.protocol import ConsoleSession, Store
from tests.fixtures.domain import NOW


def _session(token: str, expires_in: timedelta = timedelta(hours=8)) -> ConsoleSession:
    return ConsoleSession(
        token_hash=token * 64,
        key_hash="k" * 64,
        identity="key:0190f5a0-0000-7000-8000-000000000001",
        created_at=NOW,
        expires_at=NOW + expires_in,
    )


async def test_a_session_is_read_back_until_it_expires(store: Store) -> None:
    session = _session("a")
    await store.console_sessions.add(session)
    assert await store.console_sessions.get(session.token_hash, NOW) == session
    assert await store.console_sessions.get("b" * 64, NOW) is None
    almost = NOW + timedelta(hours=8) - timedelta(milliseconds=1)
    assert await store.console_sessions.get(session.token_hash, almost) == session
    assert await store.console_sessions.get(session.token_hash, NOW + timedelta(hours=8)) is None


async def test_extending_moves_the_idle_expiry(store: Store) -> None:
    session = _session("a")
    await store.console_sessions.add(session)
    later = NOW + timedelta(hours=12)
    await store.console_sessions.extend(session.token_hash, later)
    found = await store.console_sessions.get(session.token_hash, NOW + timedelta(hours=9))
    assert found is not None and found.expires_at == later
    assert await store.console_sessions.get(session.token_hash, later) is None


async def test_deleting_ends_a_session_at_once_and_only_that_one(store: Store) -> None:
    one, other = _session("a"), _session("c")
    await store.console_sessions.add(one)
    await store.console_sessions.add(other)
    await store.console_sessions.delete(one.token_hash)
    assert await store.console_sessions.get(one.token_hash, NOW) is None
    assert await store.console_sessions.get(other.token_hash, NOW) == other
    # deleting again, or extending a deleted session, changes nothing
    await store.console_sessions.delete(one.token_hash)
    await store.console_sessions.extend(one.token_hash, NOW + timedelta(hours=20))
    assert await store.console_sessions.get(one.token_hash, NOW) is None


async def test_a_new_session_does_not_revive_expired_ones(store: Store) -> None:
    stale = _session("a", timedelta(minutes=1))
    await store.console_sessions.add(stale)
    fresh = ConsoleSession(
        token_hash="d" * 64,
        key_hash="k" * 64,
        identity="env:0123456789abcdef",
        created_at=NOW + timedelta(minutes=2),
        expires_at=NOW + timedelta(hours=8, minutes=2),
    )
    await store.console_sessions.add(fresh)
    assert await store.console_sessions.get(stale.token_hash, NOW + timedelta(minutes=2)) is None
    assert await store.console_sessions.get(fresh.token_hash, NOW + timedelta(minutes=2)) == fresh
