"""Typed FastAPI dependencies: what a route may ask for (ARCHITECTURE lesson 10).

Routes declare `orders: OrderServiceDep` or `caller: CallerDep` and never see how the
services were wired. Only the functions here read `request.app.state`, where `create_app`
keeps the wiring (anything with the attributes of `Services`); they read it on each
request, so what is wired is what answers. They are all `async def`: FastAPI runs a
plain `def` dependency in its thread pool, a thread hop per dependency per request.

An idempotent route asks for one `idempotent: IdempotentDep` (the request, its caller,
the idempotency service and the Idempotency-Key header together) and runs its work
through `idempotent.run` or `idempotent.run_json`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

from orderhub.auth.service import Authenticator, Caller
from orderhub.console.sessions import ConsoleSessions
from orderhub.delivery.resync import ResyncService
from orderhub.delivery.service import DeliveryService
from orderhub.idempotency.http import IdempotencyKey, run_idempotent, run_idempotent_json
from orderhub.idempotency.service import IdempotencyService
from orderhub.kit.errors import NotFound
from orderhub.monitoring.service import MonitoringService
from orderhub.orders.service import OrderService
from orderhub.payments.reconcile import ReconcileService
from orderhub.payments.service import PaymentService
from orderhub.payments.webhook_service import WebhookService
from orderhub.sandbox.service import SandboxCheckout

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class Services(Protocol):
    """What the routes need of the wiring (bootstrap's Container has it all)."""

    authenticator: Authenticator
    orders: OrderService
    payment_service: PaymentService
    webhooks: WebhookService
    deliveries: DeliveryService
    resync: ResyncService
    reconcile: ReconcileService
    monitoring: MonitoringService
    idempotency: IdempotencyService
    sandbox: SandboxCheckout | None
    console_sessions: ConsoleSessions


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def require_caller(request: Request) -> Caller:
    """Every /api/ route requires a caller (API key or JWT); cached on the request."""
    cached = getattr(request.state, "caller", None)
    if isinstance(cached, Caller):
        return cached
    caller = await services_of(request).authenticator.authenticate(
        request.headers.get("x-api-key"), request.headers.get("authorization")
    )
    request.state.caller = caller
    return caller


def _wired(pick: Callable[[Services], T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency answering `pick` of the wiring, read on each request."""

    async def dependency(request: Request) -> T:
        return pick(services_of(request))

    return dependency


async def _sandbox(request: Request) -> SandboxCheckout:
    sandbox = services_of(request).sandbox
    if sandbox is None:  # the routes are mounted only with the sandbox: not reached
        raise NotFound("Route not found")
    return sandbox


CallerDep = Annotated[Caller, Depends(require_caller)]
OrderServiceDep = Annotated[OrderService, Depends(_wired(lambda s: s.orders))]
PaymentServiceDep = Annotated[PaymentService, Depends(_wired(lambda s: s.payment_service))]
WebhookServiceDep = Annotated[WebhookService, Depends(_wired(lambda s: s.webhooks))]
DeliveryServiceDep = Annotated[DeliveryService, Depends(_wired(lambda s: s.deliveries))]
ResyncServiceDep = Annotated[ResyncService, Depends(_wired(lambda s: s.resync))]
ReconcileServiceDep = Annotated[ReconcileService, Depends(_wired(lambda s: s.reconcile))]
MonitoringServiceDep = Annotated[MonitoringService, Depends(_wired(lambda s: s.monitoring))]
IdempotencyDep = Annotated[IdempotencyService, Depends(_wired(lambda s: s.idempotency))]
SandboxCheckoutDep = Annotated[SandboxCheckout, Depends(_sandbox)]
ConsoleSessionsDep = Annotated[ConsoleSessions, Depends(_wired(lambda s: s.console_sessions))]


@dataclass(frozen=True, slots=True)
class Idempotent:
    """What an idempotent route runs its work with: the request, its caller, the
    idempotency service and the request's Idempotency-Key (None without the header)."""

    request: Request
    caller: Caller
    service: IdempotencyService
    key: str | None

    async def run(
        self, work: Callable[[uuid.UUID], Awaitable[Response]], raw_body: bytes = b""
    ) -> Response:
        """`run_idempotent`: `work` (given the reserved resource id) at most once per key."""
        return await run_idempotent(
            self.service, self.request, self.caller, self.key, work, raw_body
        )

    async def run_json(self, model: type[M], work: Callable[[M], Awaitable[Response]]) -> Response:
        """`run_idempotent_json`: the JSON body read as `model`, then `work` on it."""
        return await run_idempotent_json(
            self.service, self.request, self.caller, self.key, model, work
        )


async def _idempotent(
    request: Request,
    caller: CallerDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> Idempotent:
    return Idempotent(request, caller, idempotency, idempotency_key)


IdempotentDep = Annotated[Idempotent, Depends(_idempotent)]
