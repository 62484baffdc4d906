"""SPEC §6 through the real app: every rule of the create request is a 400 in the envelope
`{"success": false, "error": {"message": "Validation error: <field> <problem>", "details"}}`
and a rejected request stores nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.app import AUTH
from tests.fixtures.envelopes import assert_error
from tests.fixtures.orders import ADDRESS, REQUIRED_ORDER_FIELDS, order_body

ORDERS = "/api/orders"
MAX_BODY_BYTES = 1024 * 1024
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


# -- helpers ------------------------------------------------------------------------------


def item(price: Any, quantity: Any = 1, *, item_id: str = "sku_1", name: str = "Thing") -> dict:
    return {"id": item_id, "name": name, "quantity": quantity, "price": price}


def single_item_order(price: Any, total: Any, currency: str = "usd", **changes: Any) -> dict:
    return order_body(items=[item(price)], totalAmount=total, currency=currency, **changes)


async def post(api: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await api.post(ORDERS, json=body, headers=AUTH)


async def post_raw(api: httpx.AsyncClient, content: bytes) -> httpx.Response:
    return await api.post(ORDERS, content=content, headers=JSON_HEADERS)


def raw_body(body: dict[str, Any], **literals: str) -> bytes:
    """The JSON text of `body` with the value of each named top-level field replaced by
    a literal written as is (numbers beyond what a float can say, NaN, ...)."""
    marked = {**body, **{name: f"@@{name}@@" for name in literals}}
    text = json.dumps(marked)
    for name, literal in literals.items():
        text = text.replace(f'"@@{name}@@"', literal)
    return text.encode()


async def assert_nothing_stored(api: httpx.AsyncClient) -> None:
    listed = await api.get(ORDERS, headers=AUTH)
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"] == []
    assert listed.json()["pagination"] == {"lastKey": None, "hasMore": False}


async def assert_invalid(
    api: httpx.AsyncClient, response: httpx.Response, field: str, problem: str
) -> None:
    """Exactly one problem, named in the message and in `details`; nothing stored."""
    error = assert_error(response, 400, f"Validation error: {field} {problem}")
    assert error["details"] == [{"field": field, "message": problem}]
    await assert_nothing_stored(api)


async def assert_field_invalid(
    api: httpx.AsyncClient, field: str, value: Any, problem: str
) -> None:
    """The seed's order with `field` set to `value` is refused for that one problem."""
    response = await post(api, order_body(**{field: value}))
    await assert_invalid(api, response, field, problem)


async def assert_invalid_all(
    api: httpx.AsyncClient, response: httpx.Response, problems: list[tuple[str, str]]
) -> None:
    """Several problems: `details` lists every one, the message names the first."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    details = [(d["field"], d["message"]) for d in error["details"]]
    assert sorted(details) == sorted(problems)
    first_field, first_problem = details[0]
    assert error["message"] == f"Validation error: {first_field} {first_problem}"
    await assert_nothing_stored(api)


async def assert_created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["data"]["order"]
    return order


# -- customer fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "john.doe@", "@example.com", "john doe@example.com", "john@@example.com", ""],
)
async def test_bad_email_is_rejected(api: httpx.AsyncClient, email: str) -> None:
    response = await post(api, order_body(customerEmail=email))
    await assert_invalid(api, response, "customerEmail", "must be a valid email")


async def test_seed_error_example_message_is_exact(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(customerEmail="john.doe.example.com"))
    error = assert_error(response, 400, "Validation error: customerEmail must be a valid email")
    assert error["code"] == "validation_error"
    await assert_nothing_stored(api)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("customerId", "", "must not be empty"),
        ("customerId", "c" * 101, "must be at most 100 characters long"),
        ("customerName", "", "must not be empty"),
        ("customerName", "n" * 201, "must be at most 200 characters long"),
    ],
)
async def test_customer_text_lengths(
    api: httpx.AsyncClient, field: str, value: str, problem: str
) -> None:
    await assert_field_invalid(api, field, value, problem)


async def test_customer_text_at_the_length_limits_is_accepted(api: httpx.AsyncClient) -> None:
    order = await assert_created(
        await post(api, order_body(customerId="c" * 100, customerName="n" * 200))
    )
    assert order["customerId"] == "c" * 100
    assert order["customerName"] == "n" * 200


# -- totals and exact decimals ------------------------------------------------------------


async def test_total_mismatch_has_the_exact_message(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(totalAmount=100))
    await assert_invalid(
        api, response, "totalAmount", "100.00 does not match computed total 109.97"
    )


async def test_total_off_by_one_cent_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(totalAmount=109.96))
    await assert_invalid(
        api, response, "totalAmount", "109.96 does not match computed total 109.97"
    )


async def test_exact_decimal_addition_in_usd(api: httpx.AsyncClient) -> None:
    # 0.10 x 3 + 0.20 x 2 is 0.7 exactly, though not in binary floating point.
    assert 0.1 * 3 + 0.2 * 2 != 0.7
    body = order_body(items=[item(0.1, 3), item(0.2, 2, item_id="sku_2")], totalAmount=0.7)
    response = await post(api, body)
    order = await assert_created(response)
    assert order["totalAmount"] == 0.7
    assert [i["price"] for i in order["items"]] == [0.1, 0.2]
    assert '"totalAmount":0.7,' in response.text


async def test_exact_decimal_addition_with_shipping(api: httpx.AsyncClient) -> None:
    assert 0.1 + 0.2 != 0.3
    body = order_body(
        items=[item(0.1), item(0.2, item_id="sku_2")], shippingAmount=0.3, totalAmount=0.6
    )
    order = await assert_created(await post(api, body))
    assert order["totalAmount"] == 0.6
    assert order["shippingAmount"] == 0.3


async def test_point_one_plus_point_two_is_point_three(api: httpx.AsyncClient) -> None:
    # cny is not on Stripe's minimum-charge list, so its minimum is one minor unit.
    body = order_body(
        items=[item(0.1), item(0.2, item_id="sku_2")], totalAmount=0.3, currency="cny"
    )
    response = await post(api, body)
    order = await assert_created(response)
    assert order["totalAmount"] == 0.3
    assert order["currency"] == "cny"
    assert '"totalAmount":0.3,' in response.text
    got = await api.get(f"{ORDERS}/{order['id']}", headers=AUTH)
    assert got.json()["data"]["totalAmount"] == 0.3


async def test_point_one_plus_point_two_is_not_the_float_sum(api: httpx.AsyncClient) -> None:
    body = order_body(
        items=[item(0.1), item(0.2, item_id="sku_2")],
        totalAmount=0.30000000000000004,
        currency="cny",
    )
    response = await post(api, body)
    await assert_invalid(api, response, "totalAmount", "must have at most 2 decimal places for cny")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"items": [item(29.999)], "totalAmount": 29.99}, "items[0].price"),
        ({"totalAmount": 109.975}, "totalAmount"),
        ({"shippingAmount": 0.001, "totalAmount": 109.97}, "shippingAmount"),
        ({"taxAmount": 1.005, "totalAmount": 109.97}, "taxAmount"),
        ({"discountAmount": 0.125, "totalAmount": 109.97}, "discountAmount"),
    ],
)
async def test_too_many_decimals_for_usd(
    api: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    response = await post(api, order_body(**changes))
    await assert_invalid(api, response, field, "must have at most 2 decimal places for usd")


async def test_too_many_decimals_in_price_and_total_are_both_reported(
    api: httpx.AsyncClient,
) -> None:
    response = await post(api, single_item_order(29.999, 29.999))
    await assert_invalid_all(
        api,
        response,
        [
            ("items[0].price", "must have at most 2 decimal places for usd"),
            ("totalAmount", "must have at most 2 decimal places for usd"),
        ],
    )


async def test_jpy_total_with_decimals_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, single_item_order(100, 100.5, "jpy"))
    await assert_invalid(api, response, "totalAmount", "must be a whole number for jpy")


async def test_jpy_price_with_decimals_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, single_item_order(100.5, 100.5, "jpy"))
    await assert_invalid_all(
        api,
        response,
        [
            ("items[0].price", "must be a whole number for jpy"),
            ("totalAmount", "must be a whole number for jpy"),
        ],
    )


async def test_jpy_whole_numbers_are_accepted_and_returned_without_decimals(
    api: httpx.AsyncClient,
) -> None:
    body = order_body(items=[item(500, 3)], shippingAmount=300, totalAmount=1800, currency="jpy")
    response = await post(api, body)
    order = await assert_created(response)
    assert order["currency"] == "jpy"
    assert order["totalAmount"] == 1800
    assert order["items"][0]["price"] == 500
    text = response.text
    assert '"totalAmount":1800,' in text
    assert '"price":500}' in text
    assert '"shippingAmount":300,' in text
    assert '"taxAmount":0,' in text
    got = await api.get(f"{ORDERS}/{order['id']}", headers=AUTH)
    assert '"totalAmount":1800,' in got.text


async def test_currency_is_lower_cased(api: httpx.AsyncClient) -> None:
    order = await assert_created(await post(api, order_body(currency="USD")))
    assert order["currency"] == "usd"
    got = await api.get(f"{ORDERS}/{order['id']}", headers=AUTH)
    assert got.json()["data"]["currency"] == "usd"


async def test_mixed_case_currency_is_lower_cased(api: httpx.AsyncClient) -> None:
    order = await assert_created(await post(api, order_body(currency="Eur")))
    assert order["currency"] == "eur"


@pytest.mark.parametrize("currency", ["zzz", "us", "dollar", "", "usd "])
async def test_unknown_currency_is_rejected(api: httpx.AsyncClient, currency: str) -> None:
    response = await post(api, order_body(currency=currency))
    await assert_invalid(api, response, "currency", "must be a valid ISO 4217 currency code")


async def test_currency_as_number_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(currency=840))
    await assert_invalid(api, response, "currency", "must be a string")


async def test_shipping_tax_and_discount_are_part_of_the_total(api: httpx.AsyncClient) -> None:
    body = order_body(shippingAmount=5, taxAmount=8.25, discountAmount=10, totalAmount=113.22)
    order = await assert_created(await post(api, body))
    assert order["totalAmount"] == 113.22
    assert order["shippingAmount"] == 5
    assert order["taxAmount"] == 8.25
    assert order["discountAmount"] == 10


async def test_total_ignoring_shipping_tax_and_discount_is_rejected(
    api: httpx.AsyncClient,
) -> None:
    body = order_body(shippingAmount=5, taxAmount=8.25, discountAmount=10, totalAmount=109.97)
    response = await post(api, body)
    await assert_invalid(
        api, response, "totalAmount", "109.97 does not match computed total 113.22"
    )


async def test_discount_is_subtracted_not_added(api: httpx.AsyncClient) -> None:
    body = order_body(discountAmount=9.97, totalAmount=119.94)
    response = await post(api, body)
    await assert_invalid(
        api, response, "totalAmount", "119.94 does not match computed total 100.00"
    )


@pytest.mark.parametrize("field", ["shippingAmount", "taxAmount", "discountAmount"])
async def test_negative_extra_amounts_are_rejected(api: httpx.AsyncClient, field: str) -> None:
    await assert_field_invalid(api, field, -1, "must be greater than or equal to 0")


@pytest.mark.parametrize("field", ["shippingAmount", "taxAmount", "discountAmount"])
async def test_extra_amounts_as_strings_are_rejected(api: httpx.AsyncClient, field: str) -> None:
    await assert_field_invalid(api, field, "1.00", "must be a number")


async def test_total_below_the_minimum_charge_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, single_item_order(0.49, 0.49))
    await assert_invalid(api, response, "totalAmount", "must be at least 0.50 usd")


async def test_total_at_the_minimum_charge_is_accepted(api: httpx.AsyncClient) -> None:
    order = await assert_created(await post(api, single_item_order(0.5, 0.5)))
    assert order["totalAmount"] == 0.5


async def test_gbp_minimum_charge(api: httpx.AsyncClient) -> None:
    response = await post(api, single_item_order(0.29, 0.29, "gbp"))
    await assert_invalid(api, response, "totalAmount", "must be at least 0.30 gbp")


async def test_jpy_minimum_charge(api: httpx.AsyncClient) -> None:
    response = await post(api, single_item_order(49, 49, "jpy"))
    await assert_invalid(api, response, "totalAmount", "must be at least 50 jpy")


async def test_zero_total_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, single_item_order(0, 0))
    await assert_invalid(api, response, "totalAmount", "must be at least 0.50 usd")


async def test_total_above_the_maximum_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, single_item_order(1_000_000, 1_000_000))
    error = assert_error(
        response, 400, "Validation error: totalAmount must be at most 999999.99 usd"
    )
    # the price alone is over the maximum too, and is named as well
    assert error["details"] == [
        {"field": "totalAmount", "message": "must be at most 999999.99 usd"},
        {"field": "items[0].price", "message": "must be at most 999999.99 usd"},
    ]
    await assert_nothing_stored(api)


async def test_total_at_the_maximum_is_accepted(api: httpx.AsyncClient) -> None:
    order = await assert_created(await post(api, single_item_order(999_999.99, 999_999.99)))
    assert order["totalAmount"] == 999_999.99


async def test_maximum_counts_the_computed_sum_of_items(api: httpx.AsyncClient) -> None:
    body = order_body(items=[item(500_000, 2)], totalAmount=1_000_000)
    response = await post(api, body)
    await assert_invalid(api, response, "totalAmount", "must be at most 999999.99 usd")


async def test_huge_total_is_a_400_not_a_server_error(api: httpx.AsyncClient) -> None:
    # SPEC §6: at most 99,999,999 minor units, otherwise 400.
    response = await post_raw(api, raw_body(order_body(), totalAmount="1e30"))
    await assert_invalid(api, response, "totalAmount", "is too large")


@pytest.mark.parametrize("literal", ["1e999999999", "99999999999999999999999999999999999999.99"])
async def test_enormous_total_is_a_400_not_a_server_error(
    api: httpx.AsyncClient, literal: str
) -> None:
    response = await post_raw(api, raw_body(order_body(), totalAmount=literal))
    await assert_invalid(api, response, "totalAmount", "is too large")


async def test_price_with_an_enormous_exponent_is_a_400_not_a_server_error(
    api: httpx.AsyncClient,
) -> None:
    body = order_body(items=[item("@@price@@")], totalAmount=109.97)
    content = json.dumps(body).replace('"@@price@@"', "1e999999999").encode()
    response = await post_raw(api, content)
    await assert_invalid(api, response, "items[0].price", "is too large")


async def test_price_with_a_tiny_fraction_is_not_rounded_to_zero(api: httpx.AsyncClient) -> None:
    # 1e-999999999 has far more decimals than usd allows: a 400, never a price of 0.00.
    body = order_body()
    body["items"].append(item("@@price@@", item_id="sku_tiny"))
    content = json.dumps(body).replace('"@@price@@"', "1e-999999999").encode()
    response = await post_raw(api, content)
    await assert_invalid(
        api, response, "items[2].price", "must have at most 2 decimal places for usd"
    )


# -- items --------------------------------------------------------------------------------


async def test_empty_items_are_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(items=[], totalAmount=0))
    await assert_invalid(api, response, "items", "must contain at least 1 item")


async def test_101_items_are_rejected(api: httpx.AsyncClient) -> None:
    items = [item(1, item_id=f"sku_{n}") for n in range(101)]
    response = await post(api, order_body(items=items, totalAmount=101))
    await assert_invalid(api, response, "items", "must contain at most 100 items")


async def test_100_items_are_accepted(api: httpx.AsyncClient) -> None:
    items = [item(1, item_id=f"sku_{n}") for n in range(100)]
    order = await assert_created(await post(api, order_body(items=items, totalAmount=100)))
    assert len(order["items"]) == 100
    assert order["totalAmount"] == 100


@pytest.mark.parametrize(
    ("quantity", "problem"),
    [
        (0, "must be at least 1"),
        (-1, "must be at least 1"),
        (1.5, "must be an integer"),
        ("2", "must be an integer"),
        (True, "must be an integer"),
        (None, "must be an integer"),
    ],
)
async def test_bad_quantity_is_rejected(
    api: httpx.AsyncClient, quantity: Any, problem: str
) -> None:
    response = await post(api, order_body(items=[item(29.99, quantity)], totalAmount=29.99))
    await assert_invalid(api, response, "items[0].quantity", problem)


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        (-0.01, "must be greater than or equal to 0"),
        (-29.99, "must be greater than or equal to 0"),
        ("29.99", "must be a number"),
        (True, "must be a number"),
        (None, "must be a number"),
        ([29.99], "must be a number"),
    ],
)
async def test_bad_price_is_rejected(api: httpx.AsyncClient, price: Any, problem: str) -> None:
    response = await post(api, order_body(items=[item(price)], totalAmount=29.99))
    await assert_invalid(api, response, "items[0].price", problem)


async def test_total_as_string_is_never_coerced(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(totalAmount="109.97"))
    await assert_invalid(api, response, "totalAmount", "must be a number")


async def test_nested_fields_are_named_with_their_index(api: httpx.AsyncClient) -> None:
    body = order_body()
    body["items"][1]["price"] = -49.99
    response = await post(api, body)
    await assert_invalid(api, response, "items[1].price", "must be greater than or equal to 0")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("id", "", "must not be empty"),
        ("id", "i" * 101, "must be at most 100 characters long"),
        ("name", "", "must not be empty"),
        ("name", "n" * 201, "must be at most 200 characters long"),
        ("id", 1, "must be a string"),
    ],
)
async def test_item_text_rules(
    api: httpx.AsyncClient, field: str, value: Any, problem: str
) -> None:
    body = order_body()
    body["items"][0][field] = value
    response = await post(api, body)
    await assert_invalid(api, response, f"items[0].{field}", problem)


# -- required fields, types, unknown fields -----------------------------------------------


@pytest.mark.parametrize("field", REQUIRED_ORDER_FIELDS)
async def test_missing_required_field(api: httpx.AsyncClient, field: str) -> None:
    body = order_body()
    del body[field]
    response = await post(api, body)
    await assert_invalid(api, response, field, "is required")


@pytest.mark.parametrize("field", ["id", "name", "quantity", "price"])
async def test_missing_required_item_field(api: httpx.AsyncClient, field: str) -> None:
    body = order_body()
    del body["items"][0][field]
    response = await post(api, body)
    await assert_invalid(api, response, f"items[0].{field}", "is required")


@pytest.mark.parametrize("field", list(ADDRESS))
async def test_missing_required_address_field(api: httpx.AsyncClient, field: str) -> None:
    body = order_body()
    del body["shippingAddress"][field]
    del body["billingAddress"]
    response = await post(api, body)
    await assert_invalid(api, response, f"shippingAddress.{field}", "is required")


async def test_missing_billing_address_field_is_named(api: httpx.AsyncClient) -> None:
    body = order_body(billingAddress=dict(ADDRESS))
    del body["billingAddress"]["city"]
    response = await post(api, body)
    await assert_invalid(api, response, "billingAddress.city", "is required")


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ("customerId", "must be a string"),
        ("customerEmail", "must be a string"),
        ("customerName", "must be a string"),
        ("items", "must be an array"),
        ("totalAmount", "must be a number"),
        ("currency", "must be a string"),
        ("shippingAddress", "must be an object"),
    ],
)
async def test_null_for_a_required_field_is_rejected(
    api: httpx.AsyncClient, field: str, problem: str
) -> None:
    await assert_field_invalid(api, field, None, problem)


async def test_every_required_field_missing_is_listed(api: httpx.AsyncClient) -> None:
    response = await post(api, {})
    await assert_invalid_all(api, response, [(f, "is required") for f in REQUIRED_ORDER_FIELDS])


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("customerId", 12345, "must be a string"),
        ("customerName", ["John"], "must be a string"),
        ("items", {"id": "item_1"}, "must be an array"),
        ("items", "item_1", "must be an array"),
        ("shippingAddress", "123 Main St, New York", "must be an object"),
        ("billingAddress", "123 Main St, New York", "must be an object"),
        ("metadata", ["a", "b"], "must be an object"),
    ],
)
async def test_wrong_types_are_rejected(
    api: httpx.AsyncClient, field: str, value: Any, problem: str
) -> None:
    await assert_field_invalid(api, field, value, problem)


async def test_item_that_is_not_an_object_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(items=["item_1"], totalAmount=29.99))
    await assert_invalid(api, response, "items[0]", "must be an object")


async def test_unknown_top_level_field_is_rejected(api: httpx.AsyncClient) -> None:
    response = await post(api, order_body(foo="bar"))
    error = assert_error(response, 400, "Validation error: foo is not a known field")
    assert error["details"] == [{"field": "foo", "message": "is not a known field"}]
    await assert_nothing_stored(api)


async def test_unknown_field_in_an_item_is_rejected(api: httpx.AsyncClient) -> None:
    body = order_body()
    body["items"][0]["color"] = "red"
    response = await post(api, body)
    await assert_invalid(api, response, "items[0].color", "is not a known field")


async def test_unknown_field_in_the_address_is_rejected(api: httpx.AsyncClient) -> None:
    body = order_body(shippingAddress={**ADDRESS, "apartment": "4B"})
    del body["billingAddress"]
    response = await post(api, body)
    await assert_invalid(api, response, "shippingAddress.apartment", "is not a known field")


async def test_billing_address_is_optional_and_null_when_unset(api: httpx.AsyncClient) -> None:
    body = order_body()
    del body["billingAddress"]
    order = await assert_created(await post(api, body))
    assert order["billingAddress"] is None


async def test_billing_address_may_be_null(api: httpx.AsyncClient) -> None:
    order = await assert_created(await post(api, order_body(billingAddress=None)))
    assert order["billingAddress"] is None


# -- metadata -----------------------------------------------------------------------------


async def test_metadata_with_more_than_50_keys_is_rejected(api: httpx.AsyncClient) -> None:
    metadata = {f"key{n}": "value" for n in range(51)}
    response = await post(api, order_body(metadata=metadata))
    await assert_invalid(api, response, "metadata", "must contain at most 50 items")


async def test_metadata_with_50_keys_is_accepted(api: httpx.AsyncClient) -> None:
    metadata = {f"key{n}": f"value{n}" for n in range(50)}
    order = await assert_created(await post(api, order_body(metadata=metadata)))
    assert order["metadata"] == metadata


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": "b"}])
async def test_metadata_value_must_be_a_string(api: httpx.AsyncClient, value: Any) -> None:
    response = await post(api, order_body(metadata={"source": value}))
    await assert_invalid(api, response, "metadata.source", "must be a string")


# -- the body itself ----------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_literals_are_rejected(api: httpx.AsyncClient, literal: str) -> None:
    response = await post_raw(api, raw_body(order_body(), totalAmount=literal))
    error = assert_error(response, 400, "Malformed JSON in request body")
    assert error["code"] == "malformed_json"
    await assert_nothing_stored(api)


async def test_nan_price_is_rejected(api: httpx.AsyncClient) -> None:
    body = order_body(items=[item("@@price@@")], totalAmount=29.99)
    content = json.dumps(body).replace('"@@price@@"', "NaN").encode()
    response = await post_raw(api, content)
    assert_error(response, 400, "Malformed JSON in request body")
    await assert_nothing_stored(api)


@pytest.mark.parametrize(
    "content",
    [
        b'{"customerId": "cust_abc123",',
        b"{'customerId': 'cust_abc123'}",
        b'{"customerId": "cust_abc123",}',
        b"customerId=cust_abc123",
        b'{"a": 1}{"b": 2}',
        b"\xff\xfe{}",
        b"[" * 100_000,
    ],
    ids=["truncated", "single-quotes", "trailing-comma", "form", "two-values", "bad-utf8", "deep"],
)
async def test_malformed_json_is_rejected(api: httpx.AsyncClient, content: bytes) -> None:
    response = await post_raw(api, content)
    error = assert_error(response, 400, "Malformed JSON in request body")
    assert error["code"] == "malformed_json"
    await assert_nothing_stored(api)


@pytest.mark.parametrize("content", [b"[]", json.dumps([order_body()]).encode(), b"null", b'"x"'])
async def test_body_that_is_not_an_object_is_rejected(
    api: httpx.AsyncClient, content: bytes
) -> None:
    response = await post_raw(api, content)
    await assert_invalid(api, response, "body", "must be a JSON object")


@pytest.mark.parametrize("content", [b"", b"   \n"])
async def test_empty_body_is_rejected(api: httpx.AsyncClient, content: bytes) -> None:
    response = await post_raw(api, content)
    await assert_invalid(api, response, "body", "is required")


async def test_body_over_one_mebibyte_is_413(api: httpx.AsyncClient) -> None:
    text = json.dumps(order_body())
    content = (text + " " * (MAX_BODY_BYTES + 1 - len(text))).encode()
    assert len(content) == MAX_BODY_BYTES + 1
    response = await post_raw(api, content)
    error = assert_error(response, 413, f"Request body exceeds the limit of {MAX_BODY_BYTES} bytes")
    assert error["code"] == "payload_too_large"
    await assert_nothing_stored(api)


async def test_streamed_body_over_one_mebibyte_is_413(api: httpx.AsyncClient) -> None:
    """Without Content-Length (chunked), the limit is counted on what arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(order_body()).encode()
        for _ in range(5):
            yield b" " * (256 * 1024)

    response = await api.post(ORDERS, content=chunks(), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, f"Request body exceeds the limit of {MAX_BODY_BYTES} bytes")
    await assert_nothing_stored(api)


async def test_body_of_exactly_one_mebibyte_is_accepted(api: httpx.AsyncClient) -> None:
    text = json.dumps(order_body())
    content = (text + " " * (MAX_BODY_BYTES - len(text))).encode()
    assert len(content) == MAX_BODY_BYTES
    response = await post_raw(api, content)
    order = await assert_created(response)
    assert order["totalAmount"] == 109.97


# -- several problems at once -------------------------------------------------------------


async def test_details_list_every_problem(api: httpx.AsyncClient) -> None:
    body = order_body(customerEmail="nope", foo=1, shippingAddress=dict(ADDRESS))
    body["items"][0]["quantity"] = 0
    body["items"][1]["price"] = "49.99"
    body["items"][1]["bar"] = True
    del body["shippingAddress"]["city"]
    response = await post(api, body)
    await assert_invalid_all(
        api,
        response,
        [
            ("customerEmail", "must be a valid email"),
            ("items[0].quantity", "must be at least 1"),
            ("items[1].price", "must be a number"),
            ("items[1].bar", "is not a known field"),
            ("shippingAddress.city", "is required"),
            ("foo", "is not a known field"),
        ],
    )
    assert response.json()["error"]["message"] == (
        "Validation error: customerEmail must be a valid email"
    )


async def test_amount_problems_are_all_listed(api: httpx.AsyncClient) -> None:
    body = order_body(shippingAmount=0.001, taxAmount=0.0001, totalAmount=109.971)
    response = await post(api, body)
    await assert_invalid_all(
        api,
        response,
        [
            ("shippingAmount", "must have at most 2 decimal places for usd"),
            ("taxAmount", "must have at most 2 decimal places for usd"),
            ("totalAmount", "must have at most 2 decimal places for usd"),
        ],
    )


async def test_a_rejected_request_leaves_earlier_orders_alone(api: httpx.AsyncClient) -> None:
    created = await assert_created(await post(api, order_body()))
    rejected = await post(api, order_body(totalAmount=1))
    assert rejected.status_code == 400
    listed = (await api.get(ORDERS, headers=AUTH)).json()["data"]
    assert [o["id"] for o in listed] == [created["id"]]
