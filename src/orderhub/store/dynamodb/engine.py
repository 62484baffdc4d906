"""The DynamoDB engine: one aioboto3 client, opened lazily in the running event loop.

Every request goes through `call()`: botocore's errors leave it as `StoreError` saying
what failed in words, with no class name or AWS detail in the message (the class and
error code go to the structured log, the cause stays chained), except the two
outcomes callers decide on: a failed condition (`ConditionFailed`) and a cancelled
transaction (`TransactionCancelled`, with the reason code of each action). The endpoint
comes from botocore's own configuration (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`);
the region from the caller (settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioboto3
import structlog
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from orderhub.kit.aws_clients import LoopClient
from orderhub.kit.failures import in_words
from orderhub.store.dynamodb.tables import (
    INDEXES,
    Table,
    clamp_month,
    id_ms,
    month_key,
    previous_month,
)
from orderhub.store.protocol import StoreError

log = structlog.get_logger("orderhub.store")

_CREDENTIALS_REFUSED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
    }
)
_THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)


def refused_in_words(code: str) -> str:
    """What DynamoDB's refusal (its error code) means, in words."""
    if code == "ResourceNotFoundException":
        return "the DynamoDB table does not exist (run `orderhub migrate`)"
    if code in _CREDENTIALS_REFUSED:
        return "DynamoDB refused the AWS credentials"
    if code in _THROTTLED:
        return "DynamoDB is throttling requests"
    if code == "ValidationException":
        return "DynamoDB refused the request as invalid"
    if code in ("InternalServerError", "ServiceUnavailable"):
        return "DynamoDB failed with a server error"
    return "DynamoDB refused the request"


def unanswered_in_words(exc: BaseException) -> str:
    """What a failure to get any answer from DynamoDB means, in words."""
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials were found for DynamoDB"
    if isinstance(exc, NoRegionError):
        return "no AWS region is set for DynamoDB (AWS_REGION)"
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)):
        return "DynamoDB did not answer in time"
    if isinstance(exc, EndpointConnectionError):
        return f"could not connect to DynamoDB at {exc.kwargs.get('endpoint_url', '?')}"
    if isinstance(exc, OSError):
        return f"DynamoDB could not be reached: {in_words(exc)}"
    return "DynamoDB did not answer"


# Observers of every request (called with the operation name and its parameters before
# it is sent) and of every response (the operation name and the parsed response, an
# error's included), for every engine in this process. Tests use them to forbid Scan and
# to inspect transactions; they must not change what they are given.
Hook = Callable[[str, dict[str, Any]], None]
request_hooks: list[Hook] = []
response_hooks: list[Hook] = []


def _adder(hooks: list[Hook]) -> Callable[[Hook], Callable[[], None]]:
    def add(hook: Hook) -> Callable[[], None]:
        hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                hooks.remove(hook)

        return remove

    return add


add_request_hook = _adder(request_hooks)
add_request_hook.__doc__ = "Observe every request; returns the function that stops it."
add_response_hook = _adder(response_hooks)
add_response_hook.__doc__ = "Observe every response; returns the function that stops it."


def _on_request(params: dict[str, Any], model: Any = None, **_kwargs: Any) -> None:
    for hook in list(request_hooks):
        hook(getattr(model, "name", "?"), params)


def _on_response(parsed: dict[str, Any], model: Any = None, **_kwargs: Any) -> None:
    for hook in list(response_hooks):
        hook(getattr(model, "name", "?"), parsed)


def _observe(client: Any) -> None:
    """Have a new client call the hooks on each of its requests and responses."""
    client.meta.events.register("provide-client-params.dynamodb", _on_request)
    client.meta.events.register("after-call.dynamodb", _on_response)


class ConditionFailed(Exception):
    """A conditional write found the item not as expected (nothing was written)."""


class TransactionCancelled(Exception):
    """A TransactWriteItems was cancelled; `reasons` holds one code per action
    ("None" for the actions that were fine)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    @property
    def conflicted(self) -> bool:
        """Another transaction was writing one of the items: worth trying again."""
        return "TransactionConflict" in self.reasons


class DynamoEngine:
    def __init__(self, table: Table, region: str, *, session: Any = None) -> None:
        self.table = table
        self.region = region
        self._session: Any = session if session is not None else aioboto3.Session()
        self._config = Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"total_max_attempts": 4, "mode": "standard"},
        )
        self._client = LoopClient(
            lambda: self._session.client("dynamodb", region_name=self.region, config=self._config),
            on_open=_observe,
        )
        self._first_month: str | None = None

    @property
    def name(self) -> str:
        return self.table.name

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One request (`operation` in snake case, e.g. "get_item")."""
        try:
            client = await self._client.get()
            result: dict[str, Any] = await getattr(client, operation)(**params)
            return result
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed() from None
            if code == "TransactionCanceledException":
                reasons = [
                    r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])
                ]
                raise TransactionCancelled(reasons) from None
            raise self._error(exc, refused_in_words(code)) from exc
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise self._error(exc, unanswered_in_words(exc)) from exc

    @staticmethod
    def _error(exc: BaseException, words: str) -> StoreError:
        """The StoreError for an AWS failure: words; the class and code go to the log."""
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        log.warning("store_error", error=words, error_type=type(exc).__name__, code=code)
        return StoreError(words)

    async def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The item at `key` (a strongly consistent GetItem), None when there is none."""
        found = await self.call("get_item", TableName=self.name, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = found.get("Item")
        return item

    def put_new(self, item: dict[str, Any]) -> dict[str, Any]:
        """A transaction's Put of `item`, cancelled when an item with its key exists."""
        return {
            "Put": {
                "TableName": self.name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    async def transact(self, actions: list[dict[str, Any]], attempts: int = 6) -> None:
        """TransactWriteItems, tried again (with jitter) while another transaction held one
        of its items; `TransactionCancelled` for any other cancellation. Each try carries
        its own client request token, so botocore's resend of a try whose answer was lost
        (a timeout) is not applied twice."""
        for attempt in range(attempts):
            try:
                await self.call(
                    "transact_write_items",
                    TransactItems=actions,
                    ClientRequestToken=uuid.uuid4().hex,
                )
                return
            except TransactionCancelled as cancelled:
                if not cancelled.conflicted or attempt == attempts - 1:
                    raise
            await asyncio.sleep(0.01 * (2**attempt) * (0.5 + (time.time_ns() % 1000) / 1000))

    async def first_month(self) -> str:
        """The month the store began (kept in the meta item written by `create_tables`):
        month-partitioned lists walk back to it and no further."""
        if self._first_month is None:
            meta = self.table.meta_key()
            found = await self.call("get_item", TableName=self.name, Key=meta, ConsistentRead=True)
            item = found.get("Item")
            if item is None:
                # made by something other than `create_tables`: start now
                with contextlib.suppress(ConditionFailed):
                    await self.call(
                        "put_item",
                        TableName=self.name,
                        Item={**meta, "first_month": {"S": month_key(time.time_ns() // 1_000_000)}},
                        ConditionExpression="attribute_not_exists(pk)",
                    )
                return await self.first_month()
            self._first_month = str(item["first_month"]["S"])
        return self._first_month

    async def query(
        self,
        key_condition: str,
        attribute_names: dict[str, str],
        values: dict[str, Any],
        *,
        index: str | None = None,
        forward: bool = True,
        consistent: bool = False,
        page_size: int | None = None,
        projection: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The items of one Query, page after page, for as long as the caller reads (an
        index query is eventually consistent; a table query may be consistent)."""
        params: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        if attribute_names:
            params["ExpressionAttributeNames"] = attribute_names
        if index is not None:
            params["IndexName"] = index
        elif consistent:
            params["ConsistentRead"] = True
        if page_size is not None:
            params["Limit"] = page_size
        if projection is not None:
            params["ProjectionExpression"] = projection
        while True:
            page = await self.call("query", **params)
            for item in page.get("Items", []):
                yield item
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    async def month_of(self, resource_id: uuid.UUID) -> str:
        """The month partition an id's item lives in (by the id's UUIDv7 time, clamped
        to [first month, current month])."""
        return clamp_month(
            month_key(id_ms(resource_id)), await self.first_month(), _current_month()
        )

    async def months_back(self, before_id: uuid.UUID | None) -> list[str]:
        """The month partitions to read, newest first, for ids below `before_id`: from
        its month (or the current one) back to the store's first month. Bounded by the
        store's age in months, never by how many items it holds."""
        first = await self.first_month()
        month = (
            await self.month_of(before_id)
            if before_id is not None
            else max(first, _current_month())
        )
        months = []
        while month >= first:
            months.append(month)
            month = previous_month(month)
        return months

    async def newest_first(
        self,
        index: str,
        partitions: list[str],
        before_id: uuid.UUID | None,
        limit: int,
        keep: Callable[[dict[str, Any]], bool] = lambda _item: True,
    ) -> list[dict[str, Any]]:
        """Up to `limit` items kept by `keep`, id < before_id, newest first, reading the
        index's partitions in turn (each newest first) until the page is full or every
        partition is exhausted: filters applied after the read still fill the page."""
        pk_attr, _, sk_attr, _ = INDEXES[index]
        condition = "#p = :p"
        names = {"#p": pk_attr}
        vals: dict[str, Any] = {}
        if before_id is not None:
            condition += " AND #s < :before"
            names["#s"] = sk_attr
            vals[":before"] = {"S": str(before_id)}
        found: list[dict[str, Any]] = []
        if limit <= 0:
            return found
        for partition in partitions:
            async for item in self.query(
                condition,
                names,
                {**vals, ":p": {"S": partition}},
                index=index,
                forward=False,
                page_size=max(limit, 10),
            ):
                if keep(item):
                    found.append(item)
                    if len(found) >= limit:
                        return found
        return found

    async def close(self) -> None:
        await self._client.aclose()


async def first_items(items: AsyncIterator[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first `limit` of a query's `items` (the query is not sent when limit <= 0)."""
    found: list[dict[str, Any]] = []
    if limit <= 0:
        return found
    async for item in items:
        found.append(item)
        if len(found) >= limit:
            break
    return found


def _current_month() -> str:
    return month_key(time.time_ns() // 1_000_000)
