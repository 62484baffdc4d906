"""The one table from order amounts (ISO 4217 minor units) to the provider's integers."""

from __future__ import annotations

import pytest

from orderhub.payments.units import (
    THREE_DECIMAL,
    ZERO_DECIMAL,
    UnitsError,
    from_provider,
    to_provider,
)

# currency -> (order minor units of some amount, the provider's integer for it)
TABLE: dict[str, tuple[int, int]] = {
    # Stripe's zero-decimal list: whole units (ISO agrees, except mga)
    "bif": (500, 500),
    "clp": (500, 500),
    "djf": (500, 500),
    "gnf": (500, 500),
    "jpy": (500, 500),
    "kmf": (500, 500),
    "krw": (500, 500),
    "mga": (50_000, 500),  # ISO: 500.00 MGA; Stripe: 500
    "pyg": (500, 500),
    "rwf": (500, 500),
    "ugx": (500, 500),
    "vnd": (500, 500),
    "vuv": (500, 500),
    "xaf": (500, 500),
    "xof": (500, 500),
    "xpf": (500, 500),
    # special cases
    "isk": (500, 50_000),  # ISO: 500 ISK; Stripe: hundredths
    "huf": (17_550, 17_550),  # hundredths in charges
    "twd": (1_234, 1_234),
    # three-decimal: thousandths ending in 0
    "bhd": (5_120, 5_120),
    "jod": (5_120, 5_120),
    "kwd": (5_120, 5_120),
    "omr": (5_120, 5_120),
    "tnd": (5_120, 5_120),
    # ordinary two-decimal
    "usd": (10_997, 10_997),
    "eur": (50, 50),
}


def test_the_table_covers_every_listed_currency() -> None:
    assert ZERO_DECIMAL | THREE_DECIMAL | {"isk", "huf", "twd"} <= set(TABLE)


@pytest.mark.parametrize(("currency", "pair"), sorted(TABLE.items()))
def test_table(currency: str, pair: tuple[int, int]) -> None:
    order_minor, provider = pair
    assert to_provider(order_minor, currency) == provider
    assert from_provider(provider, currency) == order_minor


@pytest.mark.parametrize(
    ("currency", "order_minor", "provider"),
    [
        ("isk", 1, 100),
        ("isk", 99_999, 9_999_900),
        ("huf", 1, 1),
        ("mga", 100, 1),
        ("mga", 12_300, 123),
        ("jpy", 1, 1),
        ("jpy", 99_999_999, 99_999_999),
        ("kwd", 10, 10),
        ("kwd", 1_234_560, 1_234_560),
    ],
)
def test_round_trips(currency: str, order_minor: int, provider: int) -> None:
    assert to_provider(order_minor, currency) == provider
    assert from_provider(to_provider(order_minor, currency), currency) == order_minor


@pytest.mark.parametrize(
    ("currency", "order_minor"),
    [("mga", 50_050), ("mga", 1), ("kwd", 5_124), ("bhd", 1), ("omr", 9)],
)
def test_amounts_the_provider_cannot_charge(currency: str, order_minor: int) -> None:
    with pytest.raises(UnitsError):
        to_provider(order_minor, currency)


@pytest.mark.parametrize(("currency", "provider"), [("isk", 150), ("isk", 1)])
def test_provider_amounts_that_are_no_order_amount(currency: str, provider: int) -> None:
    with pytest.raises(UnitsError):
        from_provider(provider, currency)
