"""Exact money: amounts are integer minor units of a currency, never floats.

Parsing takes the `Decimal` that the strict JSON reader produced (or an `int`) and
refuses more decimals than the currency has; formatting gives back a `Decimal` with
exactly the currency's exponent, so parse -> format round-trips for every currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orderhub.kit.currencies import currency_exponent

# No amount orderhub accepts comes near 10**18 major units; refusing larger ones up front
# keeps a hostile `1e999999999` from becoming a gigantic integer.
MAX_MAGNITUDE = 18


class AmountError(ValueError):
    """An amount is not representable in its currency."""


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    @property
    def exponent(self) -> int:
        return currency_exponent(self.currency)

    def to_decimal(self) -> Decimal:
        return to_major(self.minor, self.currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.minor * quantity, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise AmountError(f"cannot combine {self.currency} with {other.currency}")


def to_minor(amount: Decimal | int, currency: str) -> int:
    """Major units -> integer minor units; raises AmountError on too many decimals."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise AmountError("must be a number")
    value = Decimal(amount)
    if not value.is_finite():
        raise AmountError("must be a finite number")
    if value.adjusted() > MAX_MAGNITUDE:
        raise AmountError("is too large")
    exponent = currency_exponent(currency)
    # Exact integer arithmetic on the decimal's own digits: no context precision or
    # exponent limit can round anything (1e-999999999 is not silently 0).
    sign, digit_tuple, value_exponent = value.as_tuple()
    assert isinstance(value_exponent, int)  # finite, checked above
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return 0
    significant = digits.rstrip("0")
    # the amount in minor units is int(significant) * 10**shift
    shift = value_exponent + (len(digits) - len(significant)) + exponent
    if shift < 0:
        if exponent == 0:
            raise AmountError(f"must be a whole number for {currency}")
        raise AmountError(f"must have at most {exponent} decimal places for {currency}")
    # adjusted() <= MAX_MAGNITUDE and shift >= 0 bound this to a few dozen digits
    minor: int = int(significant) * 10**shift
    return -minor if sign else minor


def to_major(minor: int, currency: str) -> Decimal:
    """Integer minor units -> Decimal with exactly the currency's number of decimals."""
    exponent = currency_exponent(currency)
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_major(minor: int, currency: str) -> str:
    """`10997, usd` -> `109.97`; `100, jpy` -> `100`."""
    return f"{to_major(minor, currency):f}"


def json_number(minor: int, currency: str) -> int | float:
    """The JSON number for an amount in major units (`109.97`; `100` for jpy).

    JSON has no decimal type and the standard encoder writes only int and float. A float
    prints the shortest text that reads back as the same double, so every decimal of at
    most 15 significant digits is written exactly; amounts here are capped at 99,999,999
    minor units (and sums of them stay far below 10**15), so the text is exact.
    """
    major = to_major(minor, currency)
    if currency_exponent(currency) == 0:
        return int(major)
    return float(major)
