"""The configured integration senders, one slot per `Integration` (None: that one is off)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    EmailMessage,
    EmailSender,
    Notifier,
    SheetWriter,
)
from orderhub.delivery.model import Integration

EmailRender = Callable[[DeliveryMessage], EmailMessage | None]


@dataclass
class Integrations:
    """The configured senders (None: that integration is off)."""

    email_render: EmailRender | None = None
    email: EmailSender | None = None
    sheets: SheetWriter | None = None
    notifications: Notifier | None = None

    def senders(self) -> dict[Integration, object | None]:
        """Each integration's sender (what health probes ask)."""
        return {
            Integration.EMAIL: self.email,
            Integration.SHEETS: self.sheets,
            Integration.NOTIFICATIONS: self.notifications,
        }

    async def aclose(self) -> None:
        """Close the senders' network clients (those that keep one open)."""
        for sender in self.senders().values():
            close = getattr(sender, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def enabled(self) -> list[Integration]:
        on = []
        if self.email is not None and self.email_render is not None:
            on.append(Integration.EMAIL)
        if self.sheets is not None:
            on.append(Integration.SHEETS)
        if self.notifications is not None:
            on.append(Integration.NOTIFICATIONS)
        return on
