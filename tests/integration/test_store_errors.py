"""A store that fails says what failed in words: the StoreError's text (what reaches the
CLI, health and the error log) names the database and the trouble, never a Python class;
the driver's class stays in the structured log."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from orderhub.store.protocol import StoreError
from tests.fixtures.cli import cli_env, free_port, run_cli
from tests.fixtures.stores import POSTGRES_URL, open_test_store, require_postgres

# a CamelCase word ending like an exception class (OperationalError, ClientError, ...)
CLASS_LIKE = re.compile(r"\b[A-Z][a-z]+[A-Za-z]*(Error|Exception|Warning)\b")


def _causes(exc: BaseException) -> list[str]:
    names, seen = [], exc.__cause__ or exc.__context__
    while seen is not None:
        names.append(type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return names


async def _failure(database_url: str) -> StoreError:
    store = open_test_store(database_url)
    try:
        with pytest.raises(StoreError) as caught:
            await store.server_secret("pagination")
    finally:
        await store.close()
    return caught.value


def _assert_in_words(error: StoreError, expected: str) -> None:
    text = str(error)
    assert expected in text, text
    assert not CLASS_LIKE.search(text), text
    assert _causes(error), "the driver's error stays chained (for the logs)"
    for name in _causes(error):
        assert name not in text, text


def _sqlite_unmigrated(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path / 'new.db'}", "has no orderhub tables (run `orderhub migrate`)"


def _postgres_closed(_tmp_path: Path) -> tuple[str, str]:
    port = free_port()
    return (
        f"postgresql://postgres@127.0.0.1:{port}/test",
        f"could not connect to PostgreSQL at 127.0.0.1:{port}: the connection was refused",
    )


def _postgres_no_database(_tmp_path: Path) -> tuple[str, str]:
    require_postgres()
    return (
        POSTGRES_URL.rsplit("/", 1)[0] + "/orderhub_no_such_database",
        "could not connect to PostgreSQL at 127.0.0.1:5432: the database does not exist",
    )


@pytest.mark.parametrize("broken", [_sqlite_unmigrated, _postgres_closed, _postgres_no_database])
async def test_sql_store_failures_are_told_in_words(
    broken: Callable[[Path], tuple[str, str]], tmp_path: Path
) -> None:
    url, expected = broken(tmp_path)
    _assert_in_words(await _failure(url), expected)


async def test_dynamodb_table_that_does_not_exist_is_told_in_words(dynamodb_env: str) -> None:
    error = await _failure("dynamodb://nosuchprefix")
    _assert_in_words(error, "the DynamoDB table does not exist (run `orderhub migrate`)")


async def test_dynamodb_that_cannot_be_reached_is_told_in_words(
    dynamodb_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    _assert_in_words(
        await _failure("dynamodb://any"), f"could not connect to DynamoDB at {endpoint}"
    )


def test_the_cli_tells_a_store_it_cannot_reach_in_words(tmp_path: Path) -> None:
    port = free_port()
    unreachable = f"could not connect to PostgreSQL at 127.0.0.1:{port}"
    folder = tmp_path / "a-folder"
    folder.mkdir()
    cases = [
        (f"postgresql://postgres@127.0.0.1:{port}/x", ["keys", "list"], unreachable),
        (f"postgresql://postgres@127.0.0.1:{port}/x", ["migrate"], unreachable),
        (f"sqlite:///{folder}", ["keys", "list"], f"{folder} is not a file; check DATABASE_URL"),
    ]
    for url, args, expected in cases:
        result = run_cli(args, cli_env(tmp_path / "data", DATABASE_URL=url), tmp_path)
        assert result.returncode == 1, result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert expected in line, line
        assert not CLASS_LIKE.search(line), line
