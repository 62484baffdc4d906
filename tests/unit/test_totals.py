"""The stated total against the computed one, and the chargeable range (SPEC §6)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from orderhub.kit.errors import ValidationFailed
from orderhub.kit.jsonbody import parse_json
from orderhub.orders.domain import Address, Amounts, LineItem, check_total
from orderhub.orders.schemas import OrderCreateIn
from orderhub.orders.service import draft_from_request
from tests.fixtures.orders import order_body

SEED_ITEMS = (LineItem("item_1", "Product A", 2, 2999), LineItem("item_2", "Product B", 1, 4999))


def one_item(price_minor: int, currency: str = "usd", **extra: int) -> Amounts:
    return Amounts(currency=currency, items=(LineItem("i", "Item", 1, price_minor),), **extra)


def problem(caught: pytest.ExceptionInfo[ValidationFailed]) -> tuple[str, str]:
    [detail] = caught.value.details
    return detail.field, detail.message


# -- check_total ----------------------------------------------------------------------


def test_seed_total_matches() -> None:
    amounts = Amounts(currency="usd", items=SEED_ITEMS)
    assert amounts.computed_total_minor == 10997
    assert check_total(amounts, 10997) is None


def test_mismatch_message() -> None:
    amounts = Amounts(currency="usd", items=SEED_ITEMS)
    with pytest.raises(ValidationFailed) as caught:
        check_total(amounts, 10000)
    assert caught.value.status_code == 400
    assert caught.value.message == (
        "Validation error: totalAmount 100.00 does not match computed total 109.97"
    )
    assert problem(caught) == ("totalAmount", "100.00 does not match computed total 109.97")


@pytest.mark.parametrize(
    ("amounts", "stated", "message"),
    [
        (one_item(150, "jpy"), 100, "totalAmount 100 does not match computed total 150"),
        (one_item(1500, "kwd"), 1501, "totalAmount 1.501 does not match computed total 1.500"),
        (one_item(10997), 10998, "totalAmount 109.98 does not match computed total 109.97"),
        (one_item(10997), 1099700, "totalAmount 10997.00 does not match computed total 109.97"),
    ],
)
def test_mismatch_message_per_currency(amounts: Amounts, stated: int, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_total(amounts, stated)
    assert caught.value.message == f"Validation error: {message}"


def test_shipping_tax_and_discount_are_included() -> None:
    amounts = Amounts(
        currency="usd", items=SEED_ITEMS, shipping_minor=500, tax_minor=880, discount_minor=1000
    )
    assert amounts.computed_total_minor == 10997 + 500 + 880 - 1000
    check_total(amounts, 11377)
    with pytest.raises(ValidationFailed) as caught:
        check_total(amounts, 10997)
    assert problem(caught) == ("totalAmount", "109.97 does not match computed total 113.77")


@pytest.mark.parametrize(
    ("field", "value", "computed"),
    [("shipping_minor", 1, 10998), ("tax_minor", 3, 11000), ("discount_minor", 97, 10900)],
)
def test_each_extra_amount_counts(field: str, value: int, computed: int) -> None:
    amounts = Amounts(currency="usd", items=SEED_ITEMS, **{field: value})
    assert amounts.computed_total_minor == computed
    check_total(amounts, computed)
    with pytest.raises(ValidationFailed):
        check_total(amounts, 10997)


@pytest.mark.parametrize(
    ("currency", "minimum", "text"),
    [
        ("usd", 50, "0.50 usd"),
        ("eur", 50, "0.50 eur"),
        ("gbp", 30, "0.30 gbp"),
        ("jpy", 50, "50 jpy"),
        ("huf", 17500, "175.00 huf"),
        # currencies Stripe does not list: one minor unit
        ("krw", 1, "1 krw"),
        ("kwd", 1, "0.001 kwd"),
        ("isk", 1, "1 isk"),
        ("clf", 1, "0.0001 clf"),
    ],
)
def test_minimum_charge_per_currency(currency: str, minimum: int, text: str) -> None:
    check_total(one_item(minimum, currency), minimum)
    below = minimum - 1
    with pytest.raises(ValidationFailed) as caught:
        check_total(one_item(below, currency), below)
    assert problem(caught) == ("totalAmount", f"must be at least {text}")


def test_zero_total_is_below_every_minimum() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_total(one_item(0, "krw"), 0)
    assert problem(caught) == ("totalAmount", "must be at least 1 krw")


def test_discount_cannot_take_the_total_below_the_minimum() -> None:
    amounts = one_item(1000, discount_minor=990)
    with pytest.raises(ValidationFailed) as caught:
        check_total(amounts, 10)
    assert problem(caught) == ("totalAmount", "must be at least 0.50 usd")


@pytest.mark.parametrize(
    ("currency", "text"),
    [("usd", "999999.99 usd"), ("jpy", "99999999 jpy"), ("kwd", "99999.999 kwd")],
)
def test_maximum_charge(currency: str, text: str) -> None:
    check_total(one_item(99_999_999, currency), 99_999_999)
    two_halves = Amounts(currency, (LineItem("i", "Item", 2, 50_000_000),))
    with pytest.raises(ValidationFailed) as caught:
        check_total(two_halves, 100_000_000)
    assert problem(caught) == ("totalAmount", f"must be at most {text}")


def test_no_single_amount_may_exceed_the_maximum() -> None:
    """Amounts are written back as exact JSON numbers only within the maximum."""
    amounts = Amounts(
        "usd", (LineItem("i", "Item", 1, 100_000_000),), discount_minor=100_000_000 - 5000
    )
    with pytest.raises(ValidationFailed) as caught:
        check_total(amounts, 5000)
    assert [(d.field, d.message) for d in caught.value.details] == [
        ("items[0].price", "must be at most 999999.99 usd"),
    ]


def test_mismatch_is_reported_before_the_range() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_total(one_item(10), 20)
    assert problem(caught) == ("totalAmount", "0.20 does not match computed total 0.10")


# -- draft_from_request ---------------------------------------------------------------


def request(**changes: Any) -> OrderCreateIn:
    """A create request as the API reads it: JSON text parsed with exact decimals."""
    raw = json.dumps(order_body(**changes)).encode()
    return OrderCreateIn.model_validate(parse_json(raw))


def items(*prices: Any, quantity: int = 1) -> list[dict[str, Any]]:
    return [
        {"id": f"item_{n}", "name": f"Product {n}", "quantity": quantity, "price": price}
        for n, price in enumerate(prices)
    ]


def test_seed_request_becomes_a_draft_in_minor_units() -> None:
    draft = draft_from_request(request())
    assert draft.total_minor == 10997
    assert draft.amounts.currency == "usd"
    assert [(i.id, i.quantity, i.price_minor) for i in draft.amounts.items] == [
        ("item_1", 2, 2999),
        ("item_2", 1, 4999),
    ]
    assert (
        draft.amounts.shipping_minor,
        draft.amounts.tax_minor,
        draft.amounts.discount_minor,
    ) == (0, 0, 0)
    assert draft.customer_id == "cust_abc123"
    assert draft.customer_email == "john.doe@example.com"
    assert draft.shipping_address == Address("123 Main St", "New York", "NY", "10001", "USA")
    assert draft.billing_address == draft.shipping_address
    assert draft.metadata is None


def test_request_total_mismatch() -> None:
    with pytest.raises(ValidationFailed) as caught:
        draft_from_request(request(totalAmount=100))
    assert caught.value.message == (
        "Validation error: totalAmount 100.00 does not match computed total 109.97"
    )


def test_request_with_shipping_tax_and_discount() -> None:
    draft = draft_from_request(
        request(shippingAmount=5, taxAmount=8.8, discountAmount=10.5, totalAmount=113.27)
    )
    assert draft.amounts.shipping_minor == 500
    assert draft.amounts.tax_minor == 880
    assert draft.amounts.discount_minor == 1050
    assert draft.total_minor == 11327
    with pytest.raises(ValidationFailed) as caught:
        draft_from_request(request(shippingAmount=5, taxAmount=8.8, totalAmount=109.97))
    assert caught.value.message == (
        "Validation error: totalAmount 109.97 does not match computed total 123.77"
    )


def test_request_sums_exactly_where_floats_would_not() -> None:
    # as floats, 0.1 + 0.2 and 3 x 0.1 are both 0.30000000000000004
    assert 0.1 + 0.2 != 0.3
    assert 3 * 0.1 != 0.3
    draft = draft_from_request(request(items=items(0.1, 0.2), shippingAmount=0.2, totalAmount=0.5))
    assert draft.total_minor == 50
    draft = draft_from_request(
        request(items=items(0.1, quantity=3), totalAmount=0.5, taxAmount=0.2)
    )
    assert draft.total_minor == 50


def test_currency_is_lower_cased() -> None:
    draft = draft_from_request(request(currency="USD"))
    assert draft.amounts.currency == "usd"


def test_jpy_request() -> None:
    draft = draft_from_request(request(currency="jpy", items=items(100, 200), totalAmount=300))
    assert draft.total_minor == 300
    with pytest.raises(ValidationFailed) as caught:
        draft_from_request(request(currency="jpy", items=items(100.5), totalAmount=100.5))
    assert caught.value.message == "Validation error: items[0].price must be a whole number for jpy"
    assert [(p.field, p.message) for p in caught.value.details] == [
        ("items[0].price", "must be a whole number for jpy"),
        ("totalAmount", "must be a whole number for jpy"),
    ]


def test_too_many_decimals_names_every_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        draft_from_request(
            request(items=items(29.99, 1.005), shippingAmount=0.001, totalAmount=31.0)
        )
    assert caught.value.message == (
        "Validation error: items[1].price must have at most 2 decimal places for usd"
    )
    assert [p.field for p in caught.value.details] == ["items[1].price", "shippingAmount"]


def test_three_decimal_currency_request() -> None:
    draft = draft_from_request(request(currency="kwd", items=items(1.23), totalAmount=1.23))
    assert draft.total_minor == 1230


@pytest.mark.parametrize(
    ("currency", "total"), [("kwd", 1.234), ("bhd", 0.505), ("mga", 500.5), ("mga", 0.01)]
)
def test_total_the_provider_cannot_charge_exactly_is_400(currency: str, total: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        draft_from_request(request(currency=currency, items=items(total), totalAmount=total))
    assert caught.value.message.startswith("Validation error: totalAmount cannot be charged")


@pytest.mark.parametrize(
    ("currency", "total", "message"),
    [
        ("usd", 0.49, "totalAmount must be at least 0.50 usd"),
        ("gbp", 0.29, "totalAmount must be at least 0.30 gbp"),
        ("jpy", 49, "totalAmount must be at least 50 jpy"),
        ("usd", 1000000, "totalAmount must be at most 999999.99 usd"),
    ],
)
def test_request_outside_the_chargeable_range(currency: str, total: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        draft_from_request(request(currency=currency, items=items(total), totalAmount=total))
    assert caught.value.message == f"Validation error: {message}"


@pytest.mark.parametrize(
    ("currency", "total", "minor"),
    [("usd", 0.5, 50), ("gbp", 0.3, 30), ("jpy", 50, 50), ("usd", 999999.99, 99_999_999)],
)
def test_request_at_the_edges_of_the_range(currency: str, total: Any, minor: int) -> None:
    draft = draft_from_request(request(currency=currency, items=items(total), totalAmount=total))
    assert draft.total_minor == minor


def test_request_amounts_are_decimals_not_floats() -> None:
    parsed = request()
    assert parsed.totalAmount == Decimal("109.97")
    assert isinstance(parsed.items[0].price, Decimal)
