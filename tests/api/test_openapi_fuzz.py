"""What the OpenAPI document admits, the server accepts.

For each operation under `/api/`, Hypothesis draws path and query parameters, the
`Idempotency-Key` header and the JSON body from the operation's own schemas in
`/openapi.json` (a small JSON Schema -> strategy translation below), sends them through
the real app, and checks the answer:

- its status is one the document lists for the operation;
- never 422 (FastAPI's default) nor 500;
- a 400 validation error names only fields whose rule spans several fields (a total that
  must match its items in the currency's decimals, an intent that must belong to its
  order), which no schema of a single field can say.

Order bodies get their `totalAmount` computed from their items (in the currency's
decimals), so most of them are accepted, not refused for their total.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderhub.kit.currencies import currency_exponent
from tests.fixtures.app import AUTH, Harness

NO_NUL = "^[^\\u0000]*$"
# Rules over several fields: which fields a 400 may name, per operation.
CROSS_FIELD = {
    ("post", "/api/orders"): re.compile(
        r"totalAmount|items\[\d+\]\.price|shippingAmount|taxAmount|discountAmount"
    ),
    ("post", "/api/payments/confirm"): re.compile(r"paymentIntentId"),
    ("post", "/api/payments/refund"): re.compile(r"amount"),
    # a step too fine for the range (more than 500 points) is the pair's rule
    ("get", "/api/monitoring/metrics/series"): re.compile(r"step"),
}
SKIPPED_PARAMETERS = {"lastKey"}  # opaque: only a value the server handed out is valid


# -- JSON Schema -> Hypothesis ---------------------------------------------------------


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _text(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 300)
    pattern = schema.get("pattern")
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat())
    if schema.get("format") == "date":
        return st.dates().map(lambda d: d.isoformat())
    if schema.get("format") == "email":
        local = st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,30}[a-z0-9])?", fullmatch=True)
        domain = st.from_regex(r"[a-z0-9]{1,20}\.(com|org|net|shop)", fullmatch=True)
        emails = st.builds(lambda a, b: f"{a}@{b}", local, domain)
        return emails.filter(lambda e: ".." not in e and low <= len(e) <= high)
    if pattern in (None, NO_NUL):
        alphabet = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
        return st.text(alphabet, min_size=low, max_size=high)
    return st.from_regex(pattern, fullmatch=True).filter(lambda s: low <= len(s) <= high)


def _number(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low = Decimal(str(schema.get("minimum", schema.get("exclusiveMinimum", -(10**7)))))
    high = Decimal(str(schema.get("maximum", 10**7)))
    numbers = st.integers(0, 4).flatmap(
        lambda places: st.decimals(low, high, places=places, allow_nan=False)
    )
    if "exclusiveMinimum" in schema:
        numbers = numbers.filter(lambda n: n > low)
    return numbers.map(lambda n: int(n) if n == n.to_integral_value() else float(n))


def from_schema(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values `schema` admits (a useful subset of them: numbers of at most 4 decimals,
    plain e-mail addresses, strings without lone surrogates)."""
    schema = _resolve(schema, document)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            common = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            options = [{**common, **_resolve(option, document)} for option in schema[key]]
            return st.one_of([from_schema(option, document) for option in options])
    kind = schema.get("type")
    if kind == "string":
        return _text(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "number":
        return _number(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), document),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5),
        )
    if kind == "object":
        return _object(schema, document)
    return st.none()


def _object(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        objects = st.fixed_dictionaries(
            {k: from_schema(v, document) for k, v in properties.items() if k in required},
            optional={
                k: from_schema(v, document) for k, v in properties.items() if k not in required
            },
        )
    else:
        keys = from_schema({"type": "string", **schema.get("propertyNames", {})}, document)
        values = from_schema(schema.get("additionalProperties", {}), document)
        objects = st.dictionaries(keys, values, max_size=min(schema.get("maxProperties", 5), 5))
    low = schema.get("minProperties", 0)
    return objects.filter(lambda o: len(o) >= low)


# -- requests --------------------------------------------------------------------------


def with_total(body: dict[str, Any]) -> dict[str, Any]:
    """An order body whose amounts have the currency's decimals and whose total adds up
    (items kept to sizes a provider charges: at most 100 of 1,000.00 each, at least 10.00
    for the first)."""
    places = Decimal(1).scaleb(-currency_exponent(body["currency"]))

    def exact(value: Any) -> Decimal:
        return min(Decimal(str(value)), Decimal(1000)).quantize(places)

    for item in body["items"]:
        item["quantity"] = min(item["quantity"], 100)
        item["price"] = float(exact(item["price"]))
    body["items"][0]["price"] = max(body["items"][0]["price"], 10.0)
    extras = {k: exact(body.get(k, 0)) for k in ("shippingAmount", "taxAmount", "discountAmount")}
    subtotal = sum(exact(i["price"]) * i["quantity"] for i in body["items"])
    if subtotal + extras["shippingAmount"] + extras["taxAmount"] < extras["discountAmount"]:
        extras["discountAmount"] = Decimal(0)
    for key, value in extras.items():
        if key in body:
            body[key] = float(value)
    total = subtotal + extras["shippingAmount"] + extras["taxAmount"] - extras["discountAmount"]
    body["totalAmount"] = float(total)
    return body


def api_operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, methods in document["paths"].items()
        if path.startswith("/api/")
        for method in methods
    ]


async def _order(harness: Harness, made: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One paid order of this test's own (made on first use; a DELETE may cancel it)."""
    if "order" not in made:
        response = await harness.create_order()
        assert response.status_code == 201, response.text
        order: dict[str, Any] = response.json()["data"]["order"]
        paid = await harness.confirm(order)
        assert paid.status_code == 200, paid.text
        made["order"] = order
    return made["order"]


@pytest.fixture
def made() -> dict[str, dict[str, Any]]:
    return {}


OPERATIONS = [
    ("post", "/api/orders"),
    ("get", "/api/orders"),
    ("get", "/api/orders/{order_id}"),
    ("patch", "/api/orders/{order_id}"),
    ("delete", "/api/orders/{order_id}"),
    ("post", "/api/payments/confirm"),
    ("post", "/api/payments/refund"),
    ("get", "/api/payments/{payment_intent_id}"),
    ("get", "/api/monitoring/deliveries"),
    ("post", "/api/monitoring/deliveries/retry"),
    ("post", "/api/monitoring/resync"),
    ("post", "/api/monitoring/deliveries/{delivery_id}/retry"),
    ("get", "/api/monitoring/health"),
    ("get", "/api/monitoring/integrations"),
    ("get", "/api/monitoring/metrics"),
    ("get", "/api/monitoring/metrics/series"),
    ("get", "/api/monitoring/errors"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_what_the_schema_admits_the_server_accepts(
    harness: Harness,
    openapi: dict[str, Any],
    made: dict[str, dict[str, Any]],
    method: str,
    path: str,
    data: st.DataObject,
) -> None:
    operation = openapi["paths"][path][method]
    order = await _order(harness, made)
    url, params, headers = path, {}, dict(AUTH)
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if name in SKIPPED_PARAMETERS:
            continue
        value = data.draw(from_schema(parameter["schema"], openapi), label=name)
        if where == "path":
            known = {"order_id": order["id"], "payment_intent_id": order["paymentIntentId"]}
            if name in known and data.draw(st.booleans(), label=f"known {name}"):
                value = known[name]
            url = url.replace(f"{{{name}}}", quote(str(value), safe=""))
        elif where == "query" and value is not None and data.draw(st.booleans()):
            params[name] = str(value)
        elif where == "header" and value is not None and data.draw(st.booleans()):
            # unique per request: the same key with another body is rightly a 422
            headers[name] = f"{value[:200]}-{uuid.uuid4().hex}"
    body = None
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        body = data.draw(from_schema(schema, openapi), label="body")
        if path == "/api/orders":
            body = with_total(body)
        elif "orderId" in body and data.draw(st.booleans(), label="known order"):
            body["orderId"] = order["id"]
            if "paymentIntentId" in body and data.draw(st.booleans(), label="known intent"):
                body["paymentIntentId"] = order["paymentIntentId"]
    response = await harness.client.request(
        method.upper(), url, params=params, headers=headers, json=body
    )
    status = response.status_code
    assert status not in (422, 500), response.text
    assert str(status) in operation["responses"], f"{status} is not documented: {response.text}"
    if status == 400 and response.json()["error"].get("code") == "validation_error":
        allowed = CROSS_FIELD.get((method, path))
        fields = [d["field"] for d in response.json()["error"].get("details", [])]
        assert allowed is not None and all(allowed.fullmatch(f) for f in fields), (
            f"the schema admits what the server refuses: {response.text}\nbody: {body}"
        )


async def test_every_api_operation_is_fuzzed(openapi: dict[str, Any]) -> None:
    """A new operation under /api/ goes into OPERATIONS (and, if a rule of it spans
    several fields, into CROSS_FIELD)."""
    missing = sorted(set(api_operations(openapi)) - set(OPERATIONS))
    gone = sorted(set(OPERATIONS) - set(api_operations(openapi)))
    assert (missing, gone) == ([], []), f"add to OPERATIONS: {missing}; remove: {gone}"
