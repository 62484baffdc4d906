"""How quickly each integration's receiver answers, as the worker sees it: whether a
backlog would drain faster if the worker had more CPU.

The in-process worker holds `kit.backpressure` while it is behind. That helps when the
worker is starved of CPU by a saturated API: intake slows, the worker gets the loop, the
backlog drains. It does not help when a receiver is slow (an SMTP server taking 2 s per
message): the worker is then waiting on the network, more CPU changes nothing, and
holding the intake would only slow the API down to the receiver's pace.

So the worker holds only when no delivery its batch waits for goes to a slow receiver:
a batch is done when its last send is, so one slow receiver in it sets the pace of the
whole batch whatever the CPU. (Sheet rows are written by a writer task of their own,
which the batch does not wait for: they never count.) A receiver is slow when even the
quickest of its recent sends took `SLOW_RECEIVER_SECONDS` or more. Only sends made while
the loop ran on time are recorded (`kit.looplag`): on a busy loop every send takes long,
which says nothing about the receiver. Sends older than `FORGET_AFTER_SECONDS` are
forgotten, so a receiver that was slow is measured again once it answers quickly.
Pure: no I/O; times are `time.perf_counter()` readings passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from orderhub.delivery.model import DueDelivery, Integration

SLOW_RECEIVER_SECONDS = 1.0
RECENT_SENDS = 20  # per integration
FORGET_AFTER_SECONDS = 60.0
# written by the worker's sheet writer task, not waited for by a batch
NOT_WAITED_FOR = frozenset({Integration.SHEETS})


class ReceiverPace:
    def __init__(
        self,
        slow_seconds: float = SLOW_RECEIVER_SECONDS,
        recent: int = RECENT_SENDS,
        forget_after: float = FORGET_AFTER_SECONDS,
    ) -> None:
        self._slow_seconds = slow_seconds
        self._recent = recent
        self._forget_after = forget_after
        self._sends: dict[Integration, deque[tuple[float, float]]] = {}  # (at, seconds)

    def record(self, integration: Integration, seconds: float, at: float) -> None:
        """One send (delivered or failed) to `integration`, ended at `at`, took `seconds`."""
        sends = self._sends.get(integration)
        if sends is None:
            sends = self._sends[integration] = deque(maxlen=self._recent)
        sends.append((at, seconds))

    def slow(self, integration: Integration, now: float) -> bool:
        """Even its quickest recent send took `slow_seconds` or more (nothing recent
        known: not slow)."""
        recent = [s for at, s in self._sends.get(integration, ()) if at >= now - self._forget_after]
        return bool(recent) and min(recent) >= self._slow_seconds

    def more_cpu_would_help(self, due: Sequence[DueDelivery], now: float) -> bool:
        """No delivery of `due` that its batch waits for goes to a slow receiver."""
        waited_for = {d.delivery.integration for d in due} - NOT_WAITED_FOR
        return not any(self.slow(integration, now) for integration in waited_for)
