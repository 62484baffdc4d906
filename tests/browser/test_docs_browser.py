"""`/docs` (Swagger UI) and `/redoc` (ReDoc) render in a real browser that may load
nothing but orderhub's own origin: the interactive documentation works offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.browser import chromium, require_chromium
from tests.fixtures.cli import cli_env, free_port, serving

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def offline_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, list[str]]]:
    """A page of a browser whose every request to another origin is refused (and kept)."""
    require_chromium()
    home: Path = tmp_path_factory.mktemp("docs")
    env = cli_env(home / "data", PORT=str(free_port()), LOG_LEVEL="warning")
    with serving(env, home) as base, chromium() as browser:
        page = browser.new_page()
        elsewhere: list[str] = []

        def only_same_origin(route: Any) -> None:
            if route.request.url.startswith(f"{base}/"):
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_same_origin)
        yield page, base, elsewhere
        page.close()


def test_swagger_ui_renders_every_operation_offline(
    offline_page: tuple[Any, str, list[str]],
) -> None:
    page, base, elsewhere = offline_page
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock", timeout=60_000)
    assert page.locator(".opblock").count() >= 20
    assert page.locator(".errors-wrapper").count() == 0
    assert page.get_by_text("/api/orders", exact=True).count() >= 1
    assert elsewhere == []


def test_redoc_renders_offline(offline_page: tuple[Any, str, list[str]]) -> None:
    page, base, elsewhere = offline_page
    page.goto(f"{base}/redoc")
    page.wait_for_selector('h2:has-text("Create an order and its payment intent")', timeout=60_000)
    assert elsewhere == []
