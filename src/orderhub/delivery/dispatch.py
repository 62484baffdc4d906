"""Sending a delivery: one handler per integration, looked up in a table.

Email and notifications are sent one delivery at a time (`send`); sheets are written a
batch at a time, each order's newest row only (`write_sheet`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    PermanentDeliveryError,
    sheet_row,
)
from orderhub.delivery.messages import message_for
from orderhub.delivery.model import DueDelivery, Integration
from orderhub.delivery.registry import Integrations

Handler = Callable[[Integrations, DeliveryMessage], Awaitable[None]]


async def _email(integrations: Integrations, message: DeliveryMessage) -> None:
    render, sender = integrations.email_render, integrations.email
    if render is None or sender is None:
        raise PermanentDeliveryError("email is not configured")
    email = render(message)
    if email is not None:
        await sender.send(email)


async def _notify(integrations: Integrations, message: DeliveryMessage) -> None:
    notifier = integrations.notifications
    if notifier is None:
        raise PermanentDeliveryError("notifications are not configured")
    await notifier.publish(message)


HANDLERS: dict[Integration, Handler] = {
    Integration.EMAIL: _email,
    Integration.NOTIFICATIONS: _notify,
}
BATCHED = frozenset({Integration.SHEETS})  # written by `write_sheet`, never one by one


async def send(integrations: Integrations, due: DueDelivery) -> None:
    """Send one delivery through its integration's handler."""
    handler = HANDLERS.get(due.delivery.integration)
    if handler is None:
        raise PermanentDeliveryError(f"{due.delivery.integration} is not sent one by one")
    await handler(integrations, message_for(due))


async def write_sheet(integrations: Integrations, batch: list[DueDelivery]) -> None:
    """One upsert for the batch, each order's newest version only."""
    writer = integrations.sheets
    if writer is None:
        raise PermanentDeliveryError("sheets are not configured")
    newest: dict[str, DeliveryMessage] = {}
    for due in batch:
        message = message_for(due)
        kept = newest.get(str(due.delivery.order_id))
        if kept is None or kept.order_version < message.order_version:
            newest[str(due.delivery.order_id)] = message
    await writer.upsert([sheet_row(message) for message in newest.values()])
