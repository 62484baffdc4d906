"""The operators' error log: failures kept in the store (SPEC §11 service names)."""

from __future__ import annotations

import uuid
from enum import StrEnum

import structlog

from orderhub.delivery.model import Integration
from orderhub.kit.clock import Clock
from orderhub.kit.ids import new_id
from orderhub.store.protocol import ErrorEntry, Store, StoreError

log = structlog.get_logger(__name__)


class Component(StrEnum):
    """The parts of orderhub itself that keep errors (integrations are `Integration`)."""

    ORDERS = "orderService"
    PAYMENTS = "paymentService"
    WEBHOOKS = "webhookService"
    HTTP = "http"

    @property
    def error_service(self) -> str:
        return self.value


ErrorSource = Component | Integration


class ErrorLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        source: ErrorSource,
        message: str,
        *,
        error: str | None = None,
        order_id: uuid.UUID | None = None,
        level: str = "error",
    ) -> None:
        """Keep the error for operators; never let recording it fail the caller."""
        service = source.error_service
        log.log(
            40 if level == "error" else 30,
            "recorded_error",
            service=service,
            message=message,
            error=error,
            order_id=str(order_id) if order_id else None,
        )
        entry = ErrorEntry(
            id=new_id(),
            at=self._clock.now(),
            level=level,
            service=service,
            message=message,
            error=error,
            order_id=order_id,
        )
        try:
            await self._store.errors.record(entry)
        except StoreError:
            log.exception("error_log_unavailable")
