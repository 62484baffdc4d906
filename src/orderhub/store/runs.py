"""The shared part of the reconciliation runs' repositories: a run as plain values (ids
as text, moments as epoch milliseconds) and back, and `latest`/`recent` over the one
query a backend provides (runs newest first, from a moment on)."""

from __future__ import annotations

import dataclasses
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.store.protocol import ReconcileRun

_MOMENTS = ("started_at", "finished_at", "checkpoint")


def run_values(run: ReconcileRun) -> dict[str, Any]:
    """Every field of the run, as a row or an item stores it."""
    stored = dataclasses.asdict(run)
    stored["id"] = str(run.id)
    for name in _MOMENTS:
        moment = stored[name]
        stored[name] = epoch_ms(moment) if moment is not None else None
    return stored


def run_of(stored: Mapping[str, Any]) -> ReconcileRun:
    """A run from what `run_values` stored (absent fields are None)."""
    fields: dict[str, Any] = {f.name: stored.get(f.name) for f in dataclasses.fields(ReconcileRun)}
    fields["id"] = uuid.UUID(fields["id"])
    for name in _MOMENTS:
        value = fields[name]
        fields[name] = from_epoch_ms(value) if value is not None else None
    return ReconcileRun(**fields)


class ReconcileRunsBase(ABC):
    @abstractmethod
    async def _newest_first(self, since: datetime | None, limit: int) -> list[ReconcileRun]:
        """Up to `limit` runs started at or after `since` (all when None), newest first."""

    async def latest(self) -> ReconcileRun | None:
        runs = await self._newest_first(None, 1)
        return runs[0] if runs else None

    async def recent(self, since: datetime, limit: int) -> list[ReconcileRun]:
        return await self._newest_first(since, limit)
