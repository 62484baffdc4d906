"""Whether more CPU would help the worker drain what a full lease holds (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from orderhub.delivery.model import DueDelivery, Integration, delivery_targets, fan_out
from orderhub.delivery.pace import ReceiverPace
from tests.fixtures.domain import make_order

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
EMAIL, SHEETS, NOTIFY = Integration.EMAIL, Integration.SHEETS, Integration.NOTIFICATIONS


def _due(*integrations: Integration) -> list[DueDelivery]:
    order = make_order(at=NOW)
    events = order.take_events()
    made = fan_out(events, delivery_targets(list(Integration)), NOW)
    by_integration = {d.integration: d for d in made}
    return [DueDelivery(by_integration[i], events[0], order) for i in integrations]


def test_a_receiver_is_slow_when_even_its_quickest_recent_send_was() -> None:
    pace = ReceiverPace(slow_seconds=1.0, recent=3)
    assert not pace.slow(EMAIL, 10.0)  # nothing known: not slow
    for seconds in (2.1, 2.0, 2.3):
        pace.record(EMAIL, seconds, 10.0)
    assert pace.slow(EMAIL, 10.0)
    # one quick send among them: the receiver can answer quickly
    pace.record(EMAIL, 0.05, 11.0)
    assert not pace.slow(EMAIL, 11.0)
    # only the recent sends count: once three slow ones followed, it is slow again
    for seconds in (1.5, 1.2, 1.0):
        pace.record(EMAIL, seconds, 12.0)
    assert pace.slow(EMAIL, 12.0)
    assert not pace.slow(NOTIFY, 12.0)  # per integration


def test_what_a_receiver_did_long_ago_is_forgotten() -> None:
    """A receiver once slow is measured again: its old sends stop counting."""
    pace = ReceiverPace(slow_seconds=1.0, forget_after=60.0)
    pace.record(EMAIL, 2.0, 100.0)
    assert pace.slow(EMAIL, 159.0)
    assert not pace.slow(EMAIL, 161.0)


def test_more_cpu_helps_only_when_no_send_the_batch_waits_for_goes_to_a_slow_receiver() -> None:
    """A batch is done when its slowest send is: one slow receiver in it sets its pace.
    Sheet rows are written by their own task, which the batch does not wait for."""
    pace = ReceiverPace(slow_seconds=1.0)
    pace.record(EMAIL, 2.0, 1.0)
    pace.record(NOTIFY, 0.01, 1.0)
    assert pace.more_cpu_would_help(_due(NOTIFY, SHEETS), 1.0)
    assert pace.more_cpu_would_help(_due(NOTIFY), 1.0)
    assert not pace.more_cpu_would_help(_due(NOTIFY, SHEETS, EMAIL), 1.0)
    assert not pace.more_cpu_would_help(_due(EMAIL), 1.0)
    pace.record(SHEETS, 3.0, 1.0)  # however long a sheet write took
    assert pace.more_cpu_would_help(_due(SHEETS, NOTIFY), 1.0)
