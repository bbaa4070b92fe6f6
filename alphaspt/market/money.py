"""Exact money for limit comparisons: floats as the decimals they print as, and paise.

A float such as ``-999.9999999999999`` (the sum of float P&L that should be -1000.00) is
rounded to the paisa (half-even) before it is compared, so a limit that trips "at -1000"
trips. Rupee amounts are compared as integer paise; prices against ticks as ``Decimal``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from alphaspt.core.accounting import to_decimal

_PAISA: Final = Decimal("0.01")


decimal_of = to_decimal
"""``value`` as the decimal it prints as (``2500.05`` → ``Decimal('2500.05')``); raises
``ValueError`` for NaN or an infinity. The accounting core's conversion: one rule for both."""


def to_paise(rupees: float | int | Decimal) -> int:
    """Rupees → integer paise, rounded half-even at the paisa (``-999.9999999999999`` →
    ``-100000``)."""
    return int(decimal_of(rupees).quantize(_PAISA, rounding=ROUND_HALF_EVEN) * 100)


def rupees(paise: int) -> str:
    """Integer paise as a rupee string with two decimals, for messages."""
    sign = "-" if paise < 0 else ""
    whole, frac = divmod(abs(paise), 100)
    return f"{sign}{whole}.{frac:02d}"
