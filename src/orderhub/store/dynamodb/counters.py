"""Counters in DynamoDB without a hot key.

A change's counter deltas go into a journal item of their own (pk `DELTA#<shard>`, sk a
fresh uuid) written in the change's transaction, so two changes never write a common
item. `compact()` folds journal items into the totals (pk `TOTALS`, sk `H#<hour>#<metric>`,
`D#<day>#<metric>` or `G#<metric>`): one TransactWriteItems per batch ADDs to the totals
and deletes the folded journal items under `attribute_exists`, so nothing is folded
twice. An hourly delta is added to its hour and to its UTC day, and the hour's `in_day`
says how much of its value its day holds (the same as `value`, except for totals folded
before daily totals existed, which `orderhub migrate` adds to their days). Readers add
the totals and the journal items not yet folded; a fold racing a read is caught by
reading the journal before and after the totals (see `read_totals`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from orderhub.monitoring.rollups import COUNTER_SHARDS, DAY_MS, Counters, day_of, split_days
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


TotalQuery = tuple[str, dict[str, Any]]  # a key condition on the totals, its values


async def read_totals(
    db: DynamoEngine,
    total_queries: list[TotalQuery],
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
        for condition, values in total_queries:
            async for item in db.query(
                condition, {}, {":pk": {"S": t.TOTALS_PK}, **values}, consistent=True
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
    db: DynamoEngine,
    start_hour_ms: int,
    end_hour_ms: int,
    prefixes: tuple[str, ...],
    *,
    daily: bool,
) -> dict[str, int]:
    by_step = await hourly_series(db, start_hour_ms, end_hour_ms, prefixes, None, daily=daily)
    totals: dict[str, int] = {}
    for metrics in by_step.values():
        for metric, value in metrics.items():
            totals[metric] = totals.get(metric, 0) + value
    return totals


def _between(prefix: str, lo: int, hi: int) -> TotalQuery:
    """The totals of [lo, hi) under `H#` or `D#` (BETWEEN is inclusive, but every sort
    key of `hi` sorts after the bare `<prefix><hi>`)."""
    return (
        "pk = :pk AND sk BETWEEN :lo AND :hi",
        {":lo": {"S": f"{prefix}{t.padded(lo)}"}, ":hi": {"S": f"{prefix}{t.padded(hi)}"}},
    )


async def hourly_series(
    db: DynamoEngine,
    start_hour_ms: int,
    end_hour_ms: int,
    prefixes: tuple[str, ...],
    step_ms: int | None,
    *,
    daily: bool,
) -> dict[int, dict[str, int]]:
    """Hourly totals and unfolded deltas of [start, end), summed per step (None: one step
    for the whole range, keyed 0). With `daily` (every hourly total is counted in its
    day) and no step or a step of whole days, the whole days come from the daily totals
    and only the hours before the first and after the last midnight from hourly ones."""

    def key(moment: int, metric: str) -> tuple[int, str] | None:
        if not (start_hour_ms <= moment < end_hour_ms and metric.startswith(prefixes)):
            return None
        return (moment - moment % step_ms if step_ms else 0, metric)

    def of_total(item: dict[str, Any]) -> tuple[tuple[int, str], int] | None:
        moment = item["hour"] if "hour" in item else item["day"]
        found = key(int(moment["N"]), item["metric"]["S"])
        return (found, int(item["value"]["N"])) if found is not None else None

    def of_delta(kind: str, delta_key: str) -> tuple[int, str] | None:
        if kind != "h":
            return None
        hour, _, metric = delta_key.partition("#")
        return key(int(hour), metric)

    if start_hour_ms >= end_hour_ms:
        return {}
    if daily and (step_ms is None or step_ms % DAY_MS == 0):
        head, days, tail = split_days(start_hour_ms, end_hour_ms)
        queries = [_between("H#", lo, hi) for lo, hi in (head, tail) if lo < hi]
        if days[0] < days[1]:
            queries.append(_between("D#", *days))
    else:
        queries = [_between("H#", start_hour_ms, end_hour_ms)]
    sums = await read_totals(db, queries, of_total, of_delta)
    series: dict[int, dict[str, int]] = {}
    for (step, metric), value in sums.items():
        series.setdefault(step, {})[metric] = value
    return series


async def gauges(db: DynamoEngine) -> dict[str, int]:
    return await read_totals(
        db,
        [("pk = :pk AND begins_with(sk, :g)", {":g": {"S": "G#"}})],
        lambda item: (item["metric"]["S"], int(item["value"]["N"])),
        lambda kind, key: key if kind == "g" else None,
    )


def _fold_actions(table: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ADD the batch's deltas to the totals, merged per total (an hourly delta to its hour
    and to its day); delete each entry."""
    hourly: dict[tuple[int, str], int] = {}
    gauge: dict[str, int] = {}
    for item in batch:
        for key, value in (plain(item["h"]) if "h" in item else {}).items():
            hour, _, metric = key.partition("#")
            hourly[(int(hour), metric)] = hourly.get((int(hour), metric), 0) + int(value)
        for metric, value in (plain(item["g"]) if "g" in item else {}).items():
            gauge[metric] = gauge.get(metric, 0) + int(value)
    daily: dict[tuple[int, str], int] = {}
    for (hour, metric), value in hourly.items():
        daily[(day_of(hour), metric)] = daily.get((day_of(hour), metric), 0) + value
    actions: list[dict[str, Any]] = []
    for (hour, metric), value in sorted(hourly.items()):
        actions.append(hour_add(table, hour, metric, value, in_day=value))
    for (day, metric), value in sorted(daily.items()):
        actions.append(day_add(table, day, metric, value))
    for metric, value in sorted(gauge.items()):
        actions.append(_add_total(table, t.gauge_total_sk(metric), metric, {"value": value}, {}))
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


def hour_add(table: str, hour: int, metric: str, value: int, *, in_day: int) -> dict[str, Any]:
    """ADD `value` to an hour's total and `in_day` to how much of it its day holds."""
    adds = {"value": value, "in_day": in_day}
    return _add_total(table, t.hourly_total_sk(hour, metric), metric, adds, {"hour": hour})


def day_add(table: str, day: int, metric: str, value: int) -> dict[str, Any]:
    return _add_total(table, t.daily_total_sk(day, metric), metric, {"value": value}, {"day": day})


def _add_total(
    table: str, sk: str, metric: str, adds: dict[str, int], numbers: dict[str, int]
) -> dict[str, Any]:
    """One total's UpdateItem: SET its metric and `numbers`, ADD `adds`."""
    sets = ", ".join(["#metric = :metric", *(f"#{k} = :{k}" for k in numbers)])
    added = ", ".join(f"#{k} :{k}" for k in adds)
    names = ["metric", *numbers, *adds]
    return {
        "Update": {
            "TableName": table,
            "Key": t.Table.key(t.TOTALS_PK, sk),
            "UpdateExpression": f"SET {sets} ADD {added}",
            "ExpressionAttributeNames": {f"#{k}": k for k in names},
            "ExpressionAttributeValues": {
                ":metric": {"S": metric},
                **{f":{k}": {"N": str(v)} for k, v in {**numbers, **adds}.items()},
            },
        }
    }


def _batch_within_limit(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As many entries as fit one transaction (their totals plus their deletes)."""
    batch: list[dict[str, Any]] = []
    totals: set[str] = set()
    for item in items:
        hours = plain(item["h"]) if "h" in item else {}
        keys = {f"h{k}" for k in hours}
        for k in hours:  # its day's total too
            hour, _, metric = k.partition("#")
            keys.add(f"d{day_of(int(hour))}#{metric}")
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
