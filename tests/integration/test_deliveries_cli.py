"""Operators' side of the outbox, as a user runs it: a receiver that answers 410 makes the
delivery dead at once; `orderhub deliveries list/retry` and `orderhub worker` fix it."""

from __future__ import annotations

import base64
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cli import cli_env, free_port, run_cli, start_cli, wait_healthy
from tests.fixtures.orders import order_body
from tests.fixtures.peers import WebhookPeer

KEY = "cli-test-key-1234"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _env(data_dir: Path, receiver: WebhookPeer, port: int) -> dict[str, str]:
    return cli_env(
        data_dir,
        API_KEYS=KEY,
        PORT=str(port),
        NOTIFY_BACKEND="webhook",
        NOTIFY_WEBHOOK_URL=receiver.url,
        NOTIFY_WEBHOOK_SECRET=SECRET,
        EMAIL_BACKEND="none",
        SHEETS_BACKEND="none",
        LOG_LEVEL="warning",
    )


@pytest.mark.parametrize("bulk", [False, True], ids=["one", "all-dead"])
def test_dead_delivery_listed_and_retried_by_cli_then_delivered_by_worker(
    tmp_path: Path, bulk: bool
) -> None:
    receiver = WebhookPeer(status=410)
    port = free_port()
    env = _env(tmp_path / "data", receiver, port)
    server = start_cli(["serve"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base), "server did not start"
        created = httpx.post(f"{base}/api/orders", json=order_body(), headers={"X-API-Key": KEY})
        assert created.status_code == 201
        order_id = created.json()["data"]["order"]["id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            dead = httpx.get(
                f"{base}/api/monitoring/deliveries?status=dead", headers={"X-API-Key": KEY}
            ).json()["data"]
            if dead:
                break
            time.sleep(0.2)
        assert [d["orderId"] for d in dead] == [order_id]
        assert dead[0]["lastError"].startswith("the webhook answered HTTP 410")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)

    listed = run_cli(["deliveries", "list", "--status", "dead"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    delivery_id = dead[0]["id"]
    assert delivery_id in listed.stdout and "HTTP 410" in listed.stdout

    receiver.status = 200
    if bulk:
        usage = run_cli(["deliveries", "retry", delivery_id, "--all-dead"], env, tmp_path)
        assert usage.returncode == 2 and "not both" in usage.stderr
        other = ["deliveries", "retry", "--all-dead", "--integration", "email"]
        assert run_cli(other, env, tmp_path).stdout.strip() == "queued 0 dead deliveries"
        command = ["deliveries", "retry", "--all-dead", "--since", "1h"]
    else:
        command = ["deliveries", "retry", delivery_id]
    retried = run_cli(command, env, tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith("queued 1 dead delivery" if bulk else f"queued {delivery_id}")
    again = run_cli(["deliveries", "retry", delivery_id], env, tmp_path)
    assert again.returncode == 1 and "Only dead deliveries" in again.stderr

    worker = start_cli(["worker"], env, tmp_path)
    try:
        deadline = time.monotonic() + 20
        while not receiver.accepted() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0  # a graceful stop
    assert [(b["type"], b["data"]["order"]["id"]) for b in receiver.accepted()] == [
        ("order.created", order_id)
    ]
    delivered = run_cli(["deliveries", "list", "--order", order_id], env, tmp_path)
    assert "delivered" in delivered.stdout
    receiver.stop()
