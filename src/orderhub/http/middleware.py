"""ASGI middleware: request id + access log + last-resort 500, and the body size limit."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderhub.kit.envelope import error_response
from orderhub.kit.failures import in_words
from orderhub.monitoring.error_log import Component, ErrorLog
from orderhub.monitoring.prometheus import Metrics

log = structlog.get_logger("orderhub.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Outermost: every response gets `X-Request-ID`; every request one access-log line
    (no headers, so no keys or tokens) and its Prometheus figures; an unhandled exception
    becomes the envelope's 500, never a stack trace, and is kept for operators."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, error_log: ErrorLog) -> None:
        self.app = app
        self.metrics = metrics
        self.error_log = error_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: int | None = None  # stays None when the client left before any answer
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                log.exception("unhandled_error", method=scope["method"], path=scope["path"])
                await self.error_log.record(
                    Component.HTTP,
                    f"Unhandled error on {scope['method']} {_route(scope)}",
                    error=f"{in_words(exc)}; request {request_id}",
                )
                if not response_started:
                    response = error_response(500, "Internal server error", code="internal_error")
                    await response(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
                if status is not None:
                    self.metrics.observe_request(scope["method"], _route(scope), status, elapsed)


def _route(scope: Scope) -> str:
    """The matched route's template (`/api/orders/{order_id}`), never the raw path, so
    metrics have few labels."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class BodyLimitMiddleware:
    """Reads the request body up front (at most `max_bytes`); a larger one is a 413 before
    any route sees it. The buffered body is then replayed to the app."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            f"Request body exceeds the limit of {self.max_bytes} bytes",
            code="payload_too_large",
        )
        await response(scope, receive, send)


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the envelope too."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS}
        return error_response(
            response.status_code,
            bytes(response.body).decode(),
            code="cors_rejected",
            headers=headers,
        )


_BODY_HEADERS = {"content-length", "content-type"}
