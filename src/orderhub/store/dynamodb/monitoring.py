"""Monitoring in DynamoDB: probe results by name and time, provider calls and delivery
attempts by hour, orders by creation hour, and the counters (journal + totals, see
`counters.py`) with their `compact()` fold."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from orderhub.kit.clock import epoch_ms, from_epoch_ms
from orderhub.kit.ids import new_id
from orderhub.monitoring.rollups import HOUR_MS, CallRecord, Counters, OrderFacts, facts_of, hour_of
from orderhub.store.counting import ProviderCallCounting
from orderhub.store.dynamodb import counters
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import DynamoEngine
from orderhub.store.dynamodb.mappers import Item, av, item_of, order_of
from orderhub.store.dynamodb.records import DynamoLeaseRepository
from orderhub.store.protocol import ProbeResult, ProbeSummary, ProviderCall, StoreError

COMPACT_LEASE = "counters-compact"
COMPACT_LEASE_FOR = timedelta(minutes=5)
BATCH_WRITE_ITEMS = 25


class DynamoMonitoringRepository(ProviderCallCounting):
    def __init__(self, db: DynamoEngine, leases: DynamoLeaseRepository) -> None:
        self._db = db
        self._leases = leases
        self._daily = False  # every hourly total is in its day (never goes back once seen)

    async def _daily_totals(self) -> bool:
        """Whether the daily totals can be read: `orderhub migrate` has added the hourly
        totals folded before they existed (until then, whole days are read hour by hour)."""
        if not self._daily:
            found = await self._db.call(
                "get_item",
                TableName=self._db.name,
                Key=self._db.table.meta_key(),
                ConsistentRead=True,
            )
            self._daily = t.daily_totals_complete(found.get("Item", {}))
        return self._daily

    async def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_ITEMS):
            pending: dict[str, Any] = {self._db.name: requests[start : start + BATCH_WRITE_ITEMS]}
            for attempt in range(10):
                result = await self._db.call("batch_write_item", RequestItems=pending)
                pending = result.get("UnprocessedItems") or {}
                if not pending:
                    break
                await asyncio.sleep(0.05 * (attempt + 1))
            if pending:
                raise StoreError("store error: writes kept being throttled")

    async def record_probes(self, results: list[ProbeResult]) -> None:
        """One item per result under its probe's name, and the name in the registry item
        (so summaries read each name's partition, never the whole table)."""
        if not results:
            return
        await self._db.call(
            "update_item",
            TableName=self._db.name,
            Key=t.Table.key(*t.PROBE_NAMES_KEY),
            UpdateExpression="ADD #n :names",
            ExpressionAttributeNames={"#n": "names"},
            ExpressionAttributeValues={":names": av({r.name for r in results})},
        )
        await self._batch_write(
            [
                {
                    "PutRequest": {
                        "Item": item_of(
                            pk=t.probe_pk(r.name),
                            sk=f"{t.padded(epoch_ms(r.at))}#{new_id()}",
                            name=r.name,
                            at=epoch_ms(r.at),
                            ok=r.ok,
                            latency_ms=r.latency_ms,
                            error=r.error,
                            expires=t.ttl_seconds(r.at + t.PROBES_KEPT),
                        )
                    }
                }
                for r in results
            ]
        )

    async def _probe_names(self) -> set[str]:
        item = await self._db.get(t.Table.key(*t.PROBE_NAMES_KEY))
        return set(item["names"]["SS"]) if item and "names" in item else set()

    async def probe_summaries(self, since: datetime) -> list[ProbeSummary]:
        summaries = []
        for name in sorted(await self._probe_names()):
            checks = successes = 0
            last: Item | None = None
            async for item in self._db.query(
                "pk = :pk AND sk >= :since",
                {"#at": "at"},
                {":pk": av(t.probe_pk(name)), ":since": av(t.padded(epoch_ms(since)))},
                consistent=True,
                projection="sk, #at, ok",
            ):
                checks += 1
                successes += int(item["ok"]["BOOL"])
                last = item  # ascending: the last one read is the latest
            if last is not None:
                summaries.append(
                    ProbeSummary(
                        name=name,
                        checks=checks,
                        successes=successes,
                        last_at=from_epoch_ms(int(last["at"]["N"])),
                        last_ok=bool(last["ok"]["BOOL"]),
                    )
                )
        return summaries

    async def _record_provider_call(self, call: ProviderCall, counted: Counters) -> None:
        moment = epoch_ms(call.at)
        item = item_of(
            pk=t.call_pk(call.id),
            sk="CALL",
            kind="call",
            id=str(call.id),
            provider=call.provider,
            operation=call.operation,
            ok=call.ok,
            duration_ms=call.duration_ms,
            at=moment,
            ch_pk=hour_of(moment),
            expires=t.ttl_seconds(call.at + t.CALLS_KEPT),
        )
        actions: list[dict[str, Any]] = [{"Put": {"TableName": self._db.name, "Item": item}}]
        if counted:
            actions.append(counters.journal_put(self._db.name, counted))
        await self._db.transact(actions)

    async def hourly_totals(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...]
    ) -> dict[str, int]:
        return await counters.hourly_totals(
            self._db, start_hour_ms, end_hour_ms, prefixes, daily=await self._daily_totals()
        )

    async def hourly_series(
        self, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...], step_ms: int
    ) -> dict[int, dict[str, int]]:
        return await counters.hourly_series(
            self._db,
            start_hour_ms,
            end_hour_ms,
            prefixes,
            step_ms,
            daily=await self._daily_totals(),
        )

    async def gauges(self) -> dict[str, int]:
        return await counters.gauges(self._db)

    async def compact(self, now: datetime) -> int:
        """Fold the counter journal into the totals, under a named lease so one worker at
        a time does it; returns how many journal entries were folded (0 when another
        worker holds the lease). Readers give the same answers before and after."""
        owner = f"compact-{uuid.uuid4()}"
        if not await self._leases.acquire(COMPACT_LEASE, owner, now + COMPACT_LEASE_FOR, now):
            return 0
        try:
            return await counters.fold(self._db)
        finally:
            await self._leases.release(COMPACT_LEASE, owner)

    def _hours(self, start_ms: int, end_ms: int) -> list[int]:
        return list(range(hour_of(start_ms), end_ms, HOUR_MS)) if start_ms < end_ms else []

    async def _by_hour(
        self, index: str, pk_attr: str, sk_attr: str, start_ms: int, end_ms: int
    ) -> list[Item]:
        """Items of [start, end) from an index partitioned by hour, one Query per hour."""
        found: list[Item] = []
        for hour in self._hours(start_ms, end_ms):
            found += [
                item
                async for item in self._db.query(
                    "#p = :h AND #s BETWEEN :lo AND :hi",
                    {"#p": pk_attr, "#s": sk_attr},
                    {
                        ":h": av(hour),
                        ":lo": av(max(start_ms, hour)),
                        ":hi": av(min(end_ms, hour + HOUR_MS) - 1),
                    },
                    index=index,
                )
            ]
        return found

    async def orders_created(self, start_ms: int, end_ms: int) -> list[OrderFacts]:
        items = await self._by_hour("orders_by_hour", "oh_pk", "created_at", start_ms, end_ms)
        return [facts_of(order_of(item)) for item in items]

    async def calls_between(self, start_ms: int, end_ms: int) -> list[CallRecord]:
        records = []
        for item in await self._by_hour("calls_by_hour", "ch_pk", "at", start_ms, end_ms):
            at = int(item["at"]["N"])
            if item["kind"]["S"] == "call":
                records.append(CallRecord(item["provider"]["S"], bool(item["ok"]["BOOL"]), at))
            else:
                ok = item["outcome"]["S"] == "delivered"
                records.append(CallRecord(item["integration"]["S"], ok, at))
        return records

    async def prune(self, probes_before: datetime, errors_before: datetime) -> None:
        """TTL expires these items on its own (within a day or two); deleting what is
        older than the given times keeps reads exact meanwhile, by key ranges only."""
        doomed: list[dict[str, Any]] = []
        for name in await self._probe_names():
            doomed += [
                {"pk": item["pk"], "sk": item["sk"]}
                async for item in self._db.query(
                    "pk = :pk AND sk < :before",
                    {},
                    {":pk": av(t.probe_pk(name)), ":before": av(t.padded(epoch_ms(probes_before)))},
                    projection="pk, sk",
                )
            ]
        doomed += [
            {"pk": item["pk"], "sk": item["sk"]}
            async for item in self._db.query(
                "ge_pk = :e AND ge_sk < :before",
                {},
                {":e": av(t.ERRORS_PK), ":before": av(t.padded(epoch_ms(errors_before)))},
                index="errors_by_time",
            )
        ]
        await self._batch_write([{"DeleteRequest": {"Key": key}} for key in doomed])
