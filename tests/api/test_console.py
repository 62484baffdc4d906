"""The operator console through the ASGI app: sign-in and sessions, CSRF and Origin,
security headers, pages, and actions recorded in the order's history as "console"."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from orderhub.app import create_app
from orderhub.console.views import when
from orderhub.delivery.integrations.base import PermanentDeliveryError
from orderhub.kit.clock import FrozenClock
from tests.fixtures.app import API_KEY, AUTH, Harness, HarnessFactory
from tests.fixtures.integrations import Recorders
from tests.fixtures.orders import order_body

ORIGIN = "http://127.0.0.1:3000"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    """A browser's view of the console: its own cookie jar, on the loopback host."""

    harness: Harness
    client: httpx.AsyncClient

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(path, params=params or None)

    async def csrf(self, path: str = "/console") -> str:
        page = await self.get(path)
        assert page.status_code == 200, page.text
        found = CSRF.search(page.text)
        assert found is not None, page.text
        return found.group(1)

    async def post(
        self, path: str, fields: dict[str, str], origin: str | None = ORIGIN
    ) -> httpx.Response:
        headers = {"Origin": origin} if origin else {}
        return await self.client.post(path, data=fields, headers=headers)

    async def sign_in(self, key: str = API_KEY) -> httpx.Response:
        nonce = await self.csrf("/console/sign-in")
        return await self.post("/console/sign-in", {"csrf": nonce, "api_key": key})

    async def submit(self, path: str, fields: dict[str, str], page: str) -> httpx.Response:
        """A form of `page` posted with that page's CSRF token."""
        return await self.post(path, {"csrf": await self.csrf(page), **fields})


def _browser(h: Harness, base_url: str = ORIGIN) -> httpx.AsyncClient:
    app = create_app(h.settings, h.container)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)), base_url=base_url
    )


@pytest.fixture
async def console_factory(
    make_harness: HarnessFactory,
) -> Any:
    opened: list[httpx.AsyncClient] = []

    async def make(h: Harness | None = None, base_url: str = ORIGIN) -> Console:
        harness = h or await make_harness()
        client = _browser(harness, base_url)
        opened.append(client)
        return Console(harness, client)

    yield make
    for client in opened:
        await client.aclose()


ConsoleFactory = Callable[..., Any]


@pytest.fixture
async def console(console_factory: ConsoleFactory) -> Console:
    made: Console = await console_factory()
    response = await made.sign_in()
    assert response.status_code == 303, response.text
    return made


# -- signing in ------------------------------------------------------------------------


async def test_pages_need_a_session(console_factory: ConsoleFactory) -> None:
    c: Console = await console_factory()
    pages = ("/console", "/console/orders", "/console/deliveries", "/console/errors")
    for path in (*pages, "/console/reconciliation"):
        response = await c.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/sign-in"


async def test_sign_in_sets_a_strict_http_only_cookie(console_factory: ConsoleFactory) -> None:
    c: Console = await console_factory()
    response = await c.sign_in()
    assert response.status_code == 303 and response.headers["location"] == "/console"
    cookie = next(
        v for v in response.headers.get_list("set-cookie") if v.startswith("orderhub_console=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console"} <= attributes
    assert "secure" not in attributes  # loopback
    assert API_KEY not in cookie
    overview = await c.get("/console")
    assert overview.status_code == 200
    assert "Overview" in overview.text and API_KEY not in overview.text


async def test_the_cookie_is_secure_off_loopback(console_factory: ConsoleFactory) -> None:
    c: Console = await console_factory(base_url="http://shop.example")
    nonce_page = await c.get("/console/sign-in")
    nonce = CSRF.search(nonce_page.text)
    assert nonce is not None
    # the client keeps Secure cookies for https only: the browser's cookie, sent by hand
    response = await c.client.post(
        "/console/sign-in",
        data={"csrf": nonce.group(1), "api_key": API_KEY},
        headers={
            "Origin": "http://shop.example",
            "Cookie": f"orderhub_console_sign_in={nonce.group(1)}",
        },
    )
    assert response.status_code == 303
    cookies = [*nonce_page.headers.get_list("set-cookie"), *response.headers.get_list("set-cookie")]
    assert len(cookies) == 3  # the sign-in token, the session, the sign-in token removed
    assert all("secure" in {p.strip().lower() for p in v.split(";")} for v in cookies)


async def test_a_wrong_key_is_refused(console_factory: ConsoleFactory) -> None:
    c: Console = await console_factory()
    response = await c.sign_in("not-a-key")
    assert response.status_code == 401
    assert "That API key was not accepted." in response.text
    assert "orderhub_console=" not in response.headers.get("set-cookie", "")
    assert (await c.get("/console")).status_code == 303


async def test_a_stored_key_signs_in_and_its_revocation_ends_the_session(
    console_factory: ConsoleFactory,
) -> None:
    c: Console = await console_factory()
    created = await c.harness.container.api_keys.create("operator")
    assert (await c.sign_in(created.key)).status_code == 303
    assert (await c.get("/console/orders")).status_code == 200
    assert await c.harness.container.api_keys.revoke(str(created.record.id))
    response = await c.get("/console/orders")
    assert response.status_code == 303 and response.headers["location"] == "/console/sign-in"


async def test_sign_out_ends_the_session_on_the_server(console: Console) -> None:
    cookie = console.client.cookies.get("orderhub_console")
    assert cookie
    response = await console.submit("/console/sign-out", {}, "/console/orders")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?signed_out=1"
    # the old cookie, presented again, opens nothing
    replay = _browser(console.harness)
    replay.cookies.set("orderhub_console", cookie, domain="127.0.0.1")
    try:
        assert (await replay.get("/console")).status_code == 303
    finally:
        await replay.aclose()


async def test_a_session_expires_after_eight_idle_hours(make_harness: HarnessFactory) -> None:
    clock = FrozenClock(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    h: Harness = await make_harness(clock=clock)
    client = _browser(h)
    try:
        c = Console(h, client)
        assert (await c.sign_in()).status_code == 303
        clock.advance(hours=7, minutes=59)
        assert (await c.get("/console/errors")).status_code == 200  # used: idle time restarts
        clock.advance(hours=7, minutes=59)
        assert (await c.get("/console/errors")).status_code == 200
        clock.advance(hours=8)
        assert (await c.get("/console/errors")).status_code == 303
    finally:
        await client.aclose()


async def test_sign_in_attempts_are_rate_limited_like_the_api(
    make_harness: HarnessFactory, console_factory: ConsoleFactory
) -> None:
    h: Harness = await make_harness(rate_limit_max=3)
    c: Console = await console_factory(h)
    assert (await c.sign_in("wrong")).status_code == 401
    assert (await c.sign_in("wrong")).status_code == 401
    assert (await c.sign_in()).status_code == 303  # the third request of the window
    # signed in, pages are not counted
    for _ in range(5):
        assert (await c.get("/console/errors")).status_code == 200
    other: Console = await console_factory(h)
    limited = await other.sign_in()
    assert limited.status_code == 429
    assert "Too many requests from this IP, please try again later." in limited.text
    assert int(limited.headers["retry-after"]) >= 1
    # and the API shares the same count for this IP
    assert (await h.client.get("/api/orders", headers=AUTH)).status_code == 429


async def test_console_enabled_false_removes_every_route(
    make_harness: HarnessFactory, console_factory: ConsoleFactory
) -> None:
    h: Harness = await make_harness(console_enabled=False)
    c: Console = await console_factory(h)
    for path in ("/console", "/console/sign-in", "/console/orders", "/console/static/console.css"):
        assert (await c.get(path)).status_code == 404
    assert (await c.post("/console/sign-in", {"api_key": API_KEY})).status_code == 404
    document = (await h.client.get("/openapi.json")).json()
    assert not [p for p in document["paths"] if p.startswith("/console")]


# -- forms: CSRF and Origin ------------------------------------------------------------


async def test_a_form_without_the_csrf_token_is_refused(console: Console) -> None:
    order = await console.harness.paid_order()
    path = f"/console/orders/{order['id']}/actions/processing"
    for fields in ({"confirmed": "yes"}, {"confirmed": "yes", "csrf": "forged"}):
        response = await console.post(path, fields)
        assert response.status_code == 403
        assert "Form refused" in response.text
    assert (await console.harness.get_order(order["id"]))["status"] == "paid"
    # the sign-out form too: the session lives on
    assert (await console.post("/console/sign-out", {})).status_code == 403
    assert (await console.get("/console")).status_code == 200


async def test_a_form_from_another_origin_is_refused(console: Console) -> None:
    order = await console.harness.paid_order()
    token = await console.csrf()
    path = f"/console/orders/{order['id']}/actions/processing"
    for origin in ("http://evil.example", "null", "http://127.0.0.1:3001"):
        response = await console.post(path, {"csrf": token, "confirmed": "yes"}, origin=origin)
        assert response.status_code == 403
    assert (await console.harness.get_order(order["id"]))["status"] == "paid"
    # the same form from the console itself goes through
    response = await console.post(path, {"csrf": token, "confirmed": "yes"})
    assert response.status_code == 303


async def test_the_sign_in_form_needs_its_own_token(console_factory: ConsoleFactory) -> None:
    c: Console = await console_factory()
    assert (await c.post("/console/sign-in", {"api_key": API_KEY})).status_code == 403
    nonce = await c.csrf("/console/sign-in")
    forged = await c.post(
        "/console/sign-in", {"csrf": nonce, "api_key": API_KEY}, origin="http://evil.example"
    )
    assert forged.status_code == 403
    assert (await c.get("/console")).status_code == 303


# -- headers, escaping -----------------------------------------------------------------


async def test_every_page_sends_the_security_headers(
    console: Console, console_factory: ConsoleFactory
) -> None:
    order = await console.harness.paid_order()
    for path in (
        "/console",
        "/console/orders",
        f"/console/orders/{order['id']}",
        "/console/deliveries",
        "/console/errors",
        "/console/reconciliation",
        "/console/static/console.css",
    ):
        response = await console.get(path)
        assert response.status_code == 200, path
        _check_headers(response)
    signed_out: Console = await console_factory()
    _check_headers(await signed_out.get("/console/sign-in"))
    _check_headers(await signed_out.get("/console"))  # the redirect to sign in


def _check_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_pages_hold_no_inline_script_or_style(console: Console) -> None:
    order = await console.harness.paid_order()
    for path in ("/console", "/console/orders", f"/console/orders/{order['id']}"):
        text = (await console.get(path)).text
        assert "<script>" not in text and "style=" not in text and "<style" not in text
        assert re.findall(r"<script[^>]*>", text) == [
            '<script src="/console/static/console.js" defer>'
        ]


async def test_customer_text_is_shown_as_text(console: Console) -> None:
    name = "<script>alert(1)</script>"
    order = await console.harness.paid_order(
        customerName=name, metadata={"note": "<img src=x onerror=alert(1)>"}
    )
    for path in (f"/console/orders/{order['id']}", "/console/orders"):
        text = (await console.get(path)).text
        assert name not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


# -- pages -----------------------------------------------------------------------------


async def test_overview_shows_the_metrics_of_the_chosen_range(console: Console) -> None:
    h = console.harness
    await h.paid_order()
    await h.create_order()
    for time_range in ("24h", "1h"):
        page = await console.get("/console", timeRange=time_range)
        assert page.status_code == 200
        metrics = (
            await h.client.get(f"/api/monitoring/metrics?timeRange={time_range}", headers=AUTH)
        ).json()["data"]
        for name in ("total", "successful", "pending", "failed", "cancelled"):
            shown = re.search(rf'id="orders-{name}">(\d+)<', page.text)
            assert shown is not None and int(shown.group(1)) == metrics["orders"][name]
        assert f'id="revenue-total">{metrics["revenue"]["total"]:.2f} USD<' in page.text
        for key, counts in metrics["integrations"].items():
            assert f'data-calls="{key}">{counts["calls"]}<' in page.text
        assert page.text.count('<svg class="chart"') == 3
    assert (await console.get("/console", timeRange="100d")).status_code == 400


async def test_orders_list_filters_and_pages(console: Console) -> None:
    h = console.harness
    for n in range(22):
        assert (await h.create_order(order_body(customerId=f"cust_{n % 2}"))).status_code == 201
    first = await console.get("/console/orders")
    assert first.text.count('href="/console/orders/0') == 20
    found = re.search(r'href="/console/orders\?([^"]*lastKey=[^"]+)" rel="next"', first.text)
    assert found is not None
    second = await console.client.get("/console/orders?" + found.group(1).replace("&amp;", "&"))
    assert second.text.count('href="/console/orders/0') == 2
    filtered = await console.get("/console/orders", customerId="cust_1", status="pending")
    assert filtered.text.count("cust_1") == 11 + 1  # the rows, and the filter's value
    assert (await console.get("/console/orders", status="lost")).status_code == 400
    assert (await console.get("/console/orders", lastKey="tampered")).status_code == 400


async def test_an_unknown_order_or_delivery_is_a_404_page(console: Console) -> None:
    for path in ("/console/orders/nope", "/console/deliveries/nope"):
        response = await console.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")


# -- actions ---------------------------------------------------------------------------


async def _act(console: Console, order_id: str, action: str, **fields: str) -> httpx.Response:
    """An action as a browser does it: the order page's form, then the confirm page's."""
    page = f"/console/orders/{order_id}"
    path = f"{page}/actions/{action}"
    asked = await console.submit(path, fields, page)
    assert asked.status_code == 200, asked.text
    assert "Please confirm" in asked.text
    confirm = dict(
        re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', asked.text)
    )
    return await console.post(path, confirm)


async def test_an_action_asks_to_confirm_before_it_changes_anything(console: Console) -> None:
    order = await console.harness.paid_order()
    path = f"/console/orders/{order['id']}/actions/cancel"
    asked = await console.submit(path, {}, f"/console/orders/{order['id']}")
    assert asked.status_code == 200 and "Please confirm" in asked.text
    assert "Cancel this order (109.97 USD)" in asked.text
    assert (await console.harness.get_order(order["id"]))["status"] == "paid"


async def test_ship_with_tracking_and_deliver_are_recorded_as_console(console: Console) -> None:
    h = console.harness
    order = await h.paid_order()
    done = await _act(console, order["id"], "processing")
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/orders/{order['id']}?done=processing"
    assert (
        await _act(console, order["id"], "shipped", tracking="1Z999AA10123456784")
    ).status_code == 303
    page = await console.get(f"/console/orders/{order['id']}", done="shipped")
    assert "The order is now shipped." in page.text and "1Z999AA10123456784" in page.text
    assert (await _act(console, order["id"], "delivered")).status_code == 303
    seen = await h.get_order(order["id"])
    assert (seen["status"], seen["trackingNumber"]) == ("delivered", "1Z999AA10123456784")
    assert [(e["type"], e["source"]) for e in seen["history"]][-3:] == [
        ("order.processing", "console"),
        ("order.shipped", "console"),
        ("order.delivered", "console"),
    ]


async def test_shipping_needs_a_tracking_number(console: Console) -> None:
    order = await console.harness.paid_order()
    path = f"/console/orders/{order['id']}/actions/shipped"
    response = await console.submit(path, {"tracking": " "}, f"/console/orders/{order['id']}")
    assert response.status_code == 400
    assert "trackingNumber is needed" in response.text


async def test_refund_once_even_if_confirmed_twice(console: Console) -> None:
    h = console.harness
    order = await h.paid_order()
    page = f"/console/orders/{order['id']}"
    path = f"{page}/actions/refund"
    asked = await console.submit(path, {"amount": "10.00", "reason": "duplicate"}, page)
    assert "Refund 10.00 USD of this order (109.97 USD), duplicate." in asked.text
    confirm = dict(
        re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', asked.text)
    )
    assert (await console.post(path, confirm)).status_code == 303
    assert (await console.post(path, confirm)).status_code == 303  # the same refund
    seen = await h.get_order(order["id"])
    assert seen["refundedAmount"] == 10.0 and len(seen["refunds"]) == 1
    assert seen["refunds"][0]["reason"] == "duplicate"
    assert seen["history"][-1]["source"] == "console"


async def test_a_refused_action_is_shown_in_words(console: Console) -> None:
    h = console.harness
    order = await h.paid_order()
    page = f"/console/orders/{order['id']}"
    too_much = await console.submit(f"{page}/actions/refund", {"amount": "500"}, page)
    assert too_much.status_code == 200  # the confirm page; the provider is asked on confirm
    confirm = dict(
        re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', too_much.text)
    )
    refused = await console.post(f"{page}/actions/refund", confirm)
    assert refused.status_code == 409
    assert "Refund amount exceeds the amount left to refund" in refused.text
    bad = await console.submit(f"{page}/actions/refund", {"amount": "ten"}, page)
    assert bad.status_code == 400 and "amount must be a number" in bad.text
    delivered = await console.submit(f"{page}/actions/delivered", {"confirmed": "yes"}, page)
    assert delivered.status_code == 409
    assert "Cannot move order from paid to delivered" in delivered.text


async def test_cancel_from_the_console(console: Console) -> None:
    h = console.harness
    order = await h.paid_order()
    assert (await _act(console, order["id"], "cancel")).status_code == 303
    seen = await h.get_order(order["id"])
    assert seen["status"] == "cancelled" and seen["paymentStatus"] == "refunded"
    sources = {e["type"]: e["source"] for e in seen["history"]}
    assert sources["order.cancelled"] == "console" and sources["order.refunded"] == "console"


# -- deliveries ------------------------------------------------------------------------


async def test_deliveries_page_filters_and_retries_a_dead_one(console: Console) -> None:
    h = console.harness
    order = await h.paid_order()
    listed = await h.client.get(
        f"/api/monitoring/deliveries?orderId={order['id']}&integration=email", headers=AUTH
    )
    delivery = listed.json()["data"][0]
    page = await console.get("/console/deliveries", integration="email", orderId=order["id"])
    assert page.text.count('href="/console/deliveries/0') == len(listed.json()["data"])
    assert (await console.get("/console/deliveries", status="lost")).status_code == 400
    # not dead: a retry is refused in words
    refused = await console.submit(
        f"/console/deliveries/{delivery['id']}/retry", {}, f"/console/deliveries/{delivery['id']}"
    )
    assert refused.status_code == 409
    assert "Only dead deliveries can be retried" in refused.text


async def _with_dead(console_factory: ConsoleFactory, make_harness: HarnessFactory) -> Any:
    """A signed-in console whose first two orders' email and notification deliveries died."""
    rec = Recorders()
    h: Harness = await make_harness(integrations=rec.integrations())
    rec.email.script.failures = [PermanentDeliveryError("550 mailbox unavailable")] * 2
    rec.notifications.script.failures = [PermanentDeliveryError("HTTP 410")] * 2
    orders = []
    for _ in range(2):
        created = await h.create_order()
        assert created.status_code == 201
        orders.append(created.json()["data"]["order"])
        while await h.container.worker.run_once() > 0:
            pass
    c: Console = await console_factory(h)
    assert (await c.sign_in()).status_code == 303
    return c, rec, orders


async def _dead_ids(h: Harness, query: str = "") -> list[str]:
    listed = await h.client.get(f"/api/monitoring/deliveries?status=dead{query}", headers=AUTH)
    return [d["id"] for d in listed.json()["data"]]


async def test_retry_one_dead_delivery(
    console_factory: ConsoleFactory, make_harness: HarnessFactory
) -> None:
    c, rec, _orders = await _with_dead(console_factory, make_harness)
    dead = await _dead_ids(c.harness, "&integration=email")
    page = await c.get(f"/console/deliveries/{dead[0]}")
    assert "550 mailbox unavailable" in page.text and "Retry this delivery" in page.text
    done = await c.submit(
        f"/console/deliveries/{dead[0]}/retry", {}, f"/console/deliveries/{dead[0]}"
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/deliveries/{dead[0]}?done=retried"
    assert await _dead_ids(c.harness, "&integration=email") == dead[1:]
    while await c.harness.container.worker.run_once() > 0:
        pass
    assert len(rec.email.sent) == 1
    assert "Retry this delivery" not in (await c.get(f"/console/deliveries/{dead[0]}")).text


async def test_retry_all_dead_matching_the_filter(
    console_factory: ConsoleFactory, make_harness: HarnessFactory
) -> None:
    c, rec, orders = await _with_dead(console_factory, make_harness)
    listing = "/console/deliveries?status=dead&integration=notifications"
    page = await c.get(listing)
    assert "Retry all dead deliveries matching this filter" in page.text
    assert "Retry all" not in (await c.get("/console/deliveries")).text  # dead ones only
    fields = {"integration": "notifications", "orderId": ""}
    asked = await c.submit("/console/deliveries/retry", fields, listing)
    assert asked.status_code == 200
    assert "Put every dead notifications delivery back in the queue." in asked.text
    assert len(await _dead_ids(c.harness)) == 4  # nothing yet
    confirm = dict(
        re.findall(r'<input type="hidden" name="([a-zA-Z_]+)" value="([^"]*)">', asked.text)
    )
    done = await c.post("/console/deliveries/retry", confirm)
    assert done.status_code == 303
    shown = await c.client.get(done.headers["location"])
    assert "2 dead deliveries are queued again." in shown.text
    assert len(await _dead_ids(c.harness, "&integration=email")) == 2
    assert await _dead_ids(c.harness, "&integration=notifications") == []
    # by order: only that order's dead email
    by_order = {"integration": "email", "orderId": orders[0]["id"], "confirmed": "yes"}
    again = await c.submit("/console/deliveries/retry", by_order, listing)
    assert again.status_code == 303
    assert (
        "1 dead delivery is queued again." in (await c.client.get(again.headers["location"])).text
    )
    assert len(await _dead_ids(c.harness)) == 1
    while await c.harness.container.worker.run_once() > 0:
        pass
    assert len(rec.notifications.published) == 2 and len(rec.email.sent) == 1


async def test_errors_page_lists_recent_errors(console: Console) -> None:
    h = console.harness
    order = await h.create_order()
    assert order.status_code == 201
    declined = await h.confirm(order.json()["data"]["order"], "pm_card_chargeDeclined")
    assert declined.status_code == 402
    errors = (await h.client.get("/api/monitoring/errors", headers=AUTH)).json()["data"]
    page = await console.get("/console/errors")
    assert page.status_code == 200
    for entry in errors["errors"]:
        assert entry["message"] in page.text


async def test_reconciliation_page_lists_the_runs_newest_first(console: Console) -> None:
    empty = await console.get("/console/reconciliation")
    assert empty.status_code == 200 and "No run yet" in empty.text
    reconcile = console.harness.container.reconcile
    first, second = await reconcile.run(), await reconcile.run()
    page = await console.get("/console/reconciliation")
    assert page.status_code == 200 and "No run yet" not in page.text
    assert 'href="/console/reconciliation" aria-current="page"' in page.text
    started = [when(run.started_at) for run in (second, first)]
    assert all(s in page.text for s in started)
    assert page.text.index(started[0]) <= page.text.index(started[1])
    assert "(2)" in page.text


async def test_static_assets_are_served_and_unknown_ones_are_404(
    console_factory: ConsoleFactory,
) -> None:
    c: Console = await console_factory()
    css = await c.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in css.text.replace("https", "http").split("*/", 1)[-1]
    assert (await c.get("/console/static/app.js")).status_code == 404
