"""Exact money (SPEC §6): minor units, the currency's exponent, exact JSON numbers."""

from __future__ import annotations

import json
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhub.kit.currencies import (
    MAXIMUM_CHARGE_MINOR,
    UnknownCurrency,
    _exponents,
    currency_exponent,
)
from orderhub.kit.jsonbody import parse_json
from orderhub.kit.money import AmountError, Money, format_major, json_number, to_major, to_minor

# One real currency per exponent; the test below checks these are all the exponents there are.
CURRENCY_BY_EXPONENT = {0: "jpy", 2: "usd", 3: "kwd", 4: "clf"}
CURRENCIES = list(CURRENCY_BY_EXPONENT.values())

MAX_MAJOR = Decimal(10) ** 9


def test_every_exponent_of_the_currency_table_is_covered() -> None:
    assert set(_exponents().values()) == set(CURRENCY_BY_EXPONENT)
    for exponent, code in CURRENCY_BY_EXPONENT.items():
        assert currency_exponent(code) == exponent


def test_exponents_of_well_known_currencies() -> None:
    assert currency_exponent("usd") == 2
    assert currency_exponent("USD") == 2
    assert currency_exponent("eur") == 2
    assert currency_exponent("gbp") == 2
    assert currency_exponent("jpy") == 0
    assert currency_exponent("krw") == 0
    assert currency_exponent("bhd") == 3
    assert currency_exponent("uyw") == 4


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        to_minor(Decimal("1.00"), "xyz")
    with pytest.raises(UnknownCurrency):
        to_major(100, "xyz")


@st.composite
def currency_and_amount(draw: st.DrawFn) -> tuple[str, Decimal]:
    """A currency of any exponent and an amount with at most that many decimals."""
    exponent = draw(st.sampled_from(sorted(CURRENCY_BY_EXPONENT)))
    amount = draw(
        st.decimals(
            min_value=-MAX_MAJOR,
            max_value=MAX_MAJOR,
            places=exponent,
            allow_nan=False,
            allow_infinity=False,
        )
    )
    return CURRENCY_BY_EXPONENT[exponent], amount


@given(currency_and_amount())
def test_major_to_minor_to_major_round_trips_exactly(case: tuple[str, Decimal]) -> None:
    currency, amount = case
    exponent = currency_exponent(currency)
    minor = to_minor(amount, currency)
    assert type(minor) is int
    assert minor == int(amount * 10**exponent)
    back = to_major(minor, currency)
    assert back == amount
    # exactly the currency's number of decimals, never more, never fewer
    assert back.as_tuple().exponent == -exponent
    text = format_major(minor, currency)
    assert Decimal(text) == amount
    if exponent == 0:
        assert "." not in text
    else:
        assert len(text.split(".")[1]) == exponent


@given(st.sampled_from(CURRENCIES), st.integers(min_value=-(10**15), max_value=10**15))
def test_minor_to_major_to_minor_round_trips_exactly(currency: str, minor: int) -> None:
    assert to_minor(to_major(minor, currency), currency) == minor
    assert to_minor(Decimal(format_major(minor, currency)), currency) == minor


@given(st.sampled_from(CURRENCIES), st.integers(min_value=0, max_value=10**9))
def test_integers_are_whole_major_units(currency: str, whole: int) -> None:
    assert to_minor(whole, currency) == whole * 10 ** currency_exponent(currency)


@given(
    st.sampled_from(sorted(CURRENCY_BY_EXPONENT)).flatmap(
        lambda exponent: st.tuples(
            st.just(CURRENCY_BY_EXPONENT[exponent]),
            st.lists(
                st.decimals(
                    min_value=0,
                    max_value=MAX_MAJOR,
                    places=exponent,
                    allow_nan=False,
                    allow_infinity=False,
                ),
                max_size=30,
            ),
        )
    )
)
def test_sum_in_minor_units_equals_exact_decimal_sum(case: tuple[str, list[Decimal]]) -> None:
    currency, amounts = case
    total_minor = sum(to_minor(amount, currency) for amount in amounts)
    exact = sum(amounts, Decimal(0))
    assert to_major(total_minor, currency) == exact
    assert total_minor == to_minor(exact, currency)


@given(currency_and_amount(), st.integers(min_value=1, max_value=9))
def test_one_decimal_too_many_is_refused(case: tuple[str, Decimal], digit: int) -> None:
    currency, amount = case
    exponent = currency_exponent(currency)
    too_precise = amount + Decimal(digit).scaleb(-(exponent + 1))
    with pytest.raises(AmountError):
        to_minor(too_precise, currency)


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("1.005", "usd", "must have at most 2 decimal places for usd"),
        ("0.001", "usd", "must have at most 2 decimal places for usd"),
        ("109.971", "eur", "must have at most 2 decimal places for eur"),
        ("100.5", "jpy", "must be a whole number for jpy"),
        ("0.1", "jpy", "must be a whole number for jpy"),
        ("1.0001", "kwd", "must have at most 3 decimal places for kwd"),
        ("1.00001", "clf", "must have at most 4 decimal places for clf"),
    ],
)
def test_too_many_decimals_raise_amount_error(amount: str, currency: str, message: str) -> None:
    with pytest.raises(AmountError) as caught:
        to_minor(Decimal(amount), currency)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("109.97", "usd", 10997),
        ("29.99", "usd", 2999),
        ("0.5", "usd", 50),
        ("0.01", "usd", 1),
        ("100", "jpy", 100),
        ("1E+2", "jpy", 100),
        ("1.234", "kwd", 1234),
        ("1.2345", "clf", 12345),
        ("999999.99", "usd", MAXIMUM_CHARGE_MINOR),
    ],
)
def test_known_amounts(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (10997, "usd", "109.97"),
        (10000, "usd", "100.00"),
        (5, "usd", "0.05"),
        (0, "usd", "0.00"),
        (-150, "usd", "-1.50"),
        (100, "jpy", "100"),
        (0, "jpy", "0"),
        (1, "kwd", "0.001"),
        (12345, "clf", "1.2345"),
        (MAXIMUM_CHARGE_MINOR, "usd", "999999.99"),
    ],
)
def test_format_major(minor: int, currency: str, text: str) -> None:
    assert format_major(minor, currency) == text
    assert str(to_major(minor, currency)) == text


def test_decimal_sums_stay_exact_where_floats_do_not() -> None:
    assert 0.1 + 0.2 != 0.3  # the float problem this module exists to avoid
    total = to_minor(Decimal("0.1"), "usd") + to_minor(Decimal("0.2"), "usd")
    assert total == 30
    assert json_number(total, "usd") == 0.3
    assert repr(json_number(total, "usd")) == "0.3"
    assert json.dumps(json_number(total, "usd")) == "0.3"


def test_seed_total_is_exact() -> None:
    total = 2 * to_minor(Decimal("29.99"), "usd") + to_minor(Decimal("49.99"), "usd")
    assert total == 10997
    assert repr(json_number(total, "usd")) == "109.97"
    assert json.dumps({"totalAmount": json_number(total, "usd")}) == '{"totalAmount": 109.97}'


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (10997, "usd", "109.97"),
        (30, "usd", "0.3"),
        (10000, "usd", "100.0"),
        (MAXIMUM_CHARGE_MINOR, "usd", "999999.99"),
        (100, "jpy", "100"),
        (MAXIMUM_CHARGE_MINOR, "jpy", "99999999"),
        (1, "kwd", "0.001"),
        (MAXIMUM_CHARGE_MINOR, "kwd", "99999.999"),
        (1, "clf", "0.0001"),
        (MAXIMUM_CHARGE_MINOR, "clf", "9999.9999"),
    ],
)
def test_json_number_text(minor: int, currency: str, text: str) -> None:
    assert json.dumps(json_number(minor, currency)) == text


def test_json_number_types() -> None:
    assert type(json_number(100, "jpy")) is int
    assert type(json_number(10997, "usd")) is float


@given(st.sampled_from(CURRENCIES), st.integers(min_value=0, max_value=10**15 - 1))
def test_json_number_reads_back_as_the_exact_decimal(currency: str, minor: int) -> None:
    value = json_number(minor, currency)
    exact = to_major(minor, currency)
    assert Decimal(repr(value)) == exact
    assert Decimal(str(value)) == exact
    # what a client reading our JSON exactly (as our own parser does) gets back
    assert parse_json(json.dumps(value).encode()) == exact


@pytest.mark.parametrize(
    "value",
    [True, False, "1.00", "100", 1.0, 0.1, 109.97, None, [1], {"a": 1}],
    ids=repr,
)
@pytest.mark.parametrize("currency", CURRENCIES)
def test_non_numbers_are_refused(value: object, currency: str) -> None:
    with pytest.raises(AmountError) as caught:
        to_minor(value, currency)  # type: ignore[arg-type]
    assert str(caught.value) == "must be a number"


@pytest.mark.parametrize("value", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("currency", CURRENCIES)
def test_nan_and_infinity_are_refused(value: str, currency: str) -> None:
    with pytest.raises(AmountError) as caught:
        to_minor(Decimal(value), currency)
    assert str(caught.value) == "must be a finite number"


@pytest.mark.parametrize(
    "amount",
    [
        # beyond the default decimal context's 28 digits: must be exact or refused, never
        # silently rounded
        Decimal("1234567890123456789012345678.901"),
        Decimal("1234567890123456789012345678901"),
        1234567890123456789012345678901,
    ],
    ids=["decimal-with-fraction", "decimal-integer", "int"],
)
def test_to_minor_never_rounds_long_amounts(amount: Decimal | int) -> None:
    with localcontext() as context:
        context.prec = 100
        exact = Decimal(amount) * 100  # the exact number of cents
    try:
        minor = to_minor(amount, "usd")
    except AmountError as refused:
        # refused, never rounded: for extra decimals, or as absurdly large (> 10**18)
        assert exact != exact.to_integral_value() or str(refused) == "is too large"
        return
    assert Decimal(minor) == exact


def test_to_minor_is_exact_for_long_amounts_below_the_magnitude_cap() -> None:
    amount = Decimal("123456789012345678.91")  # 20 significant digits
    assert to_minor(amount, "usd") == 12345678901234567891
    with pytest.raises(AmountError, match="at most 2 decimal places"):
        to_minor(Decimal("123456789012345678.911"), "usd")


def test_huge_exponents_are_refused_without_building_huge_integers() -> None:
    with pytest.raises(AmountError, match="is too large"):
        to_minor(Decimal("1e999999999"), "usd")


def test_money_arithmetic() -> None:
    price = Money(2999, "usd")
    assert price.times(2) + Money(4999, "usd") == Money(10997, "usd")
    assert Money(10997, "usd") - Money(997, "usd") == Money(10000, "usd")
    assert Money(10997, "usd").to_decimal() == Decimal("109.97")
    assert Money(100, "jpy").exponent == 0
    with pytest.raises(AmountError):
        _ = Money(1, "usd") + Money(1, "eur")
    with pytest.raises(AmountError):
        _ = Money(1, "usd") - Money(1, "jpy")


@pytest.mark.parametrize(
    ("amount", "minor"),
    [
        (Decimal("0E-999999999"), 0),
        (Decimal("1.10"), 110),
        (Decimal("1.100000"), 110),
        (Decimal("12E+3"), 1_200_000),
        (Decimal("-2.5"), -250),
    ],
)
def test_to_minor_exact_forms(amount: Decimal, minor: int) -> None:
    assert to_minor(amount, "usd") == minor


def test_tiny_fractions_are_refused_not_rounded_to_zero() -> None:
    with pytest.raises(AmountError, match="at most 2 decimal places"):
        to_minor(Decimal("1e-999999999"), "usd")
    with pytest.raises(AmountError, match="whole number"):
        to_minor(Decimal("1e-30"), "jpy")
