"""The configured integration senders, one slot per `Integration` (None: that one is off)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    EmailMessage,
    EmailSender,
    Notifier,
    SheetWriter,
)
from orderhub.delivery.model import Integration
from orderhub.kit.failures import in_words

EmailRender = Callable[[DeliveryMessage], EmailMessage | None]
log = structlog.get_logger("orderhub.delivery")


async def open_client(client: object) -> None:
    """`client.open()` when it has one. A failure is logged and left for the first use
    (where it counts as that delivery's or probe's error): it never stops the start."""
    open_ = getattr(client, "open", None)
    if open_ is None:
        return
    try:
        await open_()
    except Exception as exc:
        log.warning(
            "client_not_built",
            client=type(client).__name__,
            error=in_words(exc),
            error_type=type(exc).__name__,
        )


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

    async def open(self) -> None:
        """Build the senders' network clients now (at start-up), for those that have an
        `open()`; one that cannot be built yet is built on first use instead."""
        for sender in self.senders().values():
            await open_client(sender)

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
