"""The sandbox provider's state, on every store (SQLite, PostgreSQL, DynamoDB), through the
`Store` protocol only."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from orderhub.store.protocol import (
    AlreadyExists,
    ConcurrencyConflict,
    SandboxIntent,
    SandboxRefund,
    Store,
)
from tests.fixtures.stores import open_test_store


def make_intent(**changes: object) -> SandboxIntent:
    intent_id = f"pi_{uuid.uuid4().hex[:24]}"
    values: dict[str, object] = {
        "id": intent_id,
        "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:24]}",
        "idempotency_key": f"order:{uuid.uuid4()}",
        "amount": 10997,
        "currency": "usd",
        "status": "requires_payment_method",
        "created": 1_767_323_045,
        "metadata": {"orderId": "o-1", "note": "<b>é</b>"},
    }
    values.update(changes)
    return SandboxIntent(**values)  # type: ignore[arg-type]


def make_refund(intent: SandboxIntent, key: str, amount: int, created: int = 100) -> SandboxRefund:
    return SandboxRefund(
        id=f"re_{uuid.uuid4().hex[:24]}",
        intent_id=intent.id,
        idempotency_key=key,
        amount=amount,
        currency=intent.currency,
        status="succeeded",
        reason=None,
        created=created,
    )


async def test_an_intent_is_read_back_as_written_by_id_and_by_key(store: Store) -> None:
    intent = make_intent()
    assert await store.sandbox.get_intent(intent.id) is None
    assert await store.sandbox.intent_for_key(intent.idempotency_key) is None
    await store.sandbox.put_intent(intent, None)
    assert await store.sandbox.get_intent(intent.id) == intent
    assert await store.sandbox.intent_for_key(intent.idempotency_key) == intent
    assert await store.sandbox.get_intent("pi_missing") is None


async def test_every_field_round_trips(store: Store) -> None:
    intent = make_intent(
        status="requires_action",
        latest_charge="ch_1",
        payment_method="pm_card_authenticationRequired",
        next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure"}},
        last_error={"code": "card_declined", "decline_code": "generic_decline"},
        refunded=5,
        version=3,
        metadata={},
    )
    await store.sandbox.put_intent(intent, None)
    assert await store.sandbox.get_intent(intent.id) == intent


async def test_inserting_a_taken_id_or_idempotency_key_is_already_exists(store: Store) -> None:
    intent = make_intent()
    await store.sandbox.put_intent(intent, None)
    with pytest.raises(AlreadyExists):
        await store.sandbox.put_intent(dataclasses.replace(intent, idempotency_key="other"), None)
    other = make_intent(idempotency_key=intent.idempotency_key)
    with pytest.raises(AlreadyExists):
        await store.sandbox.put_intent(other, None)
    assert await store.sandbox.get_intent(other.id) is None
    assert await store.sandbox.intent_for_key(intent.idempotency_key) == intent


async def test_a_replace_is_guarded_by_the_version(store: Store) -> None:
    intent = make_intent()
    await store.sandbox.put_intent(intent, None)
    paid = dataclasses.replace(intent, status="succeeded", latest_charge="ch_x", version=2)
    await store.sandbox.put_intent(paid, 1)
    assert await store.sandbox.get_intent(intent.id) == paid
    with pytest.raises(ConcurrencyConflict):
        await store.sandbox.put_intent(dataclasses.replace(intent, status="canceled"), 1)
    assert await store.sandbox.get_intent(intent.id) == paid
    with pytest.raises(ConcurrencyConflict):
        await store.sandbox.put_intent(make_intent(version=2), 1)  # absent


async def test_one_of_two_concurrent_replaces_wins(store: Store) -> None:
    intent = make_intent()
    await store.sandbox.put_intent(intent, None)
    changes = [
        dataclasses.replace(intent, status=status, version=2)
        for status in ("succeeded", "canceled")
    ]
    results = await asyncio.gather(
        *(store.sandbox.put_intent(change, 1) for change in changes), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyConflict", "NoneType"]
    stored = await store.sandbox.get_intent(intent.id)
    assert stored == changes[results.index(None)]


async def test_refunds_are_added_with_their_intent_and_listed_oldest_first(store: Store) -> None:
    intent = make_intent(status="succeeded")
    await store.sandbox.put_intent(intent, None)
    first = make_refund(intent, "r-1", 1000, created=200)
    after_first = dataclasses.replace(intent, refunded=1000, version=2)
    await store.sandbox.add_refund(first, after_first, 1)
    second = make_refund(intent, "r-2", 997, created=100)
    after_second = dataclasses.replace(after_first, refunded=1997, version=3)
    await store.sandbox.add_refund(second, after_second, 2)
    assert await store.sandbox.get_intent(intent.id) == after_second
    assert await store.sandbox.list_refunds(intent.id) == [second, first]
    assert await store.sandbox.get_refund(intent.id, "r-1") == first
    assert await store.sandbox.get_refund(intent.id, "r-3") is None
    assert await store.sandbox.list_refunds("pi_other") == []


async def test_a_refund_key_is_used_once_and_nothing_is_half_written(store: Store) -> None:
    intent = make_intent(status="succeeded")
    await store.sandbox.put_intent(intent, None)
    refund = make_refund(intent, "r-1", 1000)
    await store.sandbox.add_refund(refund, dataclasses.replace(intent, refunded=1000, version=2), 1)
    again = make_refund(intent, "r-1", 500)
    with pytest.raises(AlreadyExists):
        await store.sandbox.add_refund(
            again, dataclasses.replace(intent, refunded=1500, version=3), 2
        )
    stale = make_refund(intent, "r-2", 500)
    with pytest.raises(ConcurrencyConflict):
        await store.sandbox.add_refund(
            stale, dataclasses.replace(intent, refunded=500, version=2), 1
        )
    assert await store.sandbox.list_refunds(intent.id) == [refund]
    stored = await store.sandbox.get_intent(intent.id)
    assert stored is not None and (stored.refunded, stored.version) == (1000, 2)


async def test_concurrent_refunds_of_one_intent_never_both_pass_one_version(store: Store) -> None:
    intent = make_intent(status="succeeded")
    await store.sandbox.put_intent(intent, None)
    attempts = [
        store.sandbox.add_refund(
            make_refund(intent, f"r-{n}", 6000),
            dataclasses.replace(intent, refunded=6000, version=2),
            1,
        )
        for n in range(2)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyConflict", "NoneType"]
    assert len(await store.sandbox.list_refunds(intent.id)) == 1


async def test_another_store_instance_sees_the_same_intents(
    store: Store, database_url: str
) -> None:
    intent = make_intent()
    await store.sandbox.put_intent(intent, None)
    other = open_test_store(database_url)
    try:
        assert await other.sandbox.get_intent(intent.id) == intent
        paid = dataclasses.replace(intent, status="succeeded", version=2)
        await other.sandbox.put_intent(paid, 1)
    finally:
        await other.close()
    assert await store.sandbox.get_intent(intent.id) == paid
