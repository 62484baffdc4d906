"""How quickly each integration's receiver answers, as the worker sees it: whether a
backlog would drain faster if the worker had more CPU.

The in-process worker holds `kit.backpressure` while it is behind. That helps when the
worker is starved of CPU by a saturated API: intake slows, the worker gets the loop, the
backlog drains. It does not help when a receiver is slow (an SMTP server taking 2 s per
message): the worker is then waiting on the network, more CPU changes nothing, and
holding the intake would only slow the API down to the receiver's pace.

So the worker holds only when no delivery of a full lease goes to a slow receiver: a
batch is done when its last send is, so one slow receiver in it sets the pace of the
whole batch whatever the CPU. A receiver is slow when even the quickest of its recent
sends took `SLOW_RECEIVER_SECONDS` or more: on a starved loop every send takes longer
than it would alone, but some still get through quickly, while a slow receiver never
answers sooner than it can. Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from orderhub.delivery.model import DueDelivery, Integration

SLOW_RECEIVER_SECONDS = 1.0
RECENT_SENDS = 20  # per integration


class ReceiverPace:
    def __init__(
        self, slow_seconds: float = SLOW_RECEIVER_SECONDS, recent: int = RECENT_SENDS
    ) -> None:
        self._slow_seconds = slow_seconds
        self._recent = recent
        self._seconds: dict[Integration, deque[float]] = {}

    def record(self, integration: Integration, seconds: float) -> None:
        """One send (delivered or failed) to `integration` took `seconds`."""
        recent = self._seconds.get(integration)
        if recent is None:
            recent = self._seconds[integration] = deque(maxlen=self._recent)
        recent.append(seconds)

    def slow(self, integration: Integration) -> bool:
        """Even its quickest recent send took `slow_seconds` or more (unknown: not slow)."""
        recent = self._seconds.get(integration)
        return recent is not None and len(recent) > 0 and min(recent) >= self._slow_seconds

    def more_cpu_would_help(self, due: Sequence[DueDelivery]) -> bool:
        """No delivery of `due` goes to a slow receiver."""
        return not any(
            self.slow(integration) for integration in {d.delivery.integration for d in due}
        )
