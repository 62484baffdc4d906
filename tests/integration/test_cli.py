"""The `orderhub` command as a user runs it: a subprocess with a fresh data dir."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cli import cli_env, free_port, run_cli, wait_healthy
from tests.fixtures.orders import order_body


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    for _ in range(2):
        result = run_cli(["migrate"], env, tmp_path)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "orderhub.db").exists()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    created = run_cli(["keys", "create", "--name", "shop"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(":", 1) for line in created.stdout.strip().splitlines())
    key_id, key = lines["id"].strip(), lines["key"].strip()
    listed = run_cli(["keys", "list"], env, tmp_path)
    assert key_id in listed.stdout and "shop" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout  # never shown again
    revoked = run_cli(["keys", "revoke", key_id], env, tmp_path)
    assert revoked.returncode == 0
    assert "revoked" in run_cli(["keys", "list"], env, tmp_path).stdout
    assert run_cli(["keys", "revoke", key_id], env, tmp_path).returncode == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "not-a-port"), ("RATE_LIMIT_BY", "moon"), ("PAYMENT_PROVIDER", "stripe")],
)
def test_bad_setting_stops_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = run_cli(["serve"], cli_env(tmp_path / "data", **{variable: value}), tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    expected = "STRIPE_SECRET_KEY" if variable == "PAYMENT_PROVIDER" else variable
    assert len(lines) == 1 and expected in lines[0], result.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    port = free_port()
    env = cli_env(tmp_path / "data", PORT=str(port))
    process = subprocess.Popen(
        [sys.executable, "-m", "orderhub", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    if not wait_healthy(base):
        process.kill()
        pytest.fail(f"serve did not start: {process.communicate()[1]}")
    try:
        yield base, process, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_first_serve_creates_a_key_prints_it_once_and_serves(
    served: tuple[str, subprocess.Popen[str], Path],
) -> None:
    base, process, tmp_path = served
    # The key is on stderr; read what is there so far without blocking forever.
    assert process.stderr is not None
    key = ""
    deadline = time.monotonic() + 10
    while not key and time.monotonic() < deadline:
        line = process.stderr.readline()
        if line.strip().startswith("oh_"):
            key = line.strip()
    assert key, "the generated key was not printed"
    created = httpx.post(f"{base}/api/orders", json=order_body(), headers={"X-API-Key": key})
    assert created.status_code == 201, created.text
    assert httpx.get(f"{base}/api/orders").status_code == 401
    process.terminate()
    out, _ = process.communicate(timeout=15)
    assert key not in out  # keys never reach the logs
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    requests = [r for r in records if r.get("event") == "request"]
    assert any(r["path"] == "/api/orders" and r["status"] == 201 for r in requests)
    assert all("request_id" in r for r in requests)
    # exactly one key was created, and it is listed without its secret
    env = cli_env(tmp_path / "data")
    listed = run_cli(["keys", "list"], env, tmp_path)
    assert listed.stdout.count("default") == 1
