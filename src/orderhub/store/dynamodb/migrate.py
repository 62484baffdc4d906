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

from orderhub.store.dynamodb import tables as t
from orderhub.store.protocol import StoreError

WAIT_SECONDS = 300


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
