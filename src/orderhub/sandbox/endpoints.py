"""The sandbox's client side over HTTP: the checkout pages and the JSON confirm.

Mounted only while the sandbox is the provider. No API key: the client secret is the
credential, sent in the path of the checkout page and in the body of every POST (no
cookie is ever read, so a forged cross-site form has nothing to ride on). Every answer
carries a CSP without inline scripts or styles, `X-Frame-Options: DENY`, `no-store` and
`no-referrer` (the checkout URL holds the secret); templates are autoescaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from orderhub.http.dependencies import SandboxCheckoutDep
from orderhub.kit.pages import page_templates
from orderhub.payments.sandbox import TEST_CARDS, stripe_object
from orderhub.sandbox.schemas import StripeErrorOut
from orderhub.sandbox.service import Checkout, Stage

HERE = Path(__file__).parent
STYLESHEET = (HERE / "static" / "sandbox.css").read_bytes()
FAVICON = (HERE / "static" / "favicon.svg").read_bytes()

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

templates = page_templates(HERE / "templates")

router = APIRouter(prefix="/sandbox", tags=["sandbox"], include_in_schema=True)

STAGE_TEMPLATES = {
    Stage.PAY: "checkout.html.j2",
    Stage.UNKNOWN_CARD: "checkout.html.j2",
    Stage.AUTHENTICATE: "challenge.html.j2",
    Stage.PAID: "result.html.j2",
    Stage.DECLINED: "result.html.j2",
    Stage.AUTHENTICATION_FAILED: "result.html.j2",
    Stage.CANCELED: "result.html.j2",
}


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = templates.get_template(name).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def _not_found() -> HTMLResponse:
    return _page("not_found.html.j2", 404)


def _checkout_page(checkout: Checkout | None) -> HTMLResponse:
    if checkout is None:
        return _not_found()
    status = 400 if checkout.stage == Stage.UNKNOWN_CARD else 200
    return _page(STAGE_TEMPLATES[checkout.stage], status, c=checkout, cards=TEST_CARDS)


async def _fields(request: Request) -> dict[str, str]:
    """The body as form fields (`application/x-www-form-urlencoded`, as Stripe.js and
    HTML forms send it) or as a JSON object; the first value of each field."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            parsed = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(parsed, dict):
            return {}
        return {k: v for k, v in parsed.items() if isinstance(v, str)}
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


@router.get("/assets/sandbox.css", summary="The sandbox pages' stylesheet")
async def stylesheet() -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(STYLESHEET, media_type="text/css", headers=headers)


@router.get("/assets/favicon.svg", summary="The sandbox pages' icon")
async def favicon() -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(FAVICON, media_type="image/svg+xml", headers=headers)


@router.get(
    "/checkout/{client_secret}",
    summary="The checkout page of a payment intent (the client secret is the credential)",
    response_class=HTMLResponse,
)
async def checkout_page(client_secret: str, sandbox: SandboxCheckoutDep) -> Response:
    return _checkout_page(await sandbox.checkout(client_secret))


@router.post(
    "/checkout/pay",
    summary="Pay from the checkout page (form: client_secret, card)",
    response_class=HTMLResponse,
)
async def pay(request: Request, sandbox: SandboxCheckoutDep) -> Response:
    fields = await _fields(request)
    secret, card = fields.get("client_secret", ""), fields.get("card", "")
    if not card.strip():
        checkout = await sandbox.checkout(secret, Stage.UNKNOWN_CARD)
        return _checkout_page(checkout)
    return _checkout_page(await sandbox.pay(secret, card))


@router.post(
    "/checkout/authenticate",
    summary="Answer the 3-D Secure challenge (form: client_secret, outcome complete|fail)",
    response_class=HTMLResponse,
)
async def authenticate(request: Request, sandbox: SandboxCheckoutDep) -> Response:
    fields = await _fields(request)
    outcome = fields.get("outcome")
    secret = fields.get("client_secret", "")
    if outcome not in ("complete", "fail"):
        return _checkout_page(await sandbox.checkout(secret))
    return _checkout_page(await sandbox.authenticate(secret, complete=outcome == "complete"))


def _stripe_error(status_code: int, code: str, message: str, param: str | None = None) -> Response:
    error: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": message}
    if param is not None:
        error["param"] = param
    return JSONResponse({"error": error}, status_code=status_code, headers=SECURITY_HEADERS)


@router.post(
    "/v1/payment_intents/{intent_id}/confirm",
    summary="Confirm a payment intent as Stripe.js does (client_secret, payment_method)",
    responses={
        200: {"description": "The PaymentIntent, Stripe-shaped"},
        400: {
            "model": StripeErrorOut,
            "description": "A Stripe error: parameter_missing, resource_missing, ...",
        },
        404: {
            "model": StripeErrorOut,
            "description": "No such payment intent for this client secret",
        },
    },
)
async def confirm_intent(intent_id: str, request: Request, sandbox: SandboxCheckoutDep) -> Response:
    fields = await _fields(request)
    for name in ("client_secret", "payment_method"):
        if not fields.get(name, "").strip():
            return _stripe_error(400, "parameter_missing", f"Missing required param: {name}.", name)
    result = await sandbox.confirm(intent_id, fields["client_secret"], fields["payment_method"])
    if result.intent is None:
        return _stripe_error(
            404, "resource_missing", f"No such payment_intent: '{intent_id}'", "intent"
        )
    if result.error_code is not None:
        return _stripe_error(400, result.error_code, result.error_message or "Invalid request")
    return JSONResponse(stripe_object(result.intent), headers=SECURITY_HEADERS)
