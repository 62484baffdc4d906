"""One aioboto3 client per running event loop, opened lazily and kept until closed.

An aioboto3 client is an async context manager bound to the event loop that entered it:
a client from another (closed) event loop cannot be reused or closed there. `LoopClient`
opens one from its factory on first use in a loop (one opening at a time per loop, under
a lock), keeps it for every later use in that loop, opens a new one when the running loop
changes, and closes the current one on `aclose()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any


class LoopClient:
    """The client `open_client()` makes (an async context manager, e.g.
    `session.client("sns", ...)`), entered in the running loop; `on_open` is called with
    each client once it is open (before anyone uses it), e.g. to register event hooks."""

    def __init__(
        self,
        open_client: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
        on_open: Callable[[Any], None] | None = None,
    ) -> None:
        self._open_client = open_client
        self._on_open = on_open
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def get(self) -> Any:
        """The client of the running event loop, opened now when it has none yet."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        if self._opening is None or self._opening[0] is not loop:
            self._opening = (loop, asyncio.Lock())
        async with self._opening[1]:
            if self._client is None or self._loop is not loop:
                # a client from another (closed) event loop cannot be reused or closed here
                stack = contextlib.AsyncExitStack()
                client = await stack.enter_async_context(self._open_client())
                if self._on_open is not None:
                    self._on_open(client)
                self._stack, self._client, self._loop = stack, client, loop
            return self._client

    async def aclose(self) -> None:
        """Close the current client (if any); the next `get()` opens a new one."""
        stack, self._stack, self._client, self._loop = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()
