"""The seed's production configuration, DynamoDB included: health and integrations
answer with exactly the seed's keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.app import AUTH, Harness
from tests.fixtures.peers import Moto
from tests.fixtures.production import seed_production
from tests.fixtures.stripe_server import FakeStripe


@pytest.fixture
async def production(
    make_harness: Callable[..., Any],
    dynamodb_url: str,
    fake_stripe: FakeStripe,
    moto: Moto,
    google_credentials: str,
) -> Harness:
    harness: Harness = await make_harness(
        database_url=dynamodb_url,
        **seed_production(fake_stripe, moto, google_credentials),
    )
    return harness


async def test_health_has_exactly_the_seed_keys(production: Harness) -> None:
    h = production
    response = await h.client.get("/api/monitoring/health", headers=AUTH)
    assert response.status_code == 200, response.text
    services = response.json()["data"]["services"]
    assert set(services) == {"dynamodb", "stripe", "sendgrid", "googleSheets", "sns"}
    assert services["dynamodb"]["status"] == "up"
    assert isinstance(services["dynamodb"]["latency"], int)
    assert services["sendgrid"] == {"status": "configured"}


async def test_integrations_have_exactly_the_seed_keys(production: Harness) -> None:
    h = production
    await h.container.monitoring.probe_and_record()
    response = await h.client.get("/api/monitoring/integrations", headers=AUTH)
    assert response.status_code == 200, response.text
    entries = response.json()["data"]["integrations"]
    assert set(entries) == {"stripe", "sendgrid", "googleSheets", "aws"}
    assert entries["aws"]["name"] == "AWS Services"
    assert entries["aws"]["services"] == {"dynamodb": "operational", "sns": "operational"}
