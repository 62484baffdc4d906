"""The checkout pages in a real browser: headless Chromium (Debian's `chromium`) driven by
Playwright, against a real `orderhub serve`. Skipped when Chromium is absent, unless
ORDERHUB_REQUIRE_SERVICES=1. Screenshots land in tests/browser/screenshots/."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.browser import chromium, require_chromium
from tests.fixtures.cli import cli_env, free_port, start_cli, wait_healthy
from tests.fixtures.orders import order_body

KEY = "browser-test-key-123"
HEADERS = {"X-API-Key": KEY}
SCREENSHOTS = Path(__file__).parent / "screenshots"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    port = free_port()
    env = cli_env(
        data_dir, API_KEYS=KEY, PORT=str(port), LOG_LEVEL="warning", SHOP_NAME="Corner Shop"
    )
    process: subprocess.Popen[bytes] = start_cli(["serve"], env, data_dir.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base), "server did not start"
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield opened
        # no CSP violation, no missing asset
        assert errors == []
    finally:
        context.close()


def _create_order(base: str) -> tuple[dict[str, Any], str]:
    response = httpx.post(f"{base}/api/orders", json=order_body(), headers=HEADERS, timeout=10)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return data["order"], data["clientSecret"]


def _seed_confirm(base: str, order: dict[str, Any]) -> httpx.Response:
    body = {"orderId": order["id"], "paymentIntentId": order["paymentIntentId"]}
    return httpx.post(f"{base}/api/payments/confirm", json=body, headers=HEADERS, timeout=10)


def _assert_paid(base: str, order: dict[str, Any]) -> None:
    confirmed = _seed_confirm(base, order)
    assert confirmed.status_code == 200
    assert confirmed.json() == {
        "success": True,
        "message": "Payment confirmed successfully",
        "data": {"status": "succeeded"},
    }
    stored = httpx.get(f"{base}/api/orders/{order['id']}", headers=HEADERS, timeout=10).json()
    assert (stored["data"]["status"], stored["data"]["paymentStatus"]) == ("paid", "completed")


def _open_checkout(page: Any, base: str) -> dict[str, Any]:
    """A new order, its checkout page open in `page`; returns the order."""
    order, secret = _create_order(base)
    response = page.goto(f"{base}/sandbox/checkout/{secret}")
    assert response is not None and response.status == 200
    assert response.headers["x-frame-options"] == "DENY"
    return order


def _click(page: Any, selector: str) -> None:
    page.click(selector)
    page.wait_for_load_state()


def _pay_with(page: Any, card: str) -> None:
    page.fill("#card", card)
    _click(page, "#pay")


def _result(page: Any) -> str | None:
    result: str | None = page.get_attribute("#result", "data-result")
    return result


def _screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def _shows_paid(page: Any, base: str, order: dict[str, Any]) -> None:
    assert _result(page) == "paid"
    _assert_paid(base, order)


def test_pay_with_4242(server: str, page: Any) -> None:
    order = _open_checkout(page, server)
    assert page.inner_text("h1") == "Corner Shop"
    assert "109.97 USD" in page.inner_text("#total")
    assert "Product A" in page.content()
    # the stylesheet applied (a CSS rule, not the browser's default)
    assert page.eval_on_selector("#pay", "b => getComputedStyle(b).borderRadius") == "6px"
    _screenshot(page, "checkout.png")
    _pay_with(page, "4242 4242 4242 4242")
    _shows_paid(page, server, order)


def test_3d_secure_completed(server: str, page: Any) -> None:
    order = _open_checkout(page, server)
    _pay_with(page, "4000002500003155")
    assert "3-D Secure" in page.inner_text("h2")
    _screenshot(page, "three_d_secure.png")
    _click(page, "#complete")
    _shows_paid(page, server, order)


@pytest.mark.parametrize(
    ("card", "fail_with", "result", "reason"),
    [
        pytest.param(
            "pm_card_authenticationRequired",
            "#fail",
            "authentication_failed",
            None,
            id="3ds-failed",
        ),
        pytest.param("4000000000009995", None, "declined", "insufficient funds", id="declined"),
    ],
)
def test_failed_first_attempt_then_paid(
    server: str, page: Any, card: str, fail_with: str | None, result: str, reason: str | None
) -> None:
    """The first card fails (`fail_with`: the button that fails its 3-D Secure step); the
    page says `result` (and `reason`, kept on the retry page); the intent wants a new
    method; a good card then pays."""
    order = _open_checkout(page, server)
    _pay_with(page, card)
    if fail_with is not None:
        _click(page, fail_with)
    assert _result(page) == result
    if reason is not None:
        assert reason in page.inner_text("#result")
    assert _seed_confirm(server, order).json()["data"]["status"] == "requires_payment_method"
    _click(page, "#retry")
    if reason is not None:
        assert reason in page.inner_text("#error")
    _pay_with(page, "4242424242424242")
    _shows_paid(page, server, order)
