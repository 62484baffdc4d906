"""Bare Starlette answering a small JSON document: the floor of the HTTP stack (uvicorn,
the ASGI app, JSON) that every orderhub request also pays.

    .venv/bin/uvicorn bench.baseline.starlette_json:app --port 3101 --no-access-log
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"success": True, "data": {"status": "ok"}})


app = Starlette(routes=[Route("/health", health)])
