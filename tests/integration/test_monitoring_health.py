"""SPEC §11 `GET /api/monitoring/health` and §3 `/ready`, against real peers on 127.0.0.1.

The SMTP peer is an aiosmtpd server, SNS is moto's threaded server, Stripe is the local
Stripe-protocol server; each is stopped mid-test to take its backend down for real. A
"hanging" peer is a listening socket that accepts connections and never says a word.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from orderhub.delivery.integrations.notify.sns import SnsNotifier
from orderhub.delivery.registry import Integrations
from tests.fixtures.app import AUTH, Harness
from tests.fixtures.peers import REGION, Moto, SmtpPeer, free_port
from tests.fixtures.production import seed_production
from tests.fixtures.stripe_server import FakeStripe

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEALTH = "/api/monitoring/health"
FILE_BACKENDS = {"csv": {"status": "up"}, "notificationsFile": {"status": "up"}}


# -- peers ----------------------------------------------------------------------------------


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A TCP port whose connections are accepted (by the kernel) and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


# -- helpers --------------------------------------------------------------------------------


async def health(h: Harness, **headers: str) -> tuple[int, dict[str, Any]]:
    response = await asyncio.wait_for(h.client.get(HEALTH, headers={**AUTH, **headers}), timeout=10)
    return response.status_code, response.json()


def services(body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = body["data"]
    result: dict[str, Any] = data["services"]
    return result


async def healthy_services(h: Harness) -> dict[str, Any]:
    """The services of a 200 `healthy` answer."""
    status, body = await health(h)
    assert status == 200, body
    assert body["data"]["status"] == "healthy"
    return services(body)


def assert_measured(entry: dict[str, Any], status: str) -> None:
    assert entry["status"] == status
    assert isinstance(entry["latency"], int) and not isinstance(entry["latency"], bool)
    assert 0 <= entry["latency"] < 10_000


def without_latency(items: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in item.items() if k != "latency"} for name, item in items.items()}


# -- the embedded defaults -------------------------------------------------------------------


async def test_defaults_every_backend_is_probed_and_up(harness: Harness) -> None:
    status, body = await health(harness)
    assert status == 200, body
    assert body["success"] is True
    data = body["data"]
    assert set(data) == {"timestamp", "status", "services"}
    assert ISO_MS.match(data["timestamp"])
    assert data["status"] == "healthy"
    assert without_latency(data["services"]) == {
        "sqlite": {"status": "up"},
        "sandbox": {"status": "up"},
        "emailFile": {"status": "up"},
        **FILE_BACKENDS,
    }
    for entry in data["services"].values():
        assert_measured(entry, "up")


async def test_health_needs_credentials(harness: Harness) -> None:
    missing = await harness.refused(HEALTH)
    assert "WWW-Authenticate" in missing.headers
    await harness.refused(HEALTH, headers={"X-API-Key": "not-a-key-0000000000"})


# -- SMTP ---------------------------------------------------------------------------------


async def test_smtp_up_then_down_is_degraded(
    make_harness: Callable[..., Any], smtp_peer: SmtpPeer
) -> None:
    h: Harness = await make_harness(email_backend="smtp", smtp_url=smtp_peer.url)
    items = await healthy_services(h)
    assert set(items) == {"sqlite", "sandbox", "smtp", "csv", "notificationsFile"}
    assert_measured(items["smtp"], "up")

    smtp_peer.stop()
    status, body = await health(h)  # the very next call: no cached answer
    assert status == 200, body
    assert body["success"] is True
    assert body["data"]["status"] == "degraded"
    items = services(body)
    assert_measured(items["smtp"], "down")
    for name in ("sqlite", "sandbox", "csv", "notificationsFile"):
        assert items[name]["status"] == "up", name


async def test_a_hanging_smtp_server_is_down_within_the_probe_timeout(
    make_harness: Callable[..., Any], silent_peer: int
) -> None:
    h: Harness = await make_harness(
        email_backend="smtp", smtp_url=f"smtp://127.0.0.1:{silent_peer}"
    )
    started = time.monotonic()
    status, body = await health(h)  # wait_for(10 s): the probe's own 2 s timeout answers
    elapsed = time.monotonic() - started
    assert status == 200, body
    assert body["data"]["status"] == "degraded"
    items = services(body)
    assert_measured(items["smtp"], "down")
    assert items["smtp"]["latency"] >= 1_500  # it waited for the peer, then gave up
    assert elapsed < 10


async def test_probes_run_concurrently(
    make_harness: Callable[..., Any],
    silent_peer: int,
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three backends that hang: one probe timeout in all, not three in a row."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", f"http://127.0.0.1:{silent_peer}")
    h: Harness = await make_harness(
        payment_provider="stripe",
        stripe_secret_key="sk_test_fake",
        stripe_api_base=f"http://127.0.0.1:{silent_peer}",
        email_backend="smtp",
        smtp_url=f"smtp://127.0.0.1:{silent_peer}",
        notify_backend="sns",
        sns_topic_arn=f"arn:aws:sns:{REGION}:123456789012:orders",
    )
    started = time.monotonic()
    status, body = await health(h)
    elapsed = time.monotonic() - started
    assert status == 503, body
    items = services(body)
    for name in ("stripe", "smtp", "sns"):
        assert_measured(items[name], "down")
        assert items[name]["latency"] >= 1_500, name  # each one waited, then timed out
    assert items["sqlite"]["status"] == "up"
    # in a row they would take at least 3 x 2 s; side by side about 2 s
    assert elapsed < 5.5, elapsed


# -- SNS ----------------------------------------------------------------------------------


async def test_sns_up_then_down_is_degraded(make_harness: Callable[..., Any], moto: Moto) -> None:
    topic = moto.create_topic()
    h: Harness = await make_harness(notify_backend="sns", sns_topic_arn=topic)
    items = await healthy_services(h)
    assert set(items) == {"sqlite", "sandbox", "emailFile", "csv", "sns"}
    assert_measured(items["sns"], "up")

    moto.stop()
    status, body = await health(h)
    assert status == 200, body
    assert body["data"]["status"] == "degraded"
    assert_measured(services(body)["sns"], "down")
    assert services(body)["sandbox"]["status"] == "up"


async def test_sns_topic_that_does_not_exist_is_down(
    make_harness: Callable[..., Any], moto: Moto
) -> None:
    missing = f"arn:aws:sns:{REGION}:123456789012:nope-{uuid.uuid4().hex[:8]}"
    h: Harness = await make_harness(notify_backend="sns", sns_topic_arn=missing)
    status, body = await health(h)
    assert status == 200, body
    assert body["data"]["status"] == "degraded"
    assert services(body)["sns"]["status"] == "down"


async def test_the_sns_client_is_built_at_start_up_not_by_a_health_check(
    make_harness: Callable[..., Any], moto: Moto
) -> None:
    """botocore's first client of a session loads its models on the thread that makes it:
    a health check doing that would block the event loop and time the other probes out."""
    topic = moto.create_topic()
    session = aioboto3.Session()
    built: list[threading.Thread] = []
    session.events.register(
        "creating-client-class.sns", lambda **_: built.append(threading.current_thread())
    )
    h: Harness = await make_harness(
        notify_backend="sns",
        sns_topic_arn=topic,
        integrations=Integrations(notifications=SnsNotifier(topic, session=session)),
    )
    assert built, "start-up built no SNS client"
    assert built[0] is not threading.current_thread()  # the slow first one: in a thread
    at_start = len(built)
    status, body = await health(h)
    assert status == 200, body
    assert services(body)["sns"]["status"] == "up"
    assert len(built) == at_start


# -- Stripe -------------------------------------------------------------------------------


STRIPE_START = """
import asyncio, sys
from pathlib import Path
from orderhub.bootstrap import build_container
from orderhub.store.sql.migrate import upgrade_to_head
from tests.fixtures.app import make_settings

async def main() -> None:
    settings = make_settings(
        Path(sys.argv[1]),
        payment_provider="stripe",
        stripe_secret_key="sk_test_fake",
        stripe_api_base="http://127.0.0.1:9",
    )
    upgrade_to_head(settings.database_url)
    container = build_container(settings)
    await container.start()
    print(sorted(m for m in sys.argv[2:] if m not in sys.modules))
    await container.close()

asyncio.run(main())
"""


def test_the_stripe_sdk_loads_what_it_needs_at_start_up(tmp_path: Path) -> None:
    """The SDK imports a payment intent's class (a quarter of a second) and its services
    on first use: after start-up, none is left for a request or probe on the event loop.
    A fresh process, as nothing else may have imported them before."""
    lazy = ["stripe._payment_intent", "stripe._refund", "stripe._balance_service"]
    done = subprocess.run(
        [sys.executable, "-c", STRIPE_START, str(tmp_path), *lazy],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


async def test_stripe_down_is_unhealthy_503_with_the_health_as_data(
    make_harness: Callable[..., Any], fake_stripe: FakeStripe
) -> None:
    h: Harness = await make_harness(
        payment_provider="stripe",
        stripe_secret_key=fake_stripe.api_key,
        stripe_api_base=fake_stripe.url,
    )
    items = await healthy_services(h)
    assert set(items) == {"sqlite", "stripe", "emailFile", "csv", "notificationsFile"}
    assert_measured(items["stripe"], "up")
    assert fake_stripe.requests_to("GET", "/v1/balance")  # a real call, not a guess

    fake_stripe.stop()
    status, body = await health(h)
    assert status == 503, body
    assert set(body) == {"success", "data", "error"}
    assert body["success"] is False
    assert body["error"] == {"message": "Service unhealthy"}
    data = body["data"]
    assert set(data) == {"timestamp", "status", "services"}
    assert ISO_MS.match(data["timestamp"])
    assert data["status"] == "unhealthy"
    assert_measured(data["services"]["stripe"], "down")
    for name in ("sqlite", "emailFile", "csv", "notificationsFile"):
        assert data["services"][name]["status"] == "up", name


# -- the seed's production configuration ----------------------------------------------------


async def test_seed_configuration_has_exactly_the_seed_keys(
    make_harness: Callable[..., Any],
    fake_stripe: FakeStripe,
    moto: Moto,
    google_credentials: str,
) -> None:
    h: Harness = await make_harness(**seed_production(fake_stripe, moto, google_credentials))
    status, body = await health(h)
    assert status == 200, body
    data = body["data"]
    assert data["status"] == "healthy"
    assert set(data["services"]) == {"sqlite", "stripe", "sendgrid", "googleSheets", "sns"}
    # quota-spending APIs are reported as configured, without a call and so without latency
    assert data["services"]["sendgrid"] == {"status": "configured"}
    assert data["services"]["googleSheets"] == {"status": "configured"}
    for name in ("sqlite", "stripe", "sns"):
        assert_measured(data["services"][name], "up")


# -- backends that are configured only, or not at all ------------------------------------------


async def test_configured_only_and_disabled_backends(make_harness: Callable[..., Any]) -> None:
    webhook: Harness = await make_harness(
        email_backend="none",
        sheets_backend="none",
        notify_backend="webhook",
        notify_webhook_url=f"http://127.0.0.1:{free_port()}/hooks",
        notify_webhook_secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    status, body = await health(webhook)
    assert status == 200, body
    assert body["data"]["status"] == "healthy"
    assert without_latency(services(body)) == {
        "sqlite": {"status": "up"},
        "sandbox": {"status": "up"},
        "webhook": {"status": "configured"},
    }
    nothing: Harness = await make_harness(
        email_backend="none", sheets_backend="none", notify_backend="none"
    )
    status, body = await health(nothing)
    assert status == 200, body
    assert set(services(body)) == {"sqlite", "sandbox"}


# -- Redis (rate-limit counters) ---------------------------------------------------------------


@dataclass
class RedisPeer:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # only the server this test started
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisPeer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    peer = RedisPeer(process, f"redis://127.0.0.1:{port}/0")
    yield peer
    peer.stop()


async def test_redis_up_then_down_is_degraded_and_requests_still_pass(
    make_harness: Callable[..., Any], redis_server: RedisPeer
) -> None:
    h: Harness = await make_harness(redis_url=redis_server.url)
    assert_measured((await healthy_services(h))["redis"], "up")

    redis_server.stop()
    status, body = await health(h)  # passes the limiter although Redis is gone
    assert status == 200, body
    assert body["data"]["status"] == "degraded"
    assert_measured(services(body)["redis"], "down")
    assert services(body)["sqlite"]["status"] == "up"


# -- readiness: the store -------------------------------------------------------------------


async def test_ready_follows_the_store(harness: Harness) -> None:
    ready = await harness.client.get("/ready")  # open: no credentials
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}
    live = await harness.client.get("/health")
    assert live.status_code == 200 and live.json() == {"status": "ok"}

    # take the SQLite file away for real: a directory where the database was
    await harness.container.store.close()  # drops pooled connections; reopened on use
    db = harness.settings.sqlite_path
    assert db is not None
    moved = db.with_name("moved.db")
    db.rename(moved)
    db.mkdir()
    try:
        ready = await harness.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable"}
        assert (await harness.client.get("/health")).status_code == 200  # still alive
        status, body = await health(harness)
        assert status == 503, body
        assert body["success"] is False
        assert body["error"] == {"message": "Service unhealthy"}
        assert body["data"]["status"] == "unhealthy"
        assert_measured(body["data"]["services"]["sqlite"], "down")
        assert body["data"]["services"]["sandbox"]["status"] == "up"
    finally:
        db.rmdir()
        moved.rename(db)
    ready = await harness.client.get("/ready")
    assert ready.status_code == 200
    status, body = await health(harness)
    assert status == 200 and body["data"]["status"] == "healthy"
