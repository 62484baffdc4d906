"""The operator console: server-rendered pages at /console over the API's own services.

Every page but the sign-in needs a session (`console/sessions.py`); every form posts a
CSRF token and must come from the console's own origin; every answer sends a CSP without
`unsafe-inline`, `X-Frame-Options: DENY` and `no-store`. Templates are autoescaped, so
customer text is shown as text. Every action works as a plain HTML form (a confirm page,
then a redirect to the result); the one script only enhances.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, ParamSpec
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from orderhub.console import views
from orderhub.console.sessions import SignIn
from orderhub.delivery.model import DeliveryStatus, Integration
from orderhub.http.dependencies import (
    ConsoleSessionsDep,
    DeliveryServiceDep,
    MonitoringServiceDep,
    OrderServiceDep,
    PaymentServiceDep,
    ReconcileServiceDep,
)
from orderhub.kit.errors import AppError, Unauthorized, ValidationFailed
from orderhub.kit.ids import new_id
from orderhub.kit.pages import page_templates
from orderhub.kit.validation import validate_model
from orderhub.orders.domain import EventSource, Order, OrderStatus
from orderhub.orders.schemas import OrderUpdateIn
from orderhub.store.protocol import ConsoleSession, StoreError

HERE = Path(__file__).parent
COOKIE = "orderhub_console"
SIGN_IN_COOKIE = "orderhub_console_sign_in"  # the sign-in form's CSRF value (double submit)
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
ASSETS = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
STATIC = {name: (HERE / "static" / name).read_bytes() for name in ASSETS}

# Scripts, styles, images and fetches from this host only; no inline code of any kind.
CSP_DIRECTIVES = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "; ".join(f"{k} {v}" for k, v in CSP_DIRECTIVES.items()),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin (not no-referrer): a form's POST then still says where it came from
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = page_templates(HERE / "templates")
templates.filters.update(views.FILTERS)

# Pages for people, not an API: documented in docs/console.md, not in the OpenAPI document.
router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)

P = ParamSpec("P")


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("session", None)
    context.setdefault("csrf", "")
    context.setdefault("active", "")
    body = templates.get_template(name).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def _message(status_code: int, title: str, text: str, **context: Any) -> HTMLResponse:
    return _page("message.html.j2", status_code, title=title, text=text, **context)


def _unavailable() -> HTMLResponse:
    return _message(503, "Service unavailable", "The store does not answer; try again.")


def _redirect(path: str, **query: str) -> RedirectResponse:
    target = f"{path}?{urlencode(query)}" if query else path
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def _guarded(
    handler: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """A service's refusal (404, 409, 400, ...) or an unreachable store is a page in
    words, never the API's JSON or a stack trace."""

    @functools.wraps(handler)
    async def page(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return await handler(*args, **kwargs)
        except AppError as exc:
            return _message(exc.status_code, "That did not work", exc.message)
        except StoreError:
            return _unavailable()

    return page


def _route(
    method: str, path: str, summary: str
) -> Callable[[Callable[P, Awaitable[Response]]], Callable[P, Awaitable[Response]]]:
    """A console page: an HTML route whose refusals are pages (see `_guarded`)."""
    add = router.get if method == "GET" else router.post

    def register(
        handler: Callable[P, Awaitable[Response]],
    ) -> Callable[P, Awaitable[Response]]:
        page = _guarded(handler)
        add(path, summary=summary, response_class=HTMLResponse)(page)
        return page

    return register


# -- sessions, forms -------------------------------------------------------------------


def _secure(request: Request) -> bool:
    """The cookie is `Secure` unless the console is reached on a loopback address."""
    return (request.url.hostname or "") not in LOOPBACK


def _same_origin(request: Request) -> bool:
    """A form's POST must come from a page of this host (browsers send `Origin` with
    every POST; a missing one is left to the CSRF token)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str]:
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _refused() -> HTMLResponse:
    return _message(
        403,
        "Form refused",
        "This form had expired or did not come from the console. Reload the page and try again.",
    )


class Signed:
    """A signed-in request: its session and the CSRF token its forms carry."""

    def __init__(self, session: ConsoleSession, csrf: str) -> None:
        self.session = session
        self.csrf = csrf

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return _page(name, status_code, session=self.session, csrf=self.csrf, **context)

    def message(self, status_code: int, title: str, text: str) -> HTMLResponse:
        return _message(status_code, title, text, session=self.session, csrf=self.csrf)


async def _signed(request: Request, sessions: ConsoleSessionsDep) -> Signed | None:
    session = await sessions.resume(request.cookies.get(COOKIE, ""))
    if session is None:
        return None
    return Signed(session, await sessions.csrf_token(session))


class PageAnswer(Exception):
    """Raised by the console's dependencies to answer at once: the sign-in redirect, a
    refused form, a store that does not answer."""

    def __init__(self, response: Response) -> None:
        super().__init__("page answer")
        self.response = response


async def _require_signed(request: Request, sessions: ConsoleSessionsDep) -> Signed:
    try:
        signed = await _signed(request, sessions)
    except StoreError:
        raise PageAnswer(_unavailable()) from None
    if signed is None:
        raise PageAnswer(_redirect("/console/sign-in"))
    return signed


SignedDep = Annotated[Signed, Depends(_require_signed)]


async def _checked_form(
    request: Request, sessions: ConsoleSessionsDep, signed: SignedDep
) -> dict[str, str]:
    """A signed-in form's fields, once its origin and CSRF token are checked."""
    fields = await _form(request)
    if not _same_origin(request) or not await sessions.csrf_valid(
        signed.session, fields.get("csrf", "")
    ):
        raise PageAnswer(_refused())
    return fields


FormDep = Annotated[dict[str, str], Depends(_checked_form)]


def install(app: FastAPI) -> None:
    """Mount the console's routes on `app`."""

    async def answer(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageAnswer)
        return exc.response

    app.add_exception_handler(PageAnswer, answer)
    app.include_router(router)


@dataclass(frozen=True, slots=True)
class Listing:
    """A list page's query: its filters as typed (blank: all) and the page's `lastKey`."""

    filters: dict[str, str]
    last_key: str

    def pager(self, next_key: str | None) -> dict[str, Any]:
        """The links of the page's pager: the next page, and back to the first."""
        return {
            "filters": self.filters,
            "next_query": urlencode({**self.filters, "lastKey": next_key or ""}),
            "first_query": urlencode(self.filters),
            "paged": bool(self.last_key),
        }


def _listing(*filters: str) -> Any:
    """A dependency: the `Listing` of a page with these filters (query parameters)."""

    async def read(request: Request) -> Listing:
        query = request.query_params
        return Listing({name: query.get(name, "") for name in filters}, query.get("lastKey", ""))

    return Depends(read)


def _sign_in_page(request: Request, status_code: int = 200, error: str = "") -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    response = _page("sign_in.html.j2", status_code, nonce=nonce, error=error)
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console/sign-in",
    )
    return response


# -- assets ----------------------------------------------------------------------------


@router.get("/static/{name}", summary="The console's stylesheet, script and icon")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return _message(404, "Not found", "There is no such file.")
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(STATIC[name], media_type=ASSETS[name], headers=headers)


# -- signing in and out ----------------------------------------------------------------


@_route("GET", "/sign-in", "The console's sign-in page")
async def sign_in_page(request: Request, sessions: ConsoleSessionsDep) -> Response:
    if await _signed(request, sessions) is not None:
        return _redirect("/console")
    return _sign_in_page(request)


@_route(
    "POST", "/sign-in", "Sign in with an API key (form: api_key, csrf); rate-limited like /api/"
)
async def sign_in(request: Request, sessions: ConsoleSessionsDep) -> Response:
    fields = await _form(request)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    presented = fields.get("csrf", "")
    if not _same_origin(request) or not expected or not secrets.compare_digest(expected, presented):
        return _refused()
    api_key = fields.get("api_key", "").strip()
    if not api_key:
        return _sign_in_page(request, 400, "Enter an API key.")
    peer = request.client.host if request.client else None
    try:
        result: SignIn = await sessions.sign_in(
            api_key, peer, ",".join(request.headers.getlist("x-forwarded-for")) or None
        )
    except Unauthorized:
        return _sign_in_page(request, 401, "That API key was not accepted.")
    if result.limited is not None:
        limited = _message(
            429, "Too many attempts", "Too many requests from this IP, please try again later."
        )
        limited.headers["Retry-After"] = str(result.limited.retry_after)
        return limited
    assert result.token is not None
    response = _redirect("/console")
    response.set_cookie(
        COOKIE,
        result.token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console",
    )
    response.delete_cookie(
        SIGN_IN_COOKIE,
        path="/console/sign-in",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


@_route("POST", "/sign-out", "End the console session")
async def sign_out(request: Request, sessions: ConsoleSessionsDep, _form: FormDep) -> Response:
    await sessions.sign_out(request.cookies.get(COOKIE, ""))
    response = _redirect("/console/sign-in", signed_out="1")
    response.delete_cookie(
        COOKIE, path="/console", secure=_secure(request), httponly=True, samesite="strict"
    )
    return response


# -- overview --------------------------------------------------------------------------


@_route("GET", "", "Overview: health, integrations, backlog, charts")
async def overview(
    signed: SignedDep,
    monitoring: MonitoringServiceDep,
    timeRange: str = "24h",
) -> Response:
    metrics = await monitoring.metrics(timeRange)
    series = await monitoring.series(timeRange, None)
    health = await monitoring.health()
    integrations = await monitoring.integrations()
    waiting, oldest = await monitoring.backlog()
    return signed.page(
        "overview.html.j2",
        active="overview",
        time_range=timeRange,
        ranges=views.RANGES,
        metrics=metrics,
        charts=views.charts(series),
        health=health,
        integrations=integrations,
        backlog=waiting,
        oldest=oldest,
    )


# -- orders ----------------------------------------------------------------------------


@_route("GET", "/orders", "Orders, newest first, with the API's filters")
async def orders_page(
    signed: SignedDep,
    orders: OrderServiceDep,
    listing: Annotated[Listing, _listing("status", "customerId")],
) -> Response:
    filters = listing.filters
    page = await orders.list(
        limit=20,
        last_key=listing.last_key or None,
        status=views.status_of(filters["status"]),
        customer_id=filters["customerId"][:100] or None,
    )
    return signed.page(
        "orders.html.j2",
        active="orders",
        page=page,
        statuses=[s.value for s in OrderStatus],
        **listing.pager(page.last_key),
    )


async def _order_page(
    signed: Signed,
    orders: OrderServiceDep,
    deliveries: DeliveryServiceDep,
    order_id: str,
    status_code: int = 200,
    error: str = "",
    done: str = "",
) -> HTMLResponse:
    order, history = await orders.get(order_id)
    listed = await deliveries.list(limit=100, last_key=None, order_id=str(order.id))
    with_attempts = [(d, await deliveries.attempts(d)) for d in listed.deliveries]
    return signed.page(
        "order.html.j2",
        status_code,
        active="orders",
        order=order,
        history=history,
        deliveries=with_attempts,
        actions=views.order_actions(order),
        reasons=views.REFUND_REASONS,
        error=error,
        notice=views.NOTICES.get(done, ""),
    )


@_route("GET", "/orders/{order_id}", "One order: items, payments, history, deliveries")
async def order_page(
    order_id: str,
    signed: SignedDep,
    orders: OrderServiceDep,
    deliveries: DeliveryServiceDep,
    done: str = "",
) -> Response:
    return await _order_page(signed, orders, deliveries, order_id, done=done)


def _refund_amount(text: str) -> Decimal | None:
    """Blank: everything left. Otherwise a positive number in major units."""
    if not text.strip():
        return None
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValidationFailed.one("amount", "must be a number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationFailed.one("amount", "must be greater than 0")
    return amount


async def _perform(
    action: str,
    order: Order,
    fields: dict[str, str],
    orders: OrderServiceDep,
    payments: PaymentServiceDep,
) -> None:
    order_id = str(order.id)
    if action in ("processing", "delivered"):
        await orders.update(
            order_id, validate_model(OrderUpdateIn, {"status": action}), EventSource.CONSOLE
        )
    elif action == "shipped":
        change = {"status": "shipped", "trackingNumber": fields.get("tracking", "").strip()}
        await orders.update(order_id, validate_model(OrderUpdateIn, change), EventSource.CONSOLE)
    elif action == "cancel":
        await orders.cancel(order_id, EventSource.CONSOLE)
    else:  # refund: the confirm page chose its id, so a second submit is the same refund
        refund_id = views.refund_id(fields.get("refund_id", ""))
        await payments.refund(
            order_id,
            _refund_amount(fields.get("amount", "")),
            views.reason_of(fields.get("reason", "")),
            refund_id,
            EventSource.CONSOLE,
        )


@_route(
    "POST",
    "/orders/{order_id}/actions/{action}",
    "Act on an order (processing, shipped, delivered, refund, cancel), confirmed first",
)
async def order_action(
    order_id: str,
    action: str,
    signed: SignedDep,
    fields: FormDep,
    orders: OrderServiceDep,
    payments: PaymentServiceDep,
    deliveries: DeliveryServiceDep,
) -> Response:
    if action not in views.ACTIONS:
        return signed.message(404, "Not found", "There is no such action.")
    order, _ = await orders.get(order_id)
    try:
        if action == "shipped" and not fields.get("tracking", "").strip():
            raise ValidationFailed.one("trackingNumber", "is needed to mark an order shipped")
        if action == "refund":
            _refund_amount(fields.get("amount", ""))
            views.reason_of(fields.get("reason", ""))
        if fields.get("confirmed") != "yes":
            return signed.page(
                "confirm.html.j2",
                active="orders",
                order=order,
                action=action,
                fields=fields,
                description=views.describe(action, order, fields),
                refund_id=str(new_id()),
            )
        await _perform(action, order, fields, orders, payments)
    except AppError as exc:
        return await _order_page(
            signed, orders, deliveries, order_id, exc.status_code, error=exc.message
        )
    return _redirect(f"/console/orders/{order.id}", done=action)


# -- deliveries ------------------------------------------------------------------------


@_route("GET", "/deliveries", "Deliveries with filters")
async def deliveries_page(
    signed: SignedDep,
    deliveries: DeliveryServiceDep,
    listing: Annotated[Listing, _listing("status", "integration", "orderId")],
    retried: int | None = None,
) -> Response:
    filters = listing.filters
    chosen_status = views.choice(DeliveryStatus, filters["status"], "status")
    chosen_integration = views.choice(Integration, filters["integration"], "integration")
    page = await deliveries.list(
        limit=25,
        last_key=listing.last_key or None,
        status=chosen_status,
        order_id=filters["orderId"].strip()[:100] or None,
        integration=chosen_integration,
    )
    return signed.page(
        "deliveries.html.j2",
        active="deliveries",
        page=page,
        statuses=[s.value for s in DeliveryStatus],
        integrations=[i.value for i in Integration],
        notice=views.retried_notice(retried),
        **listing.pager(page.last_key),
    )


@_route(
    "POST",
    "/deliveries/retry",
    "Retry every dead delivery matching the filter (integration, order), confirmed first",
)
async def retry_dead(
    signed: SignedDep, fields: FormDep, deliveries: DeliveryServiceDep
) -> Response:
    integration = views.choice(Integration, fields.get("integration", ""), "integration")
    order_id = fields.get("orderId", "").strip()[:100]
    scope = {"status": "dead", "integration": fields.get("integration", ""), "orderId": order_id}
    if fields.get("confirmed") != "yes":
        return signed.page(
            "confirm_retry.html.j2",
            active="deliveries",
            scope=scope,
            description=views.describe_retry(integration, order_id),
        )
    count = await deliveries.retry_matching(integration=integration, order_id=order_id or None)
    return _redirect("/console/deliveries", **scope, retried=str(count))


@_route("GET", "/deliveries/{delivery_id}", "One delivery and its attempts")
async def delivery_page(
    delivery_id: str,
    signed: SignedDep,
    deliveries: DeliveryServiceDep,
    done: str = "",
) -> Response:
    delivery = await deliveries.get(delivery_id)
    return signed.page(
        "delivery.html.j2",
        active="deliveries",
        delivery=delivery,
        attempts=await deliveries.attempts(delivery),
        notice=views.NOTICES.get(done, ""),
    )


@_route("POST", "/deliveries/{delivery_id}/retry", "Retry a dead delivery")
async def retry_delivery(
    delivery_id: str, _form: FormDep, deliveries: DeliveryServiceDep
) -> Response:
    delivery = await deliveries.retry(delivery_id)
    return _redirect(f"/console/deliveries/{delivery.id}", done="retried")


# -- errors ----------------------------------------------------------------------------


@_route("GET", "/errors", "Recent errors, newest first")
async def errors_page(signed: SignedDep, monitoring: MonitoringServiceDep) -> Response:
    errors = await monitoring.errors(200)
    return signed.page("errors.html.j2", active="errors", errors=errors)


# -- reconciliation runs -----------------------------------------------------------------


@_route("GET", "/reconciliation", "Reconciliation runs, newest first")
async def reconciliation_page(signed: SignedDep, reconcile: ReconcileServiceDep) -> Response:
    runs = await reconcile.recent_runs(100)
    return signed.page("reconciliation.html.j2", active="reconciliation", runs=runs)
