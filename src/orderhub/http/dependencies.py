"""Typed FastAPI dependencies: what a route may ask for (ARCHITECTURE lesson 10).

Routes declare `orders: OrderServiceDep` or `caller: CallerDep` and never see how the
services were wired. Only the functions here read `request.app.state`, where `create_app`
keeps the wiring (anything with the attributes of `Services`); they read it on each
request, so what is wired is what answers. They are all `async def`: FastAPI runs a
plain `def` dependency in its thread pool, a thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from orderhub.auth.service import Authenticator, Caller
from orderhub.console.sessions import ConsoleSessions
from orderhub.delivery.resync import ResyncService
from orderhub.delivery.service import DeliveryService
from orderhub.idempotency.service import IdempotencyService
from orderhub.kit.errors import NotFound
from orderhub.monitoring.service import MonitoringService
from orderhub.orders.service import OrderService
from orderhub.payments.reconcile import ReconcileService
from orderhub.payments.service import PaymentService
from orderhub.payments.webhook_service import WebhookService
from orderhub.sandbox.service import SandboxCheckout


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


async def _orders(request: Request) -> OrderService:
    return services_of(request).orders


async def _payments(request: Request) -> PaymentService:
    return services_of(request).payment_service


async def _webhooks(request: Request) -> WebhookService:
    return services_of(request).webhooks


async def _deliveries(request: Request) -> DeliveryService:
    return services_of(request).deliveries


async def _resync(request: Request) -> ResyncService:
    return services_of(request).resync


async def _reconcile(request: Request) -> ReconcileService:
    return services_of(request).reconcile


async def _monitoring(request: Request) -> MonitoringService:
    return services_of(request).monitoring


async def _idempotency(request: Request) -> IdempotencyService:
    return services_of(request).idempotency


async def _console_sessions(request: Request) -> ConsoleSessions:
    return services_of(request).console_sessions


async def _sandbox(request: Request) -> SandboxCheckout:
    sandbox = services_of(request).sandbox
    if sandbox is None:  # the routes are mounted only with the sandbox: not reached
        raise NotFound("Route not found")
    return sandbox


CallerDep = Annotated[Caller, Depends(require_caller)]
OrderServiceDep = Annotated[OrderService, Depends(_orders)]
PaymentServiceDep = Annotated[PaymentService, Depends(_payments)]
WebhookServiceDep = Annotated[WebhookService, Depends(_webhooks)]
DeliveryServiceDep = Annotated[DeliveryService, Depends(_deliveries)]
ResyncServiceDep = Annotated[ResyncService, Depends(_resync)]
ReconcileServiceDep = Annotated[ReconcileService, Depends(_reconcile)]
MonitoringServiceDep = Annotated[MonitoringService, Depends(_monitoring)]
IdempotencyDep = Annotated[IdempotencyService, Depends(_idempotency)]
SandboxCheckoutDep = Annotated[SandboxCheckout, Depends(_sandbox)]
ConsoleSessionsDep = Annotated[ConsoleSessions, Depends(_console_sessions)]
