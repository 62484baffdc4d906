from __future__ import annotations

import os

import pytest

from orderhub.kit.logging import configure_logging
from orderhub.settings import Settings

configure_logging("warning", "json")

pytest_plugins = [
    "tests.fixtures.peers",
    "tests.fixtures.stores",
    "tests.fixtures.app",
    "tests.fixtures.stripe_server",
    "tests.fixtures.payments",
    "tests.fixtures.dynamodb",
]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the developer's shell or CI."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def services_required() -> bool:
    return os.environ.get("ORDERHUB_REQUIRE_SERVICES") == "1"
