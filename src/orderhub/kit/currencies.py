"""ISO 4217 currencies: minor-unit exponents and Stripe's minimum charge amounts."""

from __future__ import annotations

from functools import cache

import iso4217


class UnknownCurrency(ValueError):
    """Not an ISO 4217 code with a minor-unit exponent (so it cannot be charged)."""


# Stripe's minimum charge per currency, in minor units (docs: "Minimum and maximum charge
# amounts"). Currencies Stripe does not list have a minimum of one minor unit.
STRIPE_MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}

MAXIMUM_CHARGE_MINOR = 99_999_999


@cache
def _exponents() -> dict[str, int]:
    return {c.code.lower(): c.exponent for c in iso4217.Currency if c.exponent is not None}


def currency_exponent(code: str) -> int:
    """Number of decimals of `code` (lower-case ISO 4217); raises UnknownCurrency."""
    try:
        return _exponents()[code.lower()]
    except KeyError:
        raise UnknownCurrency(code) from None


def currency_codes() -> list[str]:
    """Every code `is_currency` accepts, lower-case and sorted (for the API's schema)."""
    return sorted(_exponents())


def is_currency(code: str) -> bool:
    return code.lower() in _exponents()


def minimum_charge_minor(code: str) -> int:
    return STRIPE_MINIMUM_CHARGE.get(code.lower(), 1)
