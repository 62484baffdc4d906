"""SPEC §3 and §7 on the wire: the envelope for every error, request ids, probes, the
OpenAPI document, and the seed's response shapes for creating, reading and listing."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.app import AUTH, Harness
from tests.fixtures.envelopes import assert_error
from tests.fixtures.orders import (
    OPTIONAL_ORDER_FIELDS,
    REQUIRED_ORDER_FIELDS,
    SEED_ORDER,
    history_entry,
    order_body,
)

ORDERS = "/api/orders"

ISO_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
INTENT_ID = re.compile(r"^pi_[A-Za-z0-9]+$")
CLIENT_SECRET = re.compile(r"^(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+$")

# SPEC §7: always present, null when unset.
ORDER_FIELDS = {
    "id",
    "customerId",
    "customerEmail",
    "customerName",
    "items",
    "totalAmount",
    "shippingAmount",
    "taxAmount",
    "discountAmount",
    "currency",
    "shippingAddress",
    "billingAddress",
    "metadata",
    "status",
    "paymentStatus",
    "paymentIntentId",
    "trackingNumber",
    "refunds",
    "refundedAmount",
    "paidAt",
    "cancelledAt",
    "createdAt",
    "updatedAt",
}
SEED_SUMMARY_FIELDS = {"id", "customerName", "totalAmount", "status", "createdAt"}


async def create(harness: Harness, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await harness.create_order(body)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["data"]["order"]
    return order


# -- errors for routes and methods --------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/api/orders/abc/def", "/api"])
async def test_unknown_route_is_404_in_the_envelope(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path, headers=AUTH)
    assert assert_error(response, 404, "Route not found")["code"] == "not_found"


async def test_unknown_route_without_credentials_is_404_in_the_envelope(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/nope")
    assert assert_error(response, 404, "Route not found")["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", ORDERS),
        ("DELETE", ORDERS),
        ("PATCH", ORDERS),
        ("PUT", f"{ORDERS}/{uuid.uuid4()}"),
        ("POST", f"{ORDERS}/{uuid.uuid4()}"),
        ("POST", "/health"),
        ("DELETE", "/ready"),
    ],
)
async def test_wrong_method_is_405_in_the_envelope(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await api.request(method, path, headers=AUTH)
    assert assert_error(response, 405, "Method not allowed")["code"] == "method_not_allowed"


# -- X-Request-ID -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health"), ("GET", ORDERS), ("GET", "/nope"), ("POST", ORDERS), ("PUT", ORDERS)],
)
async def test_request_id_is_echoed(api: httpx.AsyncClient, method: str, path: str) -> None:
    request_id = "req-7f3a9c2e.client:1"
    response = await api.request(method, path, headers={**AUTH, "X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id


async def test_request_id_is_echoed_on_401(api: httpx.AsyncClient) -> None:
    response = await api.get(ORDERS, headers={"X-Request-ID": "abc123"})
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "abc123"


async def test_request_id_is_echoed_on_413(api: httpx.AsyncClient) -> None:
    response = await api.post(
        ORDERS,
        content=b" " * (1024 * 1024 + 1),
        headers={**AUTH, "X-Request-ID": "big-one", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["X-Request-ID"] == "big-one"


@pytest.mark.parametrize(
    "given",
    ["", "has space", "semi;colon", "x" * 129, "new\u00e9id", "a/b", "<script>", "{id}"],
)
async def test_a_request_id_outside_the_allowed_set_is_replaced(
    api: httpx.AsyncClient, given: str
) -> None:
    response = await api.get("/health", headers={"X-Request-ID": given.encode("utf-8")})
    replaced = response.headers["X-Request-ID"]
    assert replaced != given
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    longest = "A1._:-" * 21 + "zz"  # 128 characters, all allowed
    assert (await api.get("/health", headers={"X-Request-ID": longest})).headers[
        "X-Request-ID"
    ] == longest


@pytest.mark.parametrize("path", ["/health", ORDERS, "/nope"])
async def test_request_id_is_generated_when_not_sent(api: httpx.AsyncClient, path: str) -> None:
    first = await api.get(path, headers=AUTH)
    second = await api.get(path, headers=AUTH)
    assert first.headers["X-Request-ID"]
    assert second.headers["X-Request-ID"]
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


# -- probes -------------------------------------------------------------------------------


async def test_health_is_open_and_ok(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]


async def test_ready_is_open_and_ok(api: httpx.AsyncClient) -> None:
    response = await api.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# -- OpenAPI and docs ---------------------------------------------------------------------


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/")
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


async def test_openapi_is_open_and_version_3_1(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.1")
    assert openapi["info"]["title"]


async def test_openapi_lists_every_route(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    assert {"post", "get"} <= set(paths[ORDERS])
    assert {"get", "patch", "delete"} <= set(paths[f"{ORDERS}/{{order_id}}"])
    assert "get" in paths["/health"]
    assert "get" in paths["/ready"]


async def test_openapi_documents_the_create_request_body(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"][ORDERS]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    schema = resolve(openapi, body["content"]["application/json"]["schema"])
    assert schema == openapi["components"]["schemas"]["OrderCreateIn"]
    properties = schema["properties"]
    assert set(properties) >= {*REQUIRED_ORDER_FIELDS, *OPTIONAL_ORDER_FIELDS}
    assert set(schema["required"]) == set(REQUIRED_ORDER_FIELDS)
    assert schema["additionalProperties"] is False
    assert properties["items"]["type"] == "array"
    assert properties["items"]["minItems"] == 1
    assert properties["items"]["maxItems"] == 100
    assert properties["totalAmount"]["type"] == "number"
    item = resolve(openapi, properties["items"]["items"])
    assert set(item["required"]) == {"id", "name", "quantity", "price"}
    assert item["properties"]["quantity"]["type"] == "integer"
    assert item["properties"]["price"]["type"] == "number"
    address = resolve(openapi, properties["shippingAddress"])
    assert set(address["required"]) == {"street", "city", "state", "zipCode", "country"}


async def test_openapi_amount_defaults_are_numbers(openapi: dict[str, Any]) -> None:
    """A documented default must be a value the API accepts: strings are never coerced."""
    properties = openapi["components"]["schemas"]["OrderCreateIn"]["properties"]
    for field in ("shippingAmount", "taxAmount", "discountAmount"):
        assert properties[field]["default"] == 0, field
        assert not isinstance(properties[field]["default"], str), field


async def test_openapi_documents_the_update_request_body(openapi: dict[str, Any]) -> None:
    body = openapi["paths"][f"{ORDERS}/{{order_id}}"]["patch"]["requestBody"]
    schema = resolve(openapi, body["content"]["application/json"]["schema"])
    assert set(schema["properties"]) == {"status", "trackingNumber", "shippingAddress", "metadata"}


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        (ORDERS, "post", {"201", "400", "401", "413"}),
        (ORDERS, "get", {"200", "400", "401"}),
        (f"{ORDERS}/{{order_id}}", "get", {"200", "401", "404"}),
        (f"{ORDERS}/{{order_id}}", "patch", {"200", "400", "401", "404", "409"}),
        (f"{ORDERS}/{{order_id}}", "delete", {"200", "401", "404", "409"}),
    ],
)
async def test_openapi_documents_error_responses_with_the_envelope(
    openapi: dict[str, Any], path: str, method: str, codes: set[str]
) -> None:
    responses = openapi["paths"][path][method]["responses"]
    assert codes <= set(responses)
    for code in codes - {"200", "201"}:
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (code, schema)


async def test_openapi_documents_no_fastapi_422_validation_error(
    openapi: dict[str, Any],
) -> None:
    """Validation errors are 400 in the envelope, never FastAPI's default 422 (SPEC §3);
    every documented error response of the API is the envelope (the probes answer with
    their own `{status}` body, and an unhealthy health check with SPEC §11's envelope that
    carries the health as `data`)."""
    sandbox_confirm = "/sandbox/v1/payment_intents/{intent_id}/confirm"
    spec_shaped = {
        ("get", "/api/monitoring/health", "503"): "UnhealthyOut",
        # the sandbox answers as Stripe does (what Stripe.js expects), not in the envelope
        ("post", sandbox_confirm, "400"): "StripeErrorOut",
        ("post", sandbox_confirm, "404"): "StripeErrorOut",
    }
    # the sandbox's checkout pages answer a person, with a page
    pages = {
        ("get", "/sandbox/checkout/{client_secret}", "404"),
        ("post", "/sandbox/checkout/pay", "400"),
        ("post", "/sandbox/checkout/pay", "404"),
        ("post", "/sandbox/checkout/authenticate", "404"),
    }
    undocumented = []
    for path, operations in openapi["paths"].items():
        if path in {"/health", "/ready"}:
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if not code.startswith(("4", "5")):
                    continue
                if (method, path, code) in pages:
                    assert set(response["content"]) == {"text/html"}, (method, path, code)
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                expected = spec_shaped.get((method, path, code), "ErrorEnvelope")
                if schema != {"$ref": f"#/components/schemas/{expected}"}:
                    undocumented.append(f"{method.upper()} {path} {code}: {schema}")
    assert "\n".join(undocumented) == ""


async def test_openapi_marks_api_routes_as_authenticated(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    assert openapi["paths"][ORDERS]["post"]["security"]
    assert not openapi["paths"]["/health"]["get"].get("security")


async def test_docs_are_open_html(api: httpx.AsyncClient) -> None:
    response = await api.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


# -- nothing internal ever leaks ----------------------------------------------------------

LEAKS = ["Traceback", "sqlalchemy", "SQLAlchemy", 'File "', "pydantic", "Decimal(", "NoneType"]


async def test_no_response_body_leaks_internals(harness: Harness) -> None:
    api = harness.client
    created = await create(harness)
    order_url = f"{ORDERS}/{created['id']}"
    raw = {"Content-Type": "application/json", **AUTH}
    huge_total = json.dumps(order_body()).replace("109.97", "1e30").encode()
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/nope", {}),
        ("PUT", ORDERS, {"headers": AUTH}),
        ("GET", ORDERS, {}),
        ("GET", ORDERS, {"headers": {"X-API-Key": "wrong"}}),
        ("GET", f"{ORDERS}?limit=abc", {"headers": AUTH}),
        ("GET", f"{ORDERS}?lastKey=garbage", {"headers": AUTH}),
        ("GET", f"{ORDERS}?lastKey={'x' * 600}", {"headers": AUTH}),
        ("GET", f"{ORDERS}/not-a-uuid", {"headers": AUTH}),
        ("GET", f"{ORDERS}/'; DROP TABLE orders; --", {"headers": AUTH}),
        ("POST", ORDERS, {"headers": raw, "content": b"{bad"}),
        ("POST", ORDERS, {"headers": raw, "content": b"\xff"}),
        ("POST", ORDERS, {"headers": raw, "content": b"[" * 50_000}),
        ("POST", ORDERS, {"headers": raw, "content": huge_total}),
        ("POST", ORDERS, {"headers": AUTH, "json": {"items": [None]}}),
        ("POST", ORDERS, {"headers": AUTH, "json": order_body(customerId="'; --")}),
        ("PATCH", order_url, {"headers": raw, "content": b"{bad"}),
        ("PATCH", order_url, {"headers": AUTH, "json": {"status": "shipped"}}),
        ("PATCH", order_url, {"headers": AUTH, "json": {"status": None}}),
        ("DELETE", f"{ORDERS}/{uuid.uuid4()}", {"headers": AUTH}),
        ("DELETE", order_url, {"headers": AUTH}),
        ("DELETE", order_url, {"headers": AUTH}),
    ]
    for method, url, options in requests:
        response = await api.request(method, url, **options)
        for leak in LEAKS:
            assert leak not in response.text, (method, url, response.status_code, response.text)
        if response.status_code >= 400:
            assert response.json()["success"] is False, (method, url, response.text)


# -- unknown orders -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "order_id",
    ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", str(uuid.uuid4())],
)
async def test_unknown_order_is_404(api: httpx.AsyncClient, order_id: str) -> None:
    response = await api.get(f"{ORDERS}/{order_id}", headers=AUTH)
    error = assert_error(response, 404, "Order not found")
    assert error["code"] == "not_found"


async def test_unknown_uuid7_order_is_404(harness: Harness) -> None:
    created = await create(harness)
    neighbour = uuid.UUID(created["id"]).int + 1
    response = await harness.client.get(f"{ORDERS}/{uuid.UUID(int=neighbour)}", headers=AUTH)
    assert_error(response, 404, "Order not found")


# -- the seed's shapes --------------------------------------------------------------------


async def test_create_matches_the_seed_shape(harness: Harness) -> None:
    response = await harness.client.post(ORDERS, json=SEED_ORDER, headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "data", "message"}
    assert body["success"] is True
    assert body["message"] == "Order created successfully"
    assert set(body["data"]) == {"order", "clientSecret"}
    order = body["data"]["order"]

    assert set(order) >= ORDER_FIELDS
    assert "history" not in order
    assert order["customerId"] == "cust_abc123"
    assert order["customerEmail"] == "john.doe@example.com"
    assert order["customerName"] == "John Doe"
    assert order["items"] == SEED_ORDER["items"]
    assert order["totalAmount"] == 109.97
    assert order["currency"] == "usd"
    assert order["shippingAddress"] == SEED_ORDER["shippingAddress"]
    assert order["billingAddress"] == SEED_ORDER["billingAddress"]
    assert order["status"] == "pending"
    assert order["paymentStatus"] == "pending"
    assert order["shippingAmount"] == 0
    assert order["taxAmount"] == 0
    assert order["discountAmount"] == 0
    assert order["refunds"] == []
    assert order["refundedAmount"] == 0
    for unset in ("metadata", "trackingNumber", "paidAt", "cancelledAt"):
        assert order[unset] is None, unset

    assert INTENT_ID.match(order["paymentIntentId"]), order["paymentIntentId"]
    secret = CLIENT_SECRET.match(body["data"]["clientSecret"])
    assert secret is not None, body["data"]["clientSecret"]
    assert secret.group(1) == order["paymentIntentId"]

    assert ISO_MS_UTC.match(order["createdAt"]), order["createdAt"]
    assert ISO_MS_UTC.match(order["updatedAt"]), order["updatedAt"]
    assert order["createdAt"] == order["updatedAt"]

    order_id = uuid.UUID(order["id"])
    assert str(order_id) == order["id"]
    assert order_id.version == 7
    assert order_id.variant == uuid.RFC_4122


async def test_money_fields_are_json_numbers(harness: Harness) -> None:
    response = await harness.create_order()
    text = response.text
    assert '"totalAmount":109.97' in text
    assert '"price":29.99' in text
    assert '"109.97"' not in text


async def test_order_ids_follow_creation_order(harness: Harness) -> None:
    ids = [uuid.UUID((await create(harness))["id"]) for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert all(i.version == 7 for i in ids)


async def test_get_returns_the_order_with_its_history(harness: Harness) -> None:
    created = await create(harness)
    response = await harness.client.get(f"{ORDERS}/{created['id']}", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert set(body) <= {"success", "data", "message"}
    order = body["data"]
    assert set(order) >= ORDER_FIELDS | {"history"}
    assert {k: v for k, v in order.items() if k != "history"} == created
    assert order["history"] == [
        history_entry("order.created", created["createdAt"], "pending", "pending")
    ]


async def test_list_items_carry_the_seed_summary_fields(harness: Harness) -> None:
    created = await create(harness)
    response = await harness.client.get(ORDERS, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["pagination"] == {"lastKey": None, "hasMore": False}
    assert len(body["data"]) == 1
    summary = body["data"][0]
    assert set(summary) >= SEED_SUMMARY_FIELDS
    assert summary["id"] == created["id"]
    assert summary["customerName"] == "John Doe"
    assert summary["totalAmount"] == 109.97
    assert summary["status"] == "pending"
    assert summary["createdAt"] == created["createdAt"]


async def test_list_is_empty_at_first(api: httpx.AsyncClient) -> None:
    response = await api.get(ORDERS, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": [],
        "pagination": {"lastKey": None, "hasMore": False},
    }


async def test_list_pages_newest_first(harness: Harness) -> None:
    ids = [(await create(harness))["id"] for _ in range(3)]
    api = harness.client
    first = (await api.get(ORDERS, params={"limit": 2}, headers=AUTH)).json()
    assert [o["id"] for o in first["data"]] == [ids[2], ids[1]]
    assert first["pagination"]["hasMore"] is True
    last_key = first["pagination"]["lastKey"]
    assert isinstance(last_key, str)
    assert last_key
    second = (await api.get(ORDERS, params={"limit": 2, "lastKey": last_key}, headers=AUTH)).json()
    assert [o["id"] for o in second["data"]] == [ids[0]]
    assert second["pagination"] == {"lastKey": None, "hasMore": False}


async def test_list_limit_bounds_are_accepted(harness: Harness) -> None:
    await create(harness)
    for limit in (1, 100):
        response = await harness.client.get(ORDERS, params={"limit": limit}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == 1


async def test_list_filters_by_status_and_customer(harness: Harness) -> None:
    mine = await create(harness)
    await create(harness, order_body(customerId="cust_other"))
    api = harness.client
    by_customer = await api.get(ORDERS, params={"customerId": "cust_abc123"}, headers=AUTH)
    assert [o["id"] for o in by_customer.json()["data"]] == [mine["id"]]
    pending = await api.get(ORDERS, params={"status": "pending"}, headers=AUTH)
    assert len(pending.json()["data"]) == 2
    paid = await api.get(ORDERS, params={"status": "paid"}, headers=AUTH)
    assert paid.json()["data"] == []


STATUS_CHOICES = (
    "'pending', 'paid', 'processing', 'shipped', 'delivered', 'cancelled' or 'refunded'"
)


@pytest.mark.parametrize(
    ("query", "field", "problem"),
    [
        ("limit=0", "limit", "must be at least 1"),
        ("limit=-1", "limit", "must be at least 1"),
        ("limit=101", "limit", "must be at most 100"),
        ("limit=abc", "limit", "must be an integer"),
        ("limit=1.5", "limit", "must be an integer"),
        ("status=bogus", "status", f"must be one of {STATUS_CHOICES}"),
        ("lastKey=garbage", "lastKey", "is not a valid pagination key"),
    ],
)
async def test_bad_list_query_is_400(
    api: httpx.AsyncClient, query: str, field: str, problem: str
) -> None:
    response = await api.get(f"{ORDERS}?{query}", headers=AUTH)
    error = assert_error(response, 400, f"Validation error: {field} {problem}")
    assert error["details"] == [{"field": field, "message": problem}]


async def test_last_key_of_another_filter_is_400(harness: Harness) -> None:
    for _ in range(2):
        await create(harness)
    api = harness.client
    page = (await api.get(ORDERS, params={"limit": 1}, headers=AUTH)).json()
    last_key = page["pagination"]["lastKey"]
    response = await api.get(
        ORDERS, params={"limit": 1, "lastKey": last_key, "status": "pending"}, headers=AUTH
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("Validation error: lastKey ")


async def test_tampered_last_key_is_400(harness: Harness) -> None:
    for _ in range(2):
        await create(harness)
    api = harness.client
    page = (await api.get(ORDERS, params={"limit": 1}, headers=AUTH)).json()
    last_key: str = page["pagination"]["lastKey"]
    tampered = last_key[:-2] + ("AA" if not last_key.endswith("AA") else "BB")
    response = await api.get(ORDERS, params={"limit": 1, "lastKey": tampered}, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("Validation error: lastKey ")


async def test_405_names_every_allowed_method(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/orders", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    response = await api.put(f"/api/orders/{uuid.uuid4()}", headers=AUTH)
    assert response.headers["Allow"] == "GET, PATCH, DELETE"
