"""Pure accounting: fills and prices in, positions, P&L and charges out. No I/O."""

from alphaspt.portfolio.charges import (
    ZERODHA_MIS_NSE,
    ZERODHA_NSE,
    ChargeCalculator,
    ChargeRates,
    ChargeSchedule,
    ContractNotes,
    Segment,
    segment_from_symbol,
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
    "ZERODHA_NSE",
    "ChargeCalculator",
    "ChargeRates",
    "ChargeSchedule",
    "ContractNotes",
    "Ledger",
    "LedgerEvent",
    "Portfolio",
    "PortfolioSnapshot",
    "PositionSnapshot",
    "Segment",
    "TotalsSnapshot",
    "segment_from_symbol",
    "turnover_of",
]
