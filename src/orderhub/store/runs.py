"""The shared part of the small record repositories (reconciliation runs, alerts): a
record as plain values (ids as text, moments as epoch milliseconds) and back, and
`latest`/`recent` of the runs over the one query a backend provides (newest first)."""

from __future__ import annotations

import dataclasses
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.store.protocol import Alert, ReconcileRun

R = TypeVar("R", ReconcileRun, Alert)
_MOMENTS = frozenset({"started_at", "finished_at", "checkpoint", "created_at", "next_attempt_at"})


def record_values(record: ReconcileRun | Alert) -> dict[str, Any]:
    """Every field of the record, as a row or an item stores it."""
    stored = dataclasses.asdict(record)
    stored["id"] = str(record.id)
    for name in _MOMENTS & stored.keys():
        moment = stored[name]
        stored[name] = epoch_ms(moment) if moment is not None else None
    return stored


def record_of(kind: type[R], stored: Mapping[str, Any]) -> R:
    """A record from what `record_values` stored (absent fields are None)."""
    fields: dict[str, Any] = {f.name: stored.get(f.name) for f in dataclasses.fields(kind)}
    fields["id"] = uuid.UUID(fields["id"])
    for name in _MOMENTS & fields.keys():
        value = fields[name]
        fields[name] = from_epoch_ms(value) if value is not None else None
    return kind(**fields)


class ReconcileRunsBase(ABC):
    @abstractmethod
    async def _newest_first(self, since: datetime | None, limit: int) -> list[ReconcileRun]:
        """Up to `limit` runs started at or after `since` (all when None), newest first."""

    async def latest(self) -> ReconcileRun | None:
        runs = await self._newest_first(None, 1)
        return runs[0] if runs else None

    async def recent(self, since: datetime, limit: int) -> list[ReconcileRun]:
        return await self._newest_first(since, limit)
