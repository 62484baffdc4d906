"""`orderhub migrate` for DynamoDB: create the table, its indexes, its TTL setting and its
meta item. Idempotent, and safe to run twice at once (each step tolerates another run
having done it first)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from orderhub.monitoring.rollups import day_of
from orderhub.store.dynamodb import tables as t
from orderhub.store.dynamodb.counters import day_add, hour_add
from orderhub.store.protocol import StoreError

WAIT_SECONDS = 300
BACKFILL_BATCH = 30  # hourly totals per transaction: theirs and their days' within 100
BACKFILL_PASSES = 50  # reads of what is left, each after a fold may have raced a batch


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _index(name: str) -> dict[str, Any]:
    pk, _, sk, _ = t.INDEXES[name]
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": pk, "KeyType": "HASH"},
            {"AttributeName": sk, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def _attributes(names: list[str]) -> list[dict[str, str]]:
    types = {"pk": "S", "sk": "S"}
    for name in names:
        pk, pk_type, sk, sk_type = t.INDEXES[name]
        types[pk], types[sk] = pk_type, sk_type
    return [{"AttributeName": a, "AttributeType": kind} for a, kind in sorted(types.items())]


def _wait_active(client: Any, table: str) -> dict[str, Any]:
    """Until the table and every index on it are ACTIVE."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        described: dict[str, Any] = client.describe_table(TableName=table)["Table"]
        indexes = described.get("GlobalSecondaryIndexes", [])
        if described["TableStatus"] == "ACTIVE" and all(
            i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes
        ):
            return described
        if time.monotonic() > deadline:
            raise StoreError(f"table {table} did not become active")
        time.sleep(1)


def _create_table(client: Any, table: str) -> None:
    try:
        client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=_attributes(list(t.INDEXES)),
            GlobalSecondaryIndexes=[_index(name) for name in t.INDEXES],
        )
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":  # exists (or is being created)
            raise


def _add_missing_indexes(client: Any, table: str) -> None:
    """Indexes added by a later version, one UpdateTable each (DynamoDB builds one at a
    time)."""
    while True:
        described = _wait_active(client, table)
        present = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
        missing = [name for name in t.INDEXES if name not in present]
        if not missing:
            return
        try:
            client.update_table(
                TableName=table,
                AttributeDefinitions=_attributes([missing[0]]),
                GlobalSecondaryIndexUpdates=[{"Create": _index(missing[0])}],
            )
        except ClientError as exc:
            if _code(exc) not in ("ResourceInUseException", "LimitExceededException"):
                raise
            time.sleep(1)  # another run is adding it: wait and look again


def _enable_ttl(client: Any, table: str) -> None:
    status = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    try:
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": t.TTL_ATTRIBUTE},
        )
    except ClientError as exc:
        if _code(exc) != "ValidationException":  # "already enabled": another run did it
            raise


def _write_meta(client: Any, table: str) -> None:
    try:
        client.put_item(
            TableName=table,
            Item={
                **t.Table(table).meta_key(),
                "first_month": {"S": t.month_key(time.time_ns() // 1_000_000)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as exc:
        if _code(exc) != "ConditionalCheckFailedException":
            raise


def _in_day(hour_total: dict[str, Any]) -> int:
    """How much of an hourly total its day holds (0: folded before daily totals)."""
    return int(hour_total["in_day"]["N"]) if "in_day" in hour_total else 0


def _hourly_totals_behind(client: Any, table: str) -> list[dict[str, Any]]:
    """The hourly totals whose day does not hold all of their value (`in_day` < `value`):
    folded before daily totals existed."""
    behind: list[dict[str, Any]] = []
    paginator = client.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
        ExpressionAttributeValues={":pk": {"S": t.TOTALS_PK}, ":h": {"S": "H#"}},
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            if int(item["value"]["N"]) != _in_day(item):
                behind.append(item)
    return behind


def _backfill_actions(table: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add what each hourly total's day lacks to the day, and mark it added: each hour's
    update is conditioned on the value and `in_day` read, so a fold that changed the hour
    meanwhile cancels the transaction (and the batch is read again)."""
    actions: list[dict[str, Any]] = []
    days: dict[tuple[int, str], int] = {}
    for item in batch:
        hour, metric, value = int(item["hour"]["N"]), item["metric"]["S"], int(item["value"]["N"])
        in_day = _in_day(item)
        action = hour_add(table, hour, metric, 0, in_day=value - in_day)
        update = action["Update"]
        update["ConditionExpression"] = "#value = :read AND " + (
            "#in_day = :in_read" if "in_day" in item else "attribute_not_exists(#in_day)"
        )
        update["ExpressionAttributeValues"][":read"] = {"N": str(value)}
        if "in_day" in item:
            update["ExpressionAttributeValues"][":in_read"] = {"N": str(in_day)}
        actions.append(action)
        days[(day_of(hour), metric)] = days.get((day_of(hour), metric), 0) + value - in_day
    actions += [day_add(table, day, metric, value) for (day, metric), value in sorted(days.items())]
    return actions


def _backfill_daily_totals(client: Any, table: str) -> int:
    """Count every hourly total folded before daily totals existed in its day, then say
    so in the meta item (readers use the daily totals from then on). Idempotent, and safe
    beside running folds; returns how many hourly totals were added to their days."""
    meta = t.Table(table).meta_key()
    item = client.get_item(TableName=table, Key=meta, ConsistentRead=True).get("Item", {})
    if t.daily_totals_complete(item):
        return 0
    added = 0
    for _pass in range(BACKFILL_PASSES):
        behind = _hourly_totals_behind(client, table)
        if not behind:
            break
        for start in range(0, len(behind), BACKFILL_BATCH):
            batch = behind[start : start + BACKFILL_BATCH]
            try:
                client.transact_write_items(TransactItems=_backfill_actions(table, batch))
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                continue  # a fold changed one of them: the next pass reads it again
            added += len(batch)
    else:
        raise StoreError("store error: the counter totals kept changing during the daily backfill")
    client.update_item(
        TableName=table,
        Key=meta,
        UpdateExpression="SET #d = :c",
        ExpressionAttributeNames={"#d": t.DAILY_TOTALS},
        ExpressionAttributeValues={":c": {"S": t.DAILY_TOTALS_COMPLETE}},
    )
    return added


@contextmanager
def _client(region: str, action: str) -> Iterator[Any]:
    """A DynamoDB client for one step of `migrate`; its failures become StoreErrors."""
    client = boto3.client("dynamodb", region_name=region)
    try:
        yield client
    except ClientError as exc:
        raise StoreError(f"store error: DynamoDB refused to {action}") from exc
    except BotoCoreError as exc:
        raise StoreError("store error: DynamoDB did not answer") from exc
    finally:
        client.close()


def create_tables(url: str, region: str) -> str:
    """Create (or complete) the store's table for `dynamodb://PREFIX`; returns its name.
    The endpoint comes from botocore's configuration (`AWS_ENDPOINT_URL_DYNAMODB`)."""
    table = t.table_name(url)
    with _client(region, "create the table") as client:
        _create_table(client, table)
        _add_missing_indexes(client, table)
        _enable_ttl(client, table)
        _write_meta(client, table)
        _backfill_daily_totals(client, table)
    return table


def table_exists(url: str, region: str) -> bool:
    """Whether `orderhub migrate` has created the store's table (it may still be
    incomplete: `create_tables` finishes it)."""
    with _client(region, "describe the table") as client:
        try:
            client.describe_table(TableName=t.table_name(url))
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise
    return True
