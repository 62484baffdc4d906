"""Whether more CPU would help the worker drain what a full lease holds (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from orderhub.delivery.model import DueDelivery, Integration, delivery_targets, fan_out
from orderhub.delivery.pace import ReceiverPace
from tests.fixtures.domain import make_order

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _due(*integrations: Integration) -> list[DueDelivery]:
    order = make_order(at=NOW)
    events = order.take_events()
    made = fan_out(events, delivery_targets(list(Integration)), NOW)
    by_integration = {d.integration: d for d in made}
    return [DueDelivery(by_integration[i], events[0], order) for i in integrations]


def test_a_receiver_is_slow_when_even_its_quickest_recent_send_was() -> None:
    pace = ReceiverPace(slow_seconds=1.0, recent=3)
    assert not pace.slow(Integration.EMAIL)  # nothing known: not slow
    for seconds in (2.1, 2.0, 2.3):
        pace.record(Integration.EMAIL, seconds)
    assert pace.slow(Integration.EMAIL)
    # one quick send among them: a starved loop, not a slow receiver
    pace.record(Integration.EMAIL, 0.05)
    assert not pace.slow(Integration.EMAIL)
    # only the recent sends count: once three slow ones followed, it is slow again
    for seconds in (1.5, 1.2, 1.0):
        pace.record(Integration.EMAIL, seconds)
    assert pace.slow(Integration.EMAIL)
    assert not pace.slow(Integration.NOTIFICATIONS)  # per integration


def test_more_cpu_helps_only_when_no_delivery_of_the_lease_goes_to_a_slow_receiver() -> None:
    """A batch is done when its slowest send is: one slow receiver in it sets its pace."""
    pace = ReceiverPace(slow_seconds=1.0)
    pace.record(Integration.EMAIL, 2.0)
    pace.record(Integration.NOTIFICATIONS, 0.01)
    email, sheets, notify = Integration.EMAIL, Integration.SHEETS, Integration.NOTIFICATIONS
    assert pace.more_cpu_would_help(_due(notify, sheets))  # sheets: nothing known yet
    assert pace.more_cpu_would_help(_due(notify))
    assert not pace.more_cpu_would_help(_due(notify, sheets, email))
    assert not pace.more_cpu_would_help(_due(email))
    pace.record(Integration.SHEETS, 3.0)
    assert not pace.more_cpu_would_help(_due(sheets, notify))
