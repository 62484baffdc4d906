"""The outbox rules (pure): fan-out, leasing and lost-lease takeover, outcomes, backlog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderhub.delivery.model import (
    EMAIL_EVENTS,
    LOST_ATTEMPT,
    DeliveryStatus,
    Integration,
    attempt_of,
    backlog_change,
    claimed,
    delivered,
    delivery_targets,
    failed,
    fan_out,
    is_due,
    postponed,
    released,
    retried,
)
from orderhub.orders.domain import EventSource, EventType
from orderhub.store.counting import transition_counters
from tests.fixtures.domain import make_order

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=1)


def _one() -> object:
    order = make_order(at=NOW)
    (delivery,) = fan_out(order.take_events(), delivery_targets([Integration.EMAIL]), NOW)
    return delivery


def test_fan_out_follows_the_routes_among_configured_integrations() -> None:
    order = make_order(at=NOW)
    order.record_payment_succeeded(NOW, EventSource.WEBHOOK)
    events = order.take_events()
    made = fan_out(events, delivery_targets([Integration.EMAIL, Integration.SHEETS]), NOW)
    assert sorted((d.event_type.value, d.integration.value) for d in made) == [
        ("order.created", "email"),
        ("order.created", "sheets"),
        ("order.paid", "email"),
        ("order.paid", "sheets"),
    ]
    assert {d.status for d in made} == {DeliveryStatus.PENDING}
    assert all(d.next_attempt_at == NOW and d.attempts == 0 for d in made)
    assert EventType.PROCESSING not in EMAIL_EVENTS
    assert fan_out(events, delivery_targets([]), NOW) == []


def test_claiming_and_taking_over_a_lost_lease() -> None:
    delivery = _one()
    leased = claimed(delivery, "w1", LEASE, None)  # type: ignore[arg-type]
    assert (leased.status, leased.lease_owner, leased.attempts) == (
        DeliveryStatus.IN_FLIGHT,
        "w1",
        0,
    )
    assert not is_due(leased, NOW) and is_due(leased, LEASE)
    taken = claimed(leased, "w2", LEASE + timedelta(minutes=1), NOW - timedelta(hours=24))
    assert (taken.lease_owner, taken.attempts, taken.last_error) == ("w2", 1, LOST_ATTEMPT)
    too_old = claimed(leased, "w2", LEASE, NOW + timedelta(seconds=1))
    assert (too_old.status, too_old.lease_owner, too_old.attempts) == (
        DeliveryStatus.DEAD,
        None,
        1,
    )


def test_outcomes_and_their_backlog_and_attempts() -> None:
    leased = claimed(_one(), "w1", LEASE, None)  # type: ignore[arg-type]
    done = delivered(leased, NOW)
    assert (done.status, done.attempts, done.lease_owner) == (DeliveryStatus.DELIVERED, 1, None)
    assert backlog_change(leased, done) == -1 and backlog_change(None, leased) == 1
    again = failed(leased, "x" * 5000, NOW + timedelta(seconds=2))
    assert again.status == DeliveryStatus.PENDING and len(again.last_error or "") == 2000
    assert backlog_change(leased, again) == 0
    dead = failed(leased, "410 Gone", None)
    assert dead.status == DeliveryStatus.DEAD and dead.next_attempt_at == leased.next_attempt_at
    assert attempt_of(dead, NOW, 7).outcome == "dead"
    assert attempt_of(done, NOW, 7).error is None
    back = retried(dead, NOW + timedelta(hours=1))
    assert (back.status, back.attempts, back.event_at) == (
        DeliveryStatus.PENDING,
        0,
        NOW + timedelta(hours=1),
    )
    assert released(leased).status == DeliveryStatus.PENDING
    later = postponed(leased, NOW + timedelta(seconds=1))
    assert (later.status, later.attempts, later.lease_owner, later.next_attempt_at) == (
        DeliveryStatus.PENDING,
        leased.attempts,
        None,
        NOW + timedelta(seconds=1),
    )
    assert backlog_change(leased, later) == 0


def test_transition_counters_count_the_attempt_and_the_backlog() -> None:
    leased = claimed(_one(), "w1", LEASE, None)  # type: ignore[arg-type]
    done = delivered(leased, NOW)
    counters = transition_counters(leased, done, attempt_of(done, NOW, 3))
    assert sorted(metric for _hour, metric in counters.hourly) == ["calls:email"]
    assert counters.gauges == {"backlog": -1}
    dead = failed(leased, "410", None)
    counters = transition_counters(leased, dead, attempt_of(dead, NOW, 3))
    assert sorted(metric for _hour, metric in counters.hourly) == ["calls:email", "errors:email"]
    assert not transition_counters(_one(), leased, None)  # type: ignore[arg-type]
