"""Pure accounting: fills and prices in, positions, P&L and charges out. No I/O."""

from alphaspt.portfolio.charges import (
    ZERODHA_MIS_NSE,
    ChargeCalculator,
    ChargeRates,
    turnover_of,
)
from alphaspt.portfolio.ledger import (
    Ledger,
    LedgerEvent,
    Portfolio,
    PortfolioSnapshot,
    PositionSnapshot,
    TotalsSnapshot,
)

__all__ = [
    "ZERODHA_MIS_NSE",
    "ChargeCalculator",
    "ChargeRates",
    "Ledger",
    "LedgerEvent",
    "Portfolio",
    "PortfolioSnapshot",
    "PositionSnapshot",
    "TotalsSnapshot",
    "turnover_of",
]
