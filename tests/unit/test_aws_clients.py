"""kit.aws_clients.LoopClient: one client per running event loop, opened once, closed."""

from __future__ import annotations

import asyncio

from orderhub.kit.aws_clients import LoopClient


class Clients:
    """A factory of fake clients (numbered) that records what was opened, seen and closed."""

    def __init__(self) -> None:
        self.opened: list[int] = []
        self.seen: list[int] = []
        self.closed: list[int] = []

    def open(self) -> Client:
        return Client(self)


class Client:
    """An async context manager like an aioboto3 client's (not closed by its loop's end)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.number = -1

    async def __aenter__(self) -> int:
        await asyncio.sleep(0)  # let concurrent callers meet at the lock
        self.number = len(self.clients.opened)
        self.clients.opened.append(self.number)
        return self.number

    async def __aexit__(self, *exc_info: object) -> None:
        self.clients.closed.append(self.number)


def test_one_client_per_loop_opened_once_and_seen_before_use() -> None:
    clients = Clients()
    client = LoopClient(clients.open, on_open=clients.seen.append)

    async def in_one_loop() -> list[int]:
        return list(await asyncio.gather(*(client.get() for _ in range(5))))

    assert asyncio.run(in_one_loop()) == [0] * 5
    assert clients.opened == [0] and clients.seen == [0] and clients.closed == []

    # another loop: a client of its own (the first one's loop is gone)
    async def in_another_loop() -> int:
        first = await client.get()
        assert await client.get() == first
        await client.aclose()
        return first

    assert asyncio.run(in_another_loop()) == 1
    assert clients.opened == [0, 1] and clients.seen == [0, 1] and clients.closed == [1]


def test_aclose_closes_the_client_and_the_next_use_opens_another() -> None:
    clients = Clients()
    client = LoopClient(clients.open)

    async def main() -> None:
        assert await client.get() == 0
        await client.aclose()
        await client.aclose()  # nothing left to close
        assert clients.closed == [0]
        assert await client.get() == 1
        await client.aclose()

    asyncio.run(main())
    assert clients.closed == [0, 1]
