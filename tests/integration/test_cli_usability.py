"""The `orderhub` command as a newcomer meets it: a fresh or broken data dir, a typo in an
option, more deliveries than one page, a port already taken. Each case runs the command
as a subprocess and reads what it says."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from orderhub.delivery.model import DeliveryFilter, Integration, delivery_targets
from orderhub.store.sql.migrate import upgrade_to_head
from orderhub.store.sql.store import SqlStore
from tests.fixtures.cli import cli_env, free_port, run_cli
from tests.fixtures.domain import make_order

CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)*Error\b")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and not CLASS_NAME.search(stderr), stderr
    return lines[0]


# -- a store that is not there yet ---------------------------------------------------------


def test_keys_create_on_a_fresh_data_dir_migrates_it(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    created = run_cli(["keys", "create", "--name", "shop"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert re.search(r"^key:  oh_\S+$", created.stdout, re.M), created.stdout
    listed = run_cli(["keys", "list"], env, tmp_path)
    assert listed.returncode == 0 and "shop" in listed.stdout


def test_deliveries_list_on_a_fresh_data_dir_migrates_it(tmp_path: Path) -> None:
    listed = run_cli(["deliveries", "list"], cli_env(tmp_path / "data"), tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("ID")


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    first = run_cli(["migrate"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "created the schema" in first.stdout, first.stdout
    assert str(Path("data") / "orderhub.db") in first.stdout or "orderhub.db" in first.stdout
    second = run_cli(["migrate"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already up to date" in second.stdout, second.stdout
    assert "created" not in second.stdout


def test_an_unmigrated_postgres_store_says_run_migrate(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    env = cli_env(tmp_path / "data", DATABASE_URL=empty_postgres_url)
    listed = run_cli(["keys", "list"], env, tmp_path)
    assert listed.returncode == 1
    assert "run `orderhub migrate`" in one_line(listed.stderr)
    migrated = run_cli(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "created the schema" in migrated.stdout
    assert run_cli(["keys", "list"], env, tmp_path).returncode == 0


# -- paths that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize("command", [["migrate"], ["keys", "list"], ["serve"]])
def test_a_data_dir_that_cannot_be_created_names_it_and_the_setting(
    tmp_path: Path, command: list[str]
) -> None:
    env = cli_env(Path("/proc/nope"), PORT=str(free_port()))
    result = run_cli(command, env, tmp_path)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "/proc/nope" in line and "DATA_DIR" in line and "DATABASE_URL" not in line, line


def test_a_data_dir_that_is_a_file_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    result = run_cli(["migrate"], cli_env(blocker / "inner"), tmp_path)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert str(blocker) in line and "DATA_DIR" in line, line


def test_a_database_url_path_that_cannot_be_used_names_database_url(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", DATABASE_URL="sqlite:////proc/nope/shop.db")
    result = run_cli(["keys", "list"], env, tmp_path)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "/proc/nope" in line and "DATABASE_URL" in line and "DATA_DIR" not in line, line


def test_a_database_file_that_is_a_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "data" / "orderhub.db").mkdir(parents=True)
    result = run_cli(["keys", "list"], cli_env(tmp_path / "data"), tmp_path)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "orderhub.db" in line and "DATA_DIR" in line, line


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "values"),
    [
        ("--status", ["pending", "in_flight", "delivered", "dead"]),
        ("--integration", [i.value for i in Integration]),
    ],
)
def test_a_wrong_enumerated_value_lists_the_valid_ones(
    tmp_path: Path, option: str, values: list[str]
) -> None:
    result = run_cli(["deliveries", "list", option, "bogus"], cli_env(tmp_path / "d"), tmp_path)
    assert result.returncode == 2
    assert "bogus" in result.stderr and option in result.stderr
    assert all(value in result.stderr for value in values), result.stderr
    assert "DeliveryStatus" not in result.stderr and "Integration'" not in result.stderr
    assert not (tmp_path / "d").exists()  # nothing was opened


@pytest.mark.parametrize(
    "command", [[], ["deliveries"], ["deliveries", "list"], ["keys", "create"], ["serve"]]
)
def test_help_is_clean(tmp_path: Path, command: list[str]) -> None:
    result = run_cli([*command, "--help"], cli_env(tmp_path / "d"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "<bool>" not in result.stdout and "<str>" not in result.stdout, result.stdout
    assert "--help" in result.stdout


def test_deliveries_list_help_names_the_choices(tmp_path: Path) -> None:
    result = run_cli(["deliveries", "list", "--help"], cli_env(tmp_path / "d"), tmp_path)
    for word in ("pending", "in_flight", "delivered", "dead", "--after", "--all", "--limit"):
        assert word in result.stdout, result.stdout


# -- paging ------------------------------------------------------------------------------------


async def _store_with_deliveries(data_dir: Path, orders: int) -> list[str]:
    """`orders` new orders, each with one delivery per integration; their ids newest first."""
    url = f"sqlite:///{data_dir / 'orderhub.db'}"
    upgrade_to_head(url)
    store = SqlStore(url, delivery_targets(list(Integration)))
    try:
        for _ in range(orders):
            async with store.unit_of_work() as uow:
                await uow.orders.add(make_order())
                await uow.commit()
        everything = DeliveryFilter(status=None, order_id=None, integration=None)
        page = await store.deliveries.list_page(everything, None, orders * len(Integration))
    finally:
        await store.close()
    return [str(d.id) for d in page]


def listed_ids(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()[1:] if line.strip()]


async def test_deliveries_list_pages_with_limit_after_and_all(tmp_path: Path) -> None:
    ids = await _store_with_deliveries(tmp_path / "data", orders=4)  # 12 deliveries
    env = cli_env(tmp_path / "data")
    first = run_cli(["deliveries", "list", "--limit", "5"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert listed_ids(first.stdout) == ids[:5]
    assert f"--after {ids[4]}" in first.stderr  # how to get the next page
    second = run_cli(["deliveries", "list", "--limit", "5", "--after", ids[4]], env, tmp_path)
    assert listed_ids(second.stdout) == ids[5:10]
    last = run_cli(["deliveries", "list", "--limit", "5", "--after", ids[9]], env, tmp_path)
    assert listed_ids(last.stdout) == ids[10:]
    assert "--after" not in last.stderr  # the last page
    everything = run_cli(["deliveries", "list", "--all", "--limit", "5"], env, tmp_path)
    assert everything.returncode == 0, everything.stderr
    assert listed_ids(everything.stdout) == ids
    assert everything.stdout.count("ID ") == 1  # one header
    bad = run_cli(["deliveries", "list", "--after", "nope"], env, tmp_path)
    assert bad.returncode == 2 and "--after" in bad.stderr


# -- a port already taken ------------------------------------------------------------------------


def test_a_busy_port_fails_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["serve"], cli_env(tmp_path / "data", PORT=str(port)), tmp_path)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert str(port) in line and "in use" in line, line
    assert "serving" not in result.stdout
    assert not (tmp_path / "data").exists()  # not migrated, no key created, no worker
