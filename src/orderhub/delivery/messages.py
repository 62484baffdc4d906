"""What a delivery carries: its event and the order as of that event, as the API shows it."""

from __future__ import annotations

from orderhub.delivery.integrations.base import DeliveryMessage
from orderhub.delivery.model import DueDelivery
from orderhub.orders.schemas import order_out


def message_for(due: DueDelivery) -> DeliveryMessage:
    return DeliveryMessage(
        delivery_id=str(due.delivery.id),
        event_id=str(due.event.id),
        event_type=due.event.type.value,
        occurred_at=due.event.at,
        order=order_out(due.order).model_dump(mode="json"),
        order_version=due.order.version,
    )
