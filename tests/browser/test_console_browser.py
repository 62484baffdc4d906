"""The operator console in a real browser: headless Chromium driven by Playwright against a
real `orderhub serve` whose notifications go to a local webhook receiver. Every test fails
on a request leaving 127.0.0.1 and on any console error (a CSP violation, a missing
asset). Screenshots of every page at 1280 and 360 px land in tests/artifacts/."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.browser import chromium, require_chromium
from tests.fixtures.cli import cli_env, free_port, start_cli, wait_healthy
from tests.fixtures.orders import order_body
from tests.fixtures.peers import WebhookPeer

KEY = "console-browser-key-123"
HEADERS = {"X-API-Key": KEY}
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
WIDTHS = (1280, 360)

pytestmark = pytest.mark.timeout(300)


class Server:
    def __init__(self, base: str, receiver: WebhookPeer) -> None:
        self.base = base
        self.receiver = receiver

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}{path}", headers=HEADERS, timeout=10, **kwargs)

    def order(self, paid: bool = True, **changes: Any) -> dict[str, Any]:
        created = self.api("POST", "/api/orders", json=order_body(**changes))
        assert created.status_code == 201, created.text
        order: dict[str, Any] = created.json()["data"]["order"]
        if paid:
            body = {
                "orderId": order["id"],
                "paymentIntentId": order["paymentIntentId"],
                "paymentMethod": "pm_card_visa",
            }
            assert self.api("POST", "/api/payments/confirm", json=body).status_code == 200
        return order

    def idle(self) -> None:
        """Wait until the worker has sent everything (its attempts count in the metrics)."""

        def waiting() -> int:
            return sum(
                len(self.api("GET", f"/api/monitoring/deliveries?status={s}").json()["data"])
                for s in ("pending", "in_flight")
            )

        self.until(lambda: waiting() == 0)

    def until(self, check: Callable[[], Any], seconds: float = 20) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError("not reached in time")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("console") / "data"
    port = free_port()
    receiver = WebhookPeer(status=410)
    env = cli_env(
        data_dir,
        API_KEYS=KEY,
        PORT=str(port),
        LOG_LEVEL="warning",
        NOTIFY_BACKEND="webhook",
        NOTIFY_WEBHOOK_URL=receiver.url,
        NOTIFY_WEBHOOK_SECRET=SECRET,
    )
    process: subprocess.Popen[bytes] = start_cli(["serve"], env, data_dir.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base), "server did not start"
        yield Server(base, receiver)
    finally:
        process.terminate()
        process.wait(timeout=20)
        receiver.stop()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


class Tab:
    """One browser context and page, watching every request and console message."""

    def __init__(self, browser: Any, server: Server, width: int = 1280, js: bool = True) -> None:
        self.server = server
        self.context = browser.new_context(
            viewport={"width": width, "height": 900}, java_script_enabled=js
        )
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def go(self, path: str) -> Any:
        response = self.page.goto(f"{self.server.base}{path}")
        assert response is not None
        return response

    def sign_in(self, key: str = KEY) -> None:
        self.go("/console/sign-in")
        self.page.fill("#api_key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def submit(self, button: str) -> None:
        self.page.click(button)
        self.page.wait_for_load_state()

    def shoot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        width = self.page.viewport_size["width"]
        self.page.screenshot(path=str(ARTIFACTS / f"console-{name}-{width}.png"), full_page=True)
        # readable at this width: nothing wider than the window but scrolling tables
        overflow = self.page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} is {overflow} px wide at {width} px"

    def close(self) -> None:
        self.context.close()
        hosts = {urlsplit(url).hostname for url in self.requests}
        assert hosts <= {"127.0.0.1"}, self.requests
        assert self.errors == []


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    opened = Tab(browser, server)
    yield opened
    opened.close()


def _figure(tab: Tab, name: str) -> str:
    return str(tab.page.inner_text(f"#{name}")).strip()


def test_sign_in_shows_the_overview(tab: Tab) -> None:
    tab.sign_in()
    assert tab.page.url == f"{tab.server.base}/console"
    assert tab.page.inner_text("h1") == "Overview"
    cookie = next(c for c in tab.context.cookies() if c["name"] == "orderhub_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert KEY not in tab.page.content()


def test_a_wrong_key_is_refused(tab: Tab) -> None:
    tab.sign_in("not-the-key")
    assert "That API key was not accepted." in tab.page.inner_text(".error")
    # the browser notes the 401 answer itself: that one message is expected
    assert tab.errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    tab.errors.clear()
    tab.go("/console")
    assert tab.page.url.endswith("/console/sign-in")
    assert not [c for c in tab.context.cookies() if c["name"] == "orderhub_console"]


def test_overview_shows_the_figures_of_the_metrics_endpoint(tab: Tab, server: Server) -> None:
    server.order()
    server.order(paid=False)
    server.idle()
    tab.sign_in()
    for time_range in ("24h", "1h"):
        tab.page.select_option("select[name=timeRange]", time_range)  # the script submits
        tab.page.wait_for_url(re.compile(rf"timeRange={time_range}"))
        metrics = server.api("GET", f"/api/monitoring/metrics?timeRange={time_range}").json()
        data = metrics["data"]
        for name in ("total", "successful", "pending", "failed", "cancelled"):
            assert int(_figure(tab, f"orders-{name}")) == data["orders"][name], name
        assert _figure(tab, "revenue-total") == f"{data['revenue']['total']:.2f} USD"
        for key, counts in data["integrations"].items():
            assert int(tab.page.inner_text(f"[data-calls={key}]")) == counts["calls"]
            assert int(tab.page.inner_text(f"[data-errors={key}]")) == counts["errors"]
        assert tab.page.locator("svg.chart").count() == 3


def test_an_api_order_is_shipped_from_the_console_without_javascript(
    browser: Any, server: Server
) -> None:
    order = server.order(customerName="Ada Lovelace")
    tab = Tab(browser, server, js=False)
    try:
        tab.sign_in()
        tab.go("/console/orders")
        tab.submit(f"a[href='/console/orders/{order['id']}']")
        assert tab.page.inner_text("#customer-name") == "Ada Lovelace"
        tab.page.fill("input[name=tracking]", "1Z999AA10123456784")
        tab.submit("form[action$='/actions/shipped'] button")
        assert "Please confirm" in tab.page.inner_text("h1")
        assert "1Z999AA10123456784" in tab.page.inner_text("#confirm-text")
        tab.submit("form.stack button[type=submit]")
        assert "The order is now shipped." in tab.page.inner_text(".notice")
        assert tab.page.inner_text("#tracking-number") == "1Z999AA10123456784"
    finally:
        tab.close()
    seen = server.api("GET", f"/api/orders/{order['id']}").json()["data"]
    assert (seen["status"], seen["trackingNumber"]) == ("shipped", "1Z999AA10123456784")
    assert (seen["history"][-1]["type"], seen["history"][-1]["source"]) == (
        "order.shipped",
        "console",
    )


def test_a_dead_delivery_is_retried_from_the_console_and_delivered(
    tab: Tab, server: Server
) -> None:
    server.receiver.status = 410  # the receiver is gone: its deliveries die at once
    order = server.order(paid=False)

    def dead() -> list[dict[str, Any]]:
        found = server.api(
            "GET", f"/api/monitoring/deliveries?status=dead&orderId={order['id']}"
        ).json()["data"]
        return list(found)

    (delivery,) = server.until(dead)
    server.receiver.status = 200  # back up
    tab.sign_in()
    tab.go(f"/console/deliveries?status=dead&orderId={order['id']}")
    tab.submit(f"a[href='/console/deliveries/{delivery['id']}']")
    assert "dead" in tab.page.inner_text("#delivery-status")
    tab.submit("button:text-is('Retry this delivery')")
    assert "The delivery is queued again." in tab.page.inner_text(".notice")

    def delivered() -> bool:
        listed = server.api("GET", f"/api/monitoring/deliveries?orderId={order['id']}").json()
        return any(d["id"] == delivery["id"] and d["status"] == "delivered" for d in listed["data"])

    server.until(delivered)
    tab.go(f"/console/deliveries/{delivery['id']}")
    assert "delivered" in tab.page.inner_text("#delivery-status")
    assert [b["data"]["order"]["id"] for b in server.receiver.accepted()] == [order["id"]]


def test_sign_out_ends_the_session(browser: Any, tab: Tab, server: Server) -> None:
    tab.sign_in()
    cookies = tab.context.cookies()
    tab.submit(".sign-out button")
    assert tab.page.url.endswith("/console/sign-in?signed_out=1")
    # the cookie, put back in another browser, opens nothing any more
    other = Tab(browser, server)
    try:
        other.context.add_cookies(cookies)
        other.go("/console/orders")
        assert other.page.url.endswith("/console/sign-in")
    finally:
        other.close()


def test_the_console_is_keyboard_reachable(tab: Tab) -> None:
    tab.sign_in()
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"
    reached = []
    for _ in range(6):
        tab.page.keyboard.press("Tab")
        reached.append(tab.page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Overview", "Orders", "Deliveries", "Errors", "Sign out"} <= set(reached)
    while tab.page.evaluate("document.activeElement.textContent.trim()") != "Errors":
        tab.page.keyboard.press("Shift+Tab")
    tab.page.keyboard.press("Enter")  # follows the focused link
    tab.page.wait_for_url("**/console/errors")
    assert tab.page.inner_text("h1") == "Errors"


def test_screenshots_of_every_page(browser: Any, server: Server) -> None:
    server.receiver.status = 410  # some deliveries die, for the retry pages
    paid = server.order(customerName="<script>alert(1)</script>")
    server.order(paid=False, customerId="cust_other", customerName="Grace Hopper")
    server.until(
        lambda: server.api(
            "GET", f"/api/monitoring/deliveries?status=dead&orderId={paid['id']}"
        ).json()["data"]
    )
    for width in WIDTHS:
        tab = Tab(browser, server, width=width)
        try:
            tab.go("/console/sign-in")
            tab.shoot("sign-in")
            tab.sign_in()
            tab.shoot("overview")
            tab.go("/console/orders")
            tab.shoot("orders")
            tab.go(f"/console/orders/{paid['id']}")
            # the customer's name is text, not a script
            assert tab.page.inner_text("#customer-name") == "<script>alert(1)</script>"
            tab.shoot("order")
            tab.page.fill("input[name=amount]", "5")
            tab.submit("form[action$='/actions/refund'] button")
            tab.shoot("confirm")
            tab.go("/console/deliveries")
            tab.shoot("deliveries")
            first = tab.page.locator("table.list tbody a").first.get_attribute("href")
            tab.go(first)
            tab.shoot("delivery")
            tab.go("/console/deliveries?status=dead")
            tab.submit("form[action='/console/deliveries/retry'] button")
            tab.shoot("confirm-retry")
            tab.go("/console/errors")
            tab.shoot("errors")
            tab.go("/console/reconciliation")
            tab.shoot("reconciliation")
        finally:
            tab.close()
    shots = sorted(p.name for p in ARTIFACTS.glob("console-*.png"))
    pages = ("sign-in", "overview", "orders", "order", "confirm", "deliveries", "delivery")
    for name in (*pages, "confirm-retry", "errors", "reconciliation"):
        assert {f"console-{name}-{w}.png" for w in WIDTHS} <= set(shots)
