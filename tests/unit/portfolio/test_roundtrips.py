"""Round trips of read-model fill records: the accounting core's FIFO, per symbol."""

from __future__ import annotations

from alphaspt.portfolio.roundtrips import round_trips, trade_stats

S = 1_000_000_000


def fill(symbol: str, side: str, qty: int, price: float, t: int) -> dict[str, object]:
    return {"symbol": symbol, "side": side, "quantity": qty, "price": price, "ts": t * S}


def test_fifo_per_symbol_with_a_flip_and_the_win_rate() -> None:
    trips = round_trips([
        fill("SBIN", "BUY", 10, 800.0, 1), fill("TCS", "SELL", 2, 3800.0, 2),
        fill("SBIN", "BUY", 5, 810.0, 3),
        fill("SBIN", "SELL", 20, 805.0, 4),   # closes 10 @ 800 and 5 @ 810, opens short 5
        fill("TCS", "BUY", 2, 3790.0, 5), fill("SBIN", "BUY", 5, 806.0, 6),
    ])
    assert [(t.symbol, t.side, t.quantity, t.entry_price, t.exit_price, t.pnl)
            for t in trips] == [
        ("SBIN", "LONG", 10, 800.0, 805.0, 50.0),
        ("SBIN", "LONG", 5, 810.0, 805.0, -25.0),
        ("TCS", "SHORT", 2, 3800.0, 3790.0, 20.0),
        ("SBIN", "SHORT", 5, 805.0, 806.0, -5.0),
    ]
    assert (trips[0].entry_ts, trips[0].exit_ts) == (1.0, 4.0)
    stats = trade_stats(trips)
    assert (stats.round_trips, stats.wins, stats.win_rate, stats.gross_pnl) == (4, 2, 0.5, 40.0)


def test_no_closed_lot_yet() -> None:
    assert round_trips([fill("SBIN", "BUY", 1, 800.0, 1)]) == []
    assert trade_stats([]).win_rate is None
