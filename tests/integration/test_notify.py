"""Notification backends (SPEC §10): the JSONL file, SNS (moto's server) and webhooks.

Everything talks to 127.0.0.1 only: SNS/SQS are moto's threaded server with fixed
"testing" credentials, the webhook receiver is a stdlib HTTP server that verifies each
request with the `standardwebhooks` library.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aioboto3
import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from standardwebhooks import Webhook

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    notification_payload,
)
from orderhub.delivery.integrations.notify.file import FileNotifier
from orderhub.delivery.integrations.notify.sns import SnsNotifier, client_error
from orderhub.delivery.integrations.notify.webhook import WebhookNotifier
from tests.fixtures.orders import api_order
from tests.fixtures.peers import QuietHandler

REGION = "us-east-1"
CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


def order(order_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """An order as the API presents it (`OrderOut`)."""
    one_item = [{"id": "item_1", "name": "Product A", "quantity": 2, "price": 29.99}]
    return api_order(order_id, **{"items": one_item, "totalAmount": 59.98, **changes})


def message(
    event_type: str = "order.created",
    *,
    order_id: str | None = None,
    delivery_id: str | None = None,
    event_id: str | None = None,
    version: int = 1,
    **changes: Any,
) -> DeliveryMessage:
    return DeliveryMessage(
        delivery_id=delivery_id or str(uuid.uuid4()),
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type,
        occurred_at=datetime(2025, 11, 29, 10, 30, 0, 123000, tzinfo=UTC),
        order=order(order_id, **changes),
        order_version=version,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ======================================================================================
# file
# ======================================================================================


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    return tmp_path / "data" / "notifications.jsonl"


async def test_file_one_line_per_delivery(jsonl: Path) -> None:
    notifier = FileNotifier(jsonl)
    first = message("order.created", customerName='=HYPERLINK("x")\u2028next')
    second = message("order.paid", order_id=first.order["id"], version=2)
    await notifier.publish(first)
    await notifier.publish(second)

    lines = read_lines(jsonl)
    assert [line["deliveryId"] for line in lines] == [first.delivery_id, second.delivery_id]
    assert lines[0] == {"deliveryId": first.delivery_id, **notification_payload(first)}
    assert lines[0]["id"] == first.event_id
    assert lines[0]["type"] == "order.created"
    assert lines[0]["createdAt"] == "2025-11-29T10:30:00.123Z"
    # customer text is carried as is in JSON
    assert lines[0]["data"]["order"]["customerName"] == '=HYPERLINK("x")\u2028next'


async def test_file_retry_does_not_duplicate(jsonl: Path) -> None:
    notifier = FileNotifier(jsonl)
    delivery = message()
    other = message("order.paid")
    await notifier.publish(delivery)
    await notifier.publish(delivery)
    await notifier.publish(other)
    await notifier.publish(delivery)
    # another process (a fresh notifier) retrying it finds it in the file
    again = FileNotifier(jsonl)
    await again.publish(delivery)
    await again.publish(other)
    assert [line["deliveryId"] for line in read_lines(jsonl)] == [
        delivery.delivery_id,
        other.delivery_id,
    ]
    # and a notifier that already indexed the file sees what another one added since
    third = message("order.shipped")
    await again.publish(third)
    await notifier.publish(third)
    assert len(read_lines(jsonl)) == 3


async def test_file_concurrent_publishers(jsonl: Path) -> None:
    deliveries = [message() for _ in range(20)]
    notifiers = [FileNotifier(jsonl) for _ in range(3)]

    async def in_tasks() -> None:
        await asyncio.gather(*(n.publish(d) for n in notifiers for d in deliveries))

    def in_threads() -> None:
        def work() -> None:
            other = FileNotifier(jsonl)
            for d in reversed(deliveries):
                asyncio.run(other.publish(d))

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    await asyncio.gather(in_tasks(), asyncio.to_thread(in_threads))
    ids = [line["deliveryId"] for line in read_lines(jsonl)]
    assert sorted(ids) == sorted(d.delivery_id for d in deliveries)


async def test_file_torn_last_line_is_terminated(jsonl: Path) -> None:
    notifier = FileNotifier(jsonl)
    first = message()
    await notifier.publish(first)
    torn = message()
    with jsonl.open("ab") as handle:  # a crash in the middle of an append
        handle.write(json.dumps({"deliveryId": torn.delivery_id, "id": "x"}).encode()[:20])

    await FileNotifier(jsonl).publish(torn)
    raw = jsonl.read_text(encoding="utf-8").splitlines()
    assert len(raw) == 3
    records = []
    for line in raw:
        try:
            records.append(json.loads(line)["deliveryId"])
        except ValueError:
            continue
    assert records == [first.delivery_id, torn.delivery_id]


async def test_file_replaced_file_is_reindexed(jsonl: Path) -> None:
    notifier = FileNotifier(jsonl)
    delivery = message()
    await notifier.publish(delivery)
    jsonl.rename(jsonl.with_suffix(".jsonl.1"))  # rotated away
    fresh = message()
    await notifier.publish(fresh)
    assert [line["deliveryId"] for line in read_lines(jsonl)] == [fresh.delivery_id]


async def test_file_probe(tmp_path: Path) -> None:
    await FileNotifier(tmp_path / "data" / "notifications.jsonl").probe()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        await FileNotifier(blocker / "notifications.jsonl").probe()


# ======================================================================================
# SNS (moto server)
# ======================================================================================


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def session() -> Any:
    return aioboto3.Session(region_name=REGION, **CREDENTIALS)


@dataclass
class Wiring:
    topic_arn: str
    queue_url: str
    sqs: Any


@pytest.fixture
def aws(moto_url: str, aws_env: None) -> Iterator[dict[str, Any]]:
    clients = {
        name: boto3.client(name, endpoint_url=moto_url, region_name=REGION, **CREDENTIALS)
        for name in ("sns", "sqs")
    }
    yield clients
    for client in clients.values():
        client.close()


def wire(aws: dict[str, Any], *, fifo: bool, raw: bool) -> Wiring:
    sns, sqs = aws["sns"], aws["sqs"]
    suffix = ".fifo" if fifo else ""
    name = f"orders-{uuid.uuid4().hex[:12]}"
    topic = sns.create_topic(Name=name + suffix, Attributes={"FifoTopic": "true"} if fifo else {})[
        "TopicArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"q-{name}{suffix}", Attributes={"FifoQueue": "true"} if fifo else {}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true" if raw else "false"},
    )
    return Wiring(topic, queue_url, sqs)


def receive(wiring: Wiring, expected: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        answer = wiring.sqs.receive_message(
            QueueUrl=wiring.queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        got = answer.get("Messages", [])
        messages += got
        if len(messages) >= expected and not got:
            break
        if not got:
            time.sleep(0.05)
    return messages


@pytest.fixture
async def sns_notifier_factory(moto_url: str) -> AsyncIterator[Any]:
    made: list[SnsNotifier] = []

    def make(topic_arn: str, endpoint_url: str | None = None) -> SnsNotifier:
        notifier = SnsNotifier(
            topic_arn, REGION, endpoint_url or moto_url, session=session(), connect_timeout=1
        )
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.aclose()


async def test_sns_standard_topic_envelope(aws: dict[str, Any], sns_notifier_factory: Any) -> None:
    wiring = wire(aws, fifo=False, raw=False)
    notifier: SnsNotifier = sns_notifier_factory(wiring.topic_arn)
    delivery = message("order.paid", customerName="<b>Ann</b> & =cmd")
    await notifier.publish(delivery)

    [received] = receive(wiring, 1)
    envelope = json.loads(received["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"] == wiring.topic_arn
    assert json.loads(envelope["Message"]) == notification_payload(delivery)
    assert envelope["MessageAttributes"]["eventType"] == {"Type": "String", "Value": "order.paid"}
    assert json.loads(envelope["Message"])["data"]["order"]["customerName"] == "<b>Ann</b> & =cmd"


async def test_sns_raw_delivery_carries_the_attribute(
    aws: dict[str, Any], sns_notifier_factory: Any
) -> None:
    wiring = wire(aws, fifo=False, raw=True)
    notifier: SnsNotifier = sns_notifier_factory(wiring.topic_arn)
    first, second = message("order.created"), message("order.shipped")
    await notifier.publish(first)
    await notifier.publish(second)  # the same client, kept open

    received = receive(wiring, 2)
    bodies = {json.loads(m["Body"])["id"]: m for m in received}
    assert set(bodies) == {first.event_id, second.event_id}
    attribute = bodies[second.event_id]["MessageAttributes"]["eventType"]
    assert attribute["DataType"] == "String"
    assert attribute["StringValue"] == "order.shipped"
    assert json.loads(bodies[first.event_id]["Body"]) == notification_payload(first)


async def test_sns_fifo_group_and_dedup_id(aws: dict[str, Any], sns_notifier_factory: Any) -> None:
    wiring = wire(aws, fifo=True, raw=True)
    notifier: SnsNotifier = sns_notifier_factory(wiring.topic_arn)
    assert notifier.fifo
    delivery = message("order.created")
    await notifier.publish(delivery)
    await notifier.publish(delivery)  # a retry: SNS/SQS FIFO drop it by dedup id
    later = message("order.paid", order_id=delivery.order["id"], version=2)
    await notifier.publish(later)

    received = receive(wiring, 2)
    assert [json.loads(m["Body"])["id"] for m in received] == [delivery.event_id, later.event_id]
    attributes = received[0]["Attributes"]
    assert attributes["MessageGroupId"] == delivery.order["id"]
    assert attributes["MessageDeduplicationId"] == delivery.event_id
    assert received[0]["MessageAttributes"]["eventType"]["StringValue"] == "order.created"


async def test_sns_missing_topic_is_permanent(
    aws: dict[str, Any], sns_notifier_factory: Any
) -> None:
    missing = f"arn:aws:sns:{REGION}:123456789012:nope-{uuid.uuid4().hex[:8]}"
    notifier: SnsNotifier = sns_notifier_factory(missing)
    with pytest.raises(PermanentDeliveryError, match="NotFound"):
        await notifier.publish(message())
    with pytest.raises(PermanentDeliveryError):
        await notifier.probe()


async def test_sns_probe(aws: dict[str, Any], sns_notifier_factory: Any) -> None:
    wiring = wire(aws, fifo=False, raw=True)
    await sns_notifier_factory(wiring.topic_arn).probe()


async def test_sns_server_down_is_transient(aws_env: None, sns_notifier_factory: Any) -> None:
    topic = f"arn:aws:sns:{REGION}:123456789012:orders"
    notifier: SnsNotifier = sns_notifier_factory(topic, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientDeliveryError):
        await notifier.publish(message())
    with pytest.raises(TransientDeliveryError):
        await notifier.probe()


def test_sns_region_from_the_arn() -> None:
    notifier = SnsNotifier("arn:aws:sns:eu-west-3:123456789012:orders.fifo", None, None)
    assert notifier.region == "eu-west-3"
    assert notifier.fifo
    with pytest.raises(ValueError, match="SNS_TOPIC_ARN"):
        SnsNotifier("", None, None)


def _client_error(code: str, status: int, retry_after: str | None = None) -> ClientError:
    headers = {"retry-after": retry_after} if retry_after else {}
    return ClientError(
        {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        },
        "Publish",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("Throttling", 400, TransientDeliveryError),
        ("ThrottledException", 429, TransientDeliveryError),
        ("KMSThrottling", 400, TransientDeliveryError),
        ("InternalError", 500, TransientDeliveryError),
        ("ServiceUnavailable", 503, TransientDeliveryError),
        ("AuthorizationError", 403, TransientDeliveryError),
        ("InvalidClientTokenId", 403, TransientDeliveryError),
        ("ExpiredToken", 400, TransientDeliveryError),
        ("SomethingNew", 502, TransientDeliveryError),
        ("NotFound", 404, PermanentDeliveryError),
        ("InvalidParameter", 400, PermanentDeliveryError),
        ("InvalidParameterValue", 400, PermanentDeliveryError),
        ("SomethingElse", 400, PermanentDeliveryError),
    ],
)
def test_sns_error_classification(code: str, status: int, kind: type[Exception]) -> None:
    error = client_error(_client_error(code, status))
    assert type(error) is kind
    assert code in str(error)


def test_sns_throttling_retry_after() -> None:
    error = client_error(_client_error("Throttling", 429, "3"))
    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after == 3.0


# ======================================================================================
# webhooks
# ======================================================================================

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: Any


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    seen: set[str] = field(default_factory=set)

    def unique_deliveries(self) -> list[Any]:
        """What a receiver honouring `webhook-id` keeps."""
        kept: dict[str, Any] = {}
        for r in self.requests:
            kept.setdefault(r.headers["webhook-id"], r.verified)
        return list(kept.values())


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    verifier = Webhook(SECRET)

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verified = verifier.verify(body, headers)
            except Exception as exc:
                verified = exc
            state.requests.append(Received(headers, body, verified))
            if state.delay:
                time.sleep(state.delay)
            status = state.status if not isinstance(verified, Exception) else 400
            self.send_response(status)
            for k, v in state.headers.items():
                self.send_header(k, v)
            reply = b'{"ok":false,"error":"nope"}' if status >= 300 else b""
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_HEAD(self) -> None:
            state.requests.append(Received({}, b"", "HEAD"))
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = _Quiet(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/orders"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def test_webhook_signed_and_verified(receiver: Receiver, http: httpx.AsyncClient) -> None:
    notifier = WebhookNotifier(receiver.url, SECRET, http)
    delivery = message("order.shipped", trackingNumber="1Z999", customerName="<script>")
    await notifier.publish(delivery)

    [request] = receiver.requests
    assert not isinstance(request.verified, Exception), request.verified
    assert request.verified == notification_payload(delivery)
    assert request.headers["webhook-id"] == delivery.event_id
    assert request.headers["content-type"] == "application/json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 10
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.verified["data"]["order"]["customerName"] == "<script>"


async def test_webhook_retry_keeps_the_webhook_id(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    notifier = WebhookNotifier(receiver.url, SECRET, http)
    delivery = message()
    receiver.status = 503
    with pytest.raises(TransientDeliveryError, match="503"):
        await notifier.publish(delivery)
    receiver.status = 200
    await notifier.publish(delivery)
    await notifier.publish(delivery)
    assert len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.event_id}
    assert receiver.unique_deliveries() == [notification_payload(delivery)]


async def test_webhook_signature_fails_with_another_secret(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    other = "whsec_" + base64.b64encode(b"another secret of 24 bytes").decode()
    notifier = WebhookNotifier(receiver.url, other, http)
    with pytest.raises(PermanentDeliveryError, match="400"):
        await notifier.publish(message())
    assert isinstance(receiver.requests[0].verified, Exception)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, TransientDeliveryError),
        (502, TransientDeliveryError),
        (429, TransientDeliveryError),
        (401, TransientDeliveryError),
        (403, TransientDeliveryError),
        (408, TransientDeliveryError),
        (409, TransientDeliveryError),
        (400, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (410, PermanentDeliveryError),
        (422, PermanentDeliveryError),
        (301, PermanentDeliveryError),
    ],
)
async def test_webhook_status_classified(
    receiver: Receiver, http: httpx.AsyncClient, status: int, kind: type[Exception]
) -> None:
    receiver.status = status
    if status == 301:
        receiver.headers = {"Location": "http://127.0.0.1:1/elsewhere"}
    notifier = WebhookNotifier(receiver.url, SECRET, http)
    with pytest.raises(kind, match=str(status)) as caught:
        await notifier.publish(message())
    assert type(caught.value) is kind
    # who answered what, in words, for the delivery's lastError
    assert str(caught.value).startswith(f"the webhook answered HTTP {status}")
    assert len(receiver.requests) == 1  # no redirect followed, no SDK retry


async def test_webhook_2xx_delivered(receiver: Receiver, http: httpx.AsyncClient) -> None:
    for status in (200, 201, 202, 204):
        receiver.status = status
        await WebhookNotifier(receiver.url, SECRET, http).publish(message())
    assert len(receiver.requests) == 4


async def test_webhook_429_retry_after(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.status = 429
    receiver.headers = {"Retry-After": "12"}
    with pytest.raises(TransientDeliveryError) as caught:
        await WebhookNotifier(receiver.url, SECRET, http).publish(message())
    assert caught.value.retry_after == 12.0
    assert "nope" in str(caught.value)  # the receiver's answer, for the operator


async def test_webhook_timeout_is_transient(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.delay = 1.0
    notifier = WebhookNotifier(receiver.url, SECRET, http, timeout=0.2)
    with pytest.raises(TransientDeliveryError, match="timed out") as caught:
        await notifier.publish(message())
    assert str(caught.value) == "the webhook timed out"


async def test_webhook_refused_is_transient() -> None:
    async with WebhookNotifier(f"http://127.0.0.1:{closed_port()}/hook", SECRET) as notifier:
        with pytest.raises(TransientDeliveryError, match="unreachable") as caught:
            await notifier.publish(message())
    assert "Error" not in str(caught.value), "a Python class name in an operator's answer"


async def test_webhook_own_client(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, SECRET)
    await notifier.publish(message())
    await notifier.publish(message())
    await notifier.aclose()
    await notifier.publish(message())  # reopens after close
    await notifier.aclose()
    assert len(receiver.requests) == 3


async def test_webhook_probe_makes_no_request(receiver: Receiver) -> None:
    await WebhookNotifier(receiver.url, SECRET).probe()
    assert receiver.requests == []


def test_webhook_configuration_checked() -> None:
    with pytest.raises(ValueError, match="NOTIFY_WEBHOOK_SECRET"):
        WebhookNotifier("https://example.com/hook", "")
    with pytest.raises(ValueError, match="NOTIFY_WEBHOOK_SECRET"):
        WebhookNotifier("https://example.com/hook", "whsec_not*base64!")
    with pytest.raises(ValueError, match="NOTIFY_WEBHOOK_URL"):
        WebhookNotifier("ftp://example.com/hook", SECRET)
    with pytest.raises(ValueError, match="NOTIFY_WEBHOOK_URL"):
        WebhookNotifier("not a url", SECRET)
    # the signature is the Standard Webhooks one, reproducible by any receiver
    notifier = WebhookNotifier("https://example.com/hook", SECRET)
    at = datetime(2025, 11, 29, 10, 30, tzinfo=UTC)
    headers = notifier.signed_headers("evt_1", '{"a":1}', at)
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    assert headers["webhook-signature"] == Webhook(SECRET).sign("evt_1", at, '{"a":1}')
