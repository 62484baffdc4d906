"""Counters in DynamoDB without a hot key.

A change's counter deltas go into a journal item of their own (pk `DELTA#<shard>`, sk a
fresh uuid) written in the change's transaction, so two changes never write a common
item. `compact()` folds journal items into the totals (pk `TOTALS`, sk `H#<hour>#<metric>`
or `G#<metric>`): one TransactWriteItems per batch ADDs to the totals and deletes the
folded journal items under `attribute_exists`, so nothing is folded twice. Readers add
the totals and the journal items not yet folded; a fold racing a read is caught by
reading the journal before and after the totals (see `read_totals`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from orderhub.monitoring.rollups import COUNTER_SHARDS, Counters
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.engine import DynamoEngine, TransactionCancelled
from orderhub.store.dynamodb.mappers import journal_item, plain
from orderhub.store.protocol import StoreError

Journal = dict[tuple[str, str], dict[str, Any]]  # (pk, sk) -> the entry's deltas (h, g)
Key = TypeVar("Key", str, tuple[int, str])  # what a read sums by: a metric, or (step, metric)

FOLD_BATCH = 40  # journal items read per fold; a fold's actions stay within 100
READ_ATTEMPTS = 8


def journal_put(table: str, counters: Counters) -> dict[str, Any]:
    """The transaction action writing one change's deltas as a journal entry."""
    return {"Put": {"TableName": table, "Item": journal_item(counters, uuid.uuid4())}}


async def read_journal(db: DynamoEngine) -> Journal:
    """Every journal entry not folded yet (one consistent Query per shard, all at once)."""

    async def shard_entries(shard: int) -> Journal:
        return {
            (item["pk"]["S"], item["sk"]["S"]): {
                "h": plain(item["h"]) if "h" in item else {},
                "g": plain(item["g"]) if "g" in item else {},
            }
            async for item in db.query(
                "pk = :pk", {}, {":pk": {"S": t.journal_pk(shard)}}, consistent=True
            )
        }

    journal: Journal = {}
    for entries in await asyncio.gather(*(shard_entries(s) for s in range(COUNTER_SHARDS))):
        journal.update(entries)
    return journal


async def read_totals(
    db: DynamoEngine,
    total_condition: str,
    total_values: dict[str, Any],
    metric_of_total: Callable[[dict[str, Any]], tuple[Key, int] | None],
    metric_of_delta: Callable[[str, str], Key | None],
) -> dict[Key, int]:
    """Totals plus unfolded journal entries, consistent against a concurrent fold.

    Read the journal (J1), then the totals (T), then the journal again (J2). An entry
    folded before J1 is in T and not in J1; one of J1 still in J2 was not folded before
    T was read, so it is not in T. If an entry of J1 is gone from J2 a fold ran in
    between (T may hold it, in part or in whole): read again."""
    for _attempt in range(READ_ATTEMPTS):
        first = await read_journal(db)
        sums: dict[Key, int] = {}
        async for item in db.query(
            total_condition, {}, {":pk": {"S": t.TOTALS_PK}, **total_values}, consistent=True
        ):
            found = metric_of_total(item)
            if found is not None:
                sums[found[0]] = sums.get(found[0], 0) + found[1]
        again = await read_journal(db)
        if not first.keys() <= again.keys():
            continue
        for entry in first.values():
            for kind in ("h", "g"):
                for key, value in entry[kind].items():
                    metric = metric_of_delta(kind, key)
                    if metric is not None:
                        sums[metric] = sums.get(metric, 0) + int(value)
        return {metric: value for metric, value in sums.items() if value != 0}
    raise StoreError("store error: counters kept changing during the read")


async def hourly_totals(
    db: DynamoEngine, start_hour_ms: int, end_hour_ms: int, prefixes: tuple[str, ...]
) -> dict[str, int]:
    by_step = await hourly_series(db, start_hour_ms, end_hour_ms, prefixes, None)
    totals: dict[str, int] = {}
    for metrics in by_step.values():
        for metric, value in metrics.items():
            totals[metric] = totals.get(metric, 0) + value
    return totals


async def hourly_series(
    db: DynamoEngine,
    start_hour_ms: int,
    end_hour_ms: int,
    prefixes: tuple[str, ...],
    step_ms: int | None,
) -> dict[int, dict[str, int]]:
    """Hourly totals and unfolded deltas of [start, end), summed per step (None: one step
    for the whole range, keyed 0)."""

    def key(hour: int, metric: str) -> tuple[int, str] | None:
        if not (start_hour_ms <= hour < end_hour_ms and metric.startswith(prefixes)):
            return None
        return (hour - hour % step_ms if step_ms else 0, metric)

    def of_total(item: dict[str, Any]) -> tuple[tuple[int, str], int] | None:
        found = key(int(item["hour"]["N"]), item["metric"]["S"])
        return (found, int(item["value"]["N"])) if found is not None else None

    def of_delta(kind: str, delta_key: str) -> tuple[int, str] | None:
        if kind != "h":
            return None
        hour, _, metric = delta_key.partition("#")
        return key(int(hour), metric)

    if start_hour_ms >= end_hour_ms:
        return {}
    sums = await read_totals(
        db,
        "pk = :pk AND sk BETWEEN :lo AND :hi",
        {
            ":lo": {"S": f"H#{t.padded(start_hour_ms)}"},
            ":hi": {"S": f"H#{t.padded(end_hour_ms)}"},
        },
        of_total,
        of_delta,
    )
    series: dict[int, dict[str, int]] = {}
    for (step, metric), value in sums.items():
        series.setdefault(step, {})[metric] = value
    return series


async def gauges(db: DynamoEngine) -> dict[str, int]:
    return await read_totals(
        db,
        "pk = :pk AND begins_with(sk, :g)",
        {":g": {"S": "G#"}},
        lambda item: (item["metric"]["S"], int(item["value"]["N"])),
        lambda kind, key: key if kind == "g" else None,
    )


def _fold_actions(table: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ADD the batch's deltas to the totals, merged per total; delete each entry."""
    hourly: dict[tuple[int, str], int] = {}
    gauge: dict[str, int] = {}
    for item in batch:
        for key, value in (plain(item["h"]) if "h" in item else {}).items():
            hour, _, metric = key.partition("#")
            hourly[(int(hour), metric)] = hourly.get((int(hour), metric), 0) + int(value)
        for metric, value in (plain(item["g"]) if "g" in item else {}).items():
            gauge[metric] = gauge.get(metric, 0) + int(value)
    actions: list[dict[str, Any]] = []
    for (hour, metric), value in sorted(hourly.items()):
        actions.append(
            _add_total(table, t.hourly_total_sk(hour, metric), value, {"hour": {"N": str(hour)}})
        )
    for metric, value in sorted(gauge.items()):
        actions.append(_add_total(table, t.gauge_total_sk(metric), value, {}, metric))
    for item in batch:
        actions.append(
            {
                "Delete": {
                    "TableName": table,
                    "Key": {"pk": item["pk"], "sk": item["sk"]},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        )
    return actions


def _add_total(
    table: str, sk: str, value: int, extra: dict[str, Any], metric: str | None = None
) -> dict[str, Any]:
    name = metric if metric is not None else sk.split("#", 2)[2]
    sets = ", ".join(["#m = :m", *(f"#{k} = :{k}" for k in extra)])
    return {
        "Update": {
            "TableName": table,
            "Key": t.Table.key(t.TOTALS_PK, sk),
            "UpdateExpression": f"SET {sets} ADD #v :v",
            "ExpressionAttributeNames": {
                "#m": "metric",
                "#v": "value",
                **{f"#{k}": k for k in extra},
            },
            "ExpressionAttributeValues": {
                ":m": {"S": name},
                ":v": {"N": str(value)},
                **{f":{k}": v for k, v in extra.items()},
            },
        }
    }


def _batch_within_limit(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As many entries as fit one transaction (their totals plus their deletes)."""
    batch: list[dict[str, Any]] = []
    totals: set[str] = set()
    for item in items:
        keys = {f"h{k}" for k in (plain(item["h"]) if "h" in item else {})}
        keys |= {f"g{k}" for k in (plain(item["g"]) if "g" in item else {})}
        if len(totals | keys) + len(batch) + 1 > t.MAX_ACTIONS:
            break
        batch.append(item)
        totals |= keys
    return batch


async def fold(db: DynamoEngine) -> int:
    """Fold every journal entry into the totals; returns how many were folded. A batch
    that loses a race with another fold (an entry already gone) is read again."""
    folded = 0
    for shard in range(COUNTER_SHARDS):
        while True:
            page = await db.call(
                "query",
                TableName=db.name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": t.journal_pk(shard)}},
                ConsistentRead=True,
                Limit=FOLD_BATCH,
            )
            items = page.get("Items", [])
            if not items:
                break
            batch = _batch_within_limit(items)
            try:
                await db.transact(_fold_actions(db.name, batch))
            except TransactionCancelled as cancelled:
                if "ConditionalCheckFailed" in cancelled.reasons:
                    continue  # another fold took some of them: read what is left
                raise StoreError("store error: the counter fold was refused") from None
            folded += len(batch)
    return folded
