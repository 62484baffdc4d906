"""The HTTP side of Idempotency-Key: the header every idempotent route declares, and the
call that runs a route's work through the mechanism."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Header, Request
from pydantic import BaseModel
from starlette.responses import Response

from orderhub.auth.service import Caller
from orderhub.idempotency.service import IdempotencyService
from orderhub.kit.jsonbody import canonical_json
from orderhub.kit.validation import read_model

M = TypeVar("M", bound=BaseModel)

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
    """Run `work` (given the resource id reserved for this key) at most once per key.
    Without a key nothing is compared, so the request's fingerprint is not computed (the
    body was parsed as JSON already, by the route)."""
    if key is None:
        return await idempotency.run(
            caller=caller.identity, key=None, method="", path="", canonical_body="", handler=work
        )
    return await idempotency.run(
        caller=caller.identity,
        key=key,
        method=request.method,
        path=request.url.path,
        canonical_body=canonical_json(raw_body),
        handler=work,
    )


async def run_idempotent_json(
    idempotency: IdempotencyService,
    request: Request,
    caller: Caller,
    key: str | None,
    model: type[M],
    work: Callable[[M], Awaitable[Response]],
) -> Response:
    """Read the JSON body as `model` (a 400 if it is not one), then `run_idempotent` the
    work on it (for routes that need no reserved resource id)."""
    raw, body = await read_model(request, model)

    async def handler(_resource_id: uuid.UUID) -> Response:
        return await work(body)

    return await run_idempotent(idempotency, request, caller, key, handler, raw)
