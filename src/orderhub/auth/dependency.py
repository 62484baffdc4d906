"""FastAPI dependency: every /api/ route requires a caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from orderhub.auth.service import Caller

if TYPE_CHECKING:
    from orderhub.bootstrap import Container


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def require_caller(request: Request) -> Caller:
    cached = getattr(request.state, "caller", None)
    if isinstance(cached, Caller):
        return cached
    caller = await container_of(request).authenticator.authenticate(
        request.headers.get("x-api-key"), request.headers.get("authorization")
    )
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
