"""The HTTP side of Idempotency-Key: the header every idempotent route declares, and the
call that runs a route's work through the mechanism."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Request
from starlette.responses import Response

from orderhub.auth.service import Caller
from orderhub.idempotency.service import IdempotencyService
from orderhub.kit.jsonbody import canonical_json

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Replays the first response for the same request (SPEC §8)",
    ),
]


async def run_idempotent(
    idempotency: IdempotencyService,
    request: Request,
    caller: Caller,
    key: str | None,
    work: Callable[[uuid.UUID], Awaitable[Response]],
    raw_body: bytes = b"",
) -> Response:
    """Run `work` (given the resource id reserved for this key) at most once per key."""
    return await idempotency.run(
        caller=caller.identity,
        key=key,
        method=request.method,
        path=request.url.path,
        canonical_body=canonical_json(raw_body),
        handler=work,
    )
