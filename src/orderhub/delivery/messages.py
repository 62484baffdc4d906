"""What a delivery carries: its event and the order as of that event, as the API shows it."""

from __future__ import annotations

from orderhub.delivery.integrations.base import DeliveryMessage
from orderhub.delivery.model import DueDelivery
from orderhub.orders.schemas import order_out
from orderhub.store.documents import order_from_document


def message_for(due: DueDelivery) -> DeliveryMessage:
    order = order_from_document(due.order_document, due.order_version)
    return DeliveryMessage(
        delivery_id=str(due.delivery.id),
        event_id=str(due.event.id),
        event_type=due.event.type.value,
        occurred_at=due.event.at,
        order=order_out(order).model_dump(mode="json"),
        order_version=due.order_version,
    )
