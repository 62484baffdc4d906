"""Order amounts <-> the payment provider's integer amounts. Pure.

Orders hold exact amounts in ISO 4217 minor units (`kit/currencies.py`). Stripe's API
takes integers in *its* minor units, which differ from ISO 4217 for some currencies; the
sandbox speaks Stripe's units too, so this one table serves both providers.

Sources (Stripe's documentation, "Supported currencies", https://docs.stripe.com/currencies):

- "Zero-decimal currencies" (#zero-decimal): bif clp djf gnf jpy kmf krw mga pyg rwf ugx
  vnd vuv xaf xof xpf take the amount in whole units (`500` is ¥500). ISO 4217 agrees for
  all but `mga`, whose ISO exponent is 2: an order of 500.00 MGA (50000 ISO minor units)
  is Stripe's `500`, and an MGA amount with a fraction cannot be charged.
- "Three-decimal currencies" (#three-decimal): bhd jod kwd omr tnd take thousandths, and
  the last digit must be 0 (5.124 KWD cannot be charged; 5.120 is `5120`).
- "Special cases" (#special-cases):
  - `isk` became effectively zero-decimal, but Stripe keeps it two-decimal for backwards
    compatibility: amounts must be multiples of 100 (`500` is 5 ISK). ISO 4217 gives ISK
    no decimals, so an order's whole krónur are multiplied by 100. Also Stripe support's
    "Deprecation of fractional ISK charges and refunds" (refunds follow the same rule).
  - `huf` and `twd` are zero-decimal for *payouts* only; charges and refunds take
    hundredths (ISO 4217's exponent 2), so amounts pass unchanged.
  - `ugx` is on the zero-decimal list for charges (whole shillings, as in ISO 4217); its
    special rule (multiples of 100) is for payouts, which orderhub does not make.

Every other currency uses its ISO 4217 exponent unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from orderhub.kit.currencies import currency_exponent

ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
# Two-decimal in Stripe's API, but only whole units may be charged.
WHOLE_UNITS_IN_HUNDREDTHS = frozenset({"isk"})


class UnitsError(ValueError):
    """The amount cannot be expressed exactly in the provider's units."""


@dataclass(frozen=True, slots=True)
class ProviderUnits:
    """How a currency's amounts are written for the provider: `exponent` decimals, and
    only multiples of `step` (in those units) may be charged."""

    exponent: int
    step: int = 1


def provider_units(currency: str) -> ProviderUnits:
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return ProviderUnits(0)
    if code in THREE_DECIMAL:
        return ProviderUnits(3, step=10)
    if code in WHOLE_UNITS_IN_HUNDREDTHS:
        return ProviderUnits(2, step=100)
    return ProviderUnits(currency_exponent(code))


def to_provider(order_minor: int, currency: str) -> int:
    """ISO 4217 minor units -> the provider's integer amount; UnitsError if not exact."""
    units = provider_units(currency)
    shift = units.exponent - currency_exponent(currency)
    factor: int = 10 ** abs(shift)
    if shift >= 0:
        amount = order_minor * factor
    else:
        amount, rest = divmod(order_minor, factor)
        if rest:
            raise UnitsError(f"{currency} can only be charged in whole units")
    if amount % units.step:
        raise UnitsError(_step_problem(currency, units))
    return amount


def from_provider(amount: int, currency: str) -> int:
    """The provider's integer amount -> ISO 4217 minor units; UnitsError if not exact."""
    units = provider_units(currency)
    shift = units.exponent - currency_exponent(currency)
    factor: int = 10 ** abs(shift)
    if shift <= 0:
        return amount * factor
    minor, rest = divmod(amount, factor)
    if rest:
        raise UnitsError(f"{amount} is not a whole number of {currency} minor units")
    return minor


def _step_problem(currency: str, units: ProviderUnits) -> str:
    if units.exponent == 3:
        return f"{currency} amounts must end in 0 (the payment provider takes no 0.001 steps)"
    return f"{currency} can only be charged in whole units"
