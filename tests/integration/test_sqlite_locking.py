"""The SQLite store runs its statements on the event loop; another process holding the
database's write lock makes a write wait, but never the loop: reads and other tasks go
on, and the write goes through once the lock is free."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from orderhub.store.sql.migrate import upgrade_to_head
from tests.fixtures.stores import open_test_store


async def test_a_write_waits_for_another_process_lock_with_the_loop_free(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    store = open_test_store(url)
    try:
        created = await store.server_secret("first")  # the store answers
        other = sqlite3.connect(path, isolation_level=None)  # as another process would
        other.execute("BEGIN IMMEDIATE")
        try:
            write = asyncio.create_task(store.server_secret("second"))
            for _ in range(20):  # the loop keeps running other tasks meanwhile
                await asyncio.sleep(0.01)
            assert not write.done()
            assert await store.server_secret("first") == created  # reads go on
            await store.ping()
        finally:
            other.execute("COMMIT")
            other.close()
        second = await asyncio.wait_for(write, timeout=30)
        assert second and second != created
        assert await store.server_secret("second") == second
    finally:
        await store.close()
