"""The operators' error log: failures kept in the store (SPEC §11 service names)."""

from __future__ import annotations

import uuid
from enum import StrEnum

import structlog

from orderhub.kit.clock import Clock
from orderhub.kit.ids import new_id
from orderhub.store.protocol import ErrorEntry, Store, StoreError

log = structlog.get_logger(__name__)


class Service(StrEnum):
    ORDERS = "orderService"
    PAYMENTS = "paymentService"
    EMAIL = "emailService"
    SHEETS = "sheetsService"
    NOTIFICATIONS = "notificationService"
    WEBHOOKS = "webhookService"
    HTTP = "http"


class ErrorRecorder:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        service: Service,
        message: str,
        *,
        error: str | None = None,
        order_id: uuid.UUID | None = None,
        level: str = "error",
    ) -> None:
        """Keep the error for operators; never let recording it fail the caller."""
        log.log(
            40 if level == "error" else 30,
            "recorded_error",
            service=service.value,
            message=message,
            error=error,
            order_id=str(order_id) if order_id else None,
        )
        entry = ErrorEntry(
            id=new_id(),
            at=self._clock.now(),
            level=level,
            service=service.value,
            message=message,
            error=error,
            order_id=order_id,
        )
        try:
            await self._store.errors.record(entry)
        except StoreError:
            log.exception("error_log_unavailable")
