"""The shared part of the repositories whose writes move counters: a delivery's
transitions and the provider calls. The rules come from `delivery.model` and
`monitoring.rollups`; a backend writes the counters it is handed with the write itself."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from orderhub.delivery.model import Delivery, DeliveryAttempt, backlog_change
from orderhub.monitoring.rollups import BACKLOG, Counters, call_counters, shard_of
from orderhub.store.protocol import ProviderCall, Transition


def transition_counters(
    before: Delivery, after: Delivery, attempt: DeliveryAttempt | None
) -> Counters:
    counters = (
        call_counters(after.id, after.integration.value, attempt.outcome == "delivered", attempt.at)
        if attempt is not None
        else Counters(shard_of(after.id))
    )
    backlog = backlog_change(before, after)
    if backlog:
        counters.gauges[BACKLOG] = backlog
    return counters


def added_counters(deliveries: list[Delivery]) -> Counters:
    """What adding new pending deliveries moves: the backlog."""
    counters = Counters(shard_of(deliveries[0].id))
    counters.gauges[BACKLOG] = sum(backlog_change(None, d) for d in deliveries)
    return counters


@dataclass(frozen=True, slots=True)
class CountedTransition:
    """A delivery's change (`before` -> `after`, with the attempt that made it, if any)
    and the counters it moves, which a backend writes with the change itself."""

    before: Delivery
    after: Delivery
    attempt: DeliveryAttempt | None
    counters: Counters

    @classmethod
    def of(
        cls, before: Delivery, after: Delivery, attempt: DeliveryAttempt | None = None
    ) -> CountedTransition:
        return cls(before, after, attempt, transition_counters(before, after, attempt))


class DeliveryTransitions(ABC):
    async def transition(
        self, before: Delivery, after: Delivery, attempt: DeliveryAttempt | None = None
    ) -> bool:
        return await self._transition(CountedTransition.of(before, after, attempt))

    async def transition_many(self, changes: Sequence[Transition]) -> list[bool]:
        return await self._transition_many([CountedTransition.of(*change) for change in changes])

    @abstractmethod
    async def _transition(self, change: CountedTransition) -> bool: ...

    @abstractmethod
    async def _transition_many(self, changes: list[CountedTransition]) -> list[bool]: ...


class ProviderCallCounting(ABC):
    async def record_provider_call(self, call: ProviderCall) -> None:
        await self._record_provider_call(
            call, call_counters(call.id, call.provider, call.ok, call.at)
        )

    @abstractmethod
    async def _record_provider_call(self, call: ProviderCall, counters: Counters) -> None: ...
