"""create_app(settings) -> FastAPI: routers, middleware, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from orderhub import __version__
from orderhub.bootstrap import Container, build_container
from orderhub.console.endpoints import install as install_console
from orderhub.http.dependencies import require_caller
from orderhub.http.middleware import (
    BodyLimitMiddleware,
    EnvelopeCORSMiddleware,
    RequestContextMiddleware,
)
from orderhub.kit.envelope import (
    EnvelopeResponse,
    app_error_response,
    error_response,
    error_responses,
)
from orderhub.kit.errors import AppError, ValidationFailed
from orderhub.kit.openapi import install_docs, install_openapi
from orderhub.kit.validation import problems_from
from orderhub.monitoring.endpoints import router as monitoring_router
from orderhub.monitoring.prometheus import CONTENT_TYPE
from orderhub.orders.endpoints import router as orders_router
from orderhub.payments.endpoints import router as payments_router
from orderhub.payments.endpoints import webhooks_router
from orderhub.ratelimit.middleware import RateLimitMiddleware
from orderhub.sandbox.endpoints import router as sandbox_router
from orderhub.settings import Settings
from orderhub.store.protocol import StoreError

log = structlog.get_logger(__name__)

# Starlette's own answers (no route, wrong method): message and code of the envelope.
HTTP_ERRORS = {
    404: ("Route not found", "not_found"),
    405: ("Method not allowed", "method_not_allowed"),
}


class LivenessOut(BaseModel):
    status: str


def create_app(
    settings: Settings, container: Container | None = None, *, run_worker: bool = False
) -> FastAPI:
    """The ASGI app; `run_worker` also runs the delivery worker in this process."""
    container = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await container.start(with_worker=run_worker)
        try:
            yield
        finally:
            await container.close()

    app = FastAPI(
        title="orderhub",
        version=__version__,
        description=(
            "Orders, payments and their side effects behind one REST API. Every error uses "
            "the envelope `{success: false, error: {message, code?, details?}}`."
        ),
        lifespan=lifespan,
        docs_url=None,  # install_docs serves /docs and /redoc from local assets
        redoc_url=None,
        openapi_url="/openapi.json",
        redirect_slashes=False,
    )
    app.state.services = container  # read by http/dependencies.py, on each request
    # Routes are matched in the order they are added, one by one: the orders API and the
    # probes (polled every few seconds) come first, the console's pages last.
    app.include_router(orders_router)
    _add_probes(app, container)
    app.include_router(payments_router)
    app.include_router(monitoring_router)
    app.include_router(webhooks_router)
    if container.sandbox is not None:
        app.include_router(sandbox_router)  # the sandbox's client side, with the sandbox only
    if settings.console_enabled:
        install_console(app)  # the operator console's pages
    _add_prometheus(app, container)
    _add_error_handlers(app)
    install_openapi(app)
    install_docs(app)

    # Added innermost first: the request context wraps everything, then CORS, then the
    # rate limit (counted before authentication), then the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=container.limiter,
        trusted_proxies=list(settings.trusted_proxies),
        by=settings.rate_limit_by,
        authenticator=container.authenticator,
    )
    if settings.cors_origins:
        app.add_middleware(
            EnvelopeCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Content-Type",
                "Authorization",
                "X-API-Key",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
                "Idempotent-Replayed",
            ],
            max_age=600,
        )
    app.add_middleware(
        RequestContextMiddleware, metrics=container.metrics, error_log=container.error_log
    )
    return app


def _add_prometheus(app: FastAPI, container: Container) -> None:
    async def scrape(request: Request) -> Response:
        if not container.settings.metrics_public:
            await require_caller(request)
        body = await container.metrics.render(container.store, container.clock)
        return Response(body, media_type=CONTENT_TYPE)

    app.add_api_route(
        "/metrics",
        scrape,
        methods=["GET"],
        tags=["probes"],
        summary="Prometheus metrics (credentials needed unless METRICS_PUBLIC=true)",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **error_responses(401),
        },
    )


def _add_probes(app: FastAPI, container: Container) -> None:
    @app.get("/health", tags=["probes"], summary="Liveness", response_model=LivenessOut)
    async def health() -> Response:
        return EnvelopeResponse({"status": "ok"})

    @app.get(
        "/ready",
        tags=["probes"],
        summary="Readiness: 200 when the store answers, else 503",
        response_model=LivenessOut,
        responses={503: {"model": LivenessOut, "description": "The store does not answer"}},
    )
    async def ready() -> Response:
        try:
            await container.store.ping()
        except StoreError:
            return EnvelopeResponse({"status": "unavailable"}, status_code=503)
        return EnvelopeResponse({"status": "ok"})


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette's 405 names only one)."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError) -> Response:
        return app_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_request: Request, exc: RequestValidationError) -> Response:
        problems = problems_from(exc.errors())
        return app_error_response(ValidationFailed(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message, code = HTTP_ERRORS.get(exc.status_code, (str(exc.detail), None))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return error_response(exc.status_code, message, code=code, headers=headers)

    @app.exception_handler(StoreError)
    async def store_error(_request: Request, exc: StoreError) -> Response:
        log.error("store_error", error=type(exc).__name__)
        return error_response(503, "Service temporarily unavailable", code="store_unavailable")
