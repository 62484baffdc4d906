"""The `sns` notifier: one `Publish` per delivery to `SNS_TOPIC_ARN` (aioboto3).

The message is the JSON of `notification_payload`, with the message attribute
`eventType`; on a FIFO topic (`...fifo`) `MessageGroupId` is the order id (per-order
ordering) and `MessageDeduplicationId` the event id, so SNS drops a retried publish within
its 5-minute de-duplication window.

The endpoint is `endpoint_url` or, when None, botocore's own resolution
(`AWS_ENDPOINT_URL_SNS` / `AWS_ENDPOINT_URL`, then AWS); the region is `region`, else the
topic ARN's. Credentials come from the given `aioboto3.Session` (default chain otherwise).
The SDK does not retry (`max_attempts=1`): the outbox owns retries and backoff.

The client is built by `open()` at start-up (else on first use) and kept (one connection
pool); `aclose()` (or `async with`) releases it. botocore reads and parses its service
models and endpoint data, and resolves credentials, when a session makes its first
client: seconds of blocked event loop on a busy machine, enough to time out every other
health probe. `open()` does that part in a thread, with a throwaway client of the same
session, so the event loop only assembles its own client from the cached models.

Errors: throttling, 5xx, 401/403 (incl. `AuthorizationError`, expired or rotated
credentials), KMS throttling/unavailability, connection errors and timeouts are transient;
`NotFound` (no such topic), `InvalidParameter` and other 4xx are permanent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)

from orderhub.delivery.integrations.base import (
    DeliveryError,
    DeliveryMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    http_error,
    notification_payload,
    parse_retry_after,
)
from orderhub.kit.aws_clients import LoopClient
from orderhub.kit.closing import AsyncClosing
from orderhub.kit.failures import reason

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "KMSThrottling",
        "KMSThrottlingException",
        "KMSInvalidState",  # key pending rotation/enablement
        "KMSDisabled",
        "KMSAccessDenied",
        "AuthorizationError",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
PERMANENT_CODES = frozenset(
    {
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidParameterException",
        "ValidationError",
        "KMSNotFound",
        "InvalidSecurity",
        "EndpointDisabled",
    }
)


def is_fifo(topic_arn: str) -> bool:
    return topic_arn.endswith(".fifo")


def client_error(exc: ClientError) -> DeliveryError:
    """Classify an AWS error answer by code, then by HTTP status (SPEC §10)."""
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    error = response.get("Error", {}) or {}
    code = str(error.get("Code", ""))
    detail = f"{code}: {error.get('Message', '')}"
    meta = response.get("ResponseMetadata", {}) or {}
    status = int(meta.get("HTTPStatusCode") or 0)
    headers = meta.get("HTTPHeaders", {}) or {}
    retry_after = headers.get("retry-after")
    if code in TRANSIENT_CODES:
        return TransientDeliveryError(
            f"SNS answered HTTP {status}: {detail}", retry_after=parse_retry_after(retry_after)
        )
    if code in PERMANENT_CODES:
        return PermanentDeliveryError(f"SNS answered HTTP {status}: {detail}")
    if status == 0:
        return TransientDeliveryError(f"SNS: {detail}")
    return http_error("SNS", status, detail, retry_after)


class SnsNotifier(AsyncClosing):
    """`Notifier` + `Probe` publishing to one SNS topic (standard or FIFO)."""

    def __init__(
        self,
        topic_arn: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        session: Any = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        if not topic_arn:
            raise ValueError("SNS_TOPIC_ARN is required for NOTIFY_BACKEND=sns")
        self.topic_arn = topic_arn
        parts = topic_arn.split(":")
        self.region = region or (parts[3] if len(parts) > 3 and parts[3] else None)
        self.endpoint_url = endpoint_url or None
        self.fifo = is_fifo(topic_arn)
        self._session: Any = session if session is not None else aioboto3.Session()
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        self._client = LoopClient(self._client_context)

    # -- public API ---------------------------------------------------------------------

    async def publish(self, message: DeliveryMessage) -> None:
        body = json.dumps(
            notification_payload(message), ensure_ascii=False, separators=(",", ":"), default=str
        )
        params: dict[str, Any] = {
            "TopicArn": self.topic_arn,
            "Message": body,
            "MessageAttributes": {
                "eventType": {"DataType": "String", "StringValue": message.event_type}
            },
        }
        if self.fifo:
            params["MessageGroupId"] = str(message.order.get("id") or message.event_id)
            params["MessageDeduplicationId"] = message.event_id
        await self._do("publish", params)

    async def probe(self) -> None:
        await self._do("get_topic_attributes", {"TopicArn": self.topic_arn})

    async def open(self) -> None:
        """Build the client now (at start-up), botocore's slow first part in a thread."""
        await asyncio.to_thread(asyncio.run, self._throwaway_client())
        await self._client.get()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- internals ----------------------------------------------------------------------

    def _client_context(self) -> Any:
        return self._session.client(
            "sns", region_name=self.region, endpoint_url=self.endpoint_url, config=self._config
        )

    async def _throwaway_client(self) -> None:
        """Make (and close) a client on another event loop: what botocore loads for it
        stays cached in the session."""
        async with self._client_context():
            pass

    async def _do(self, operation: str, params: dict[str, Any]) -> Any:
        try:
            client = await self._client.get()
            return await getattr(client, operation)(**params)
        except ClientError as exc:
            raise client_error(exc) from exc
        except ParamValidationError as exc:
            raise PermanentDeliveryError(f"SNS request rejected: {exc}") from exc
        except (NoCredentialsError, NoRegionError) as exc:
            # credentials may be appearing (rotation, instance role) -- like a 401
            raise TransientDeliveryError(f"SNS: {exc}") from exc
        except (BotoCoreError, OSError, TimeoutError) as exc:
            # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ...
            raise TransientDeliveryError(f"SNS is unreachable: {reason(exc)}") from exc
