"""The instruments file: Kite's dump columns, our optional band column, clear errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from alphaspt.exceptions import InvalidConfiguration
from alphaspt.market import load_instruments, to_paise
from alphaspt.market.instruments import KITE_COLUMNS

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "instruments.csv"
HEADER = ",".join(KITE_COLUMNS)


def test_shipped_file_covers_the_examples_and_the_rules() -> None:
    instruments = load_instruments(EXAMPLE)
    for symbol in ("RELIANCE", "TCS", "INFY", "HDFCBANK", "SBIN", "ICICIBANK", "ITC"):
        found = instruments.get(symbol)
        assert found is not None and found.tick_size == Decimal("0.05"), symbol
    steel = instruments.get("TATASTEEL")
    assert steel is not None and steel.last_price < 250 and steel.tick_size == Decimal("0.01")
    fut = instruments.get("NIFTY26JANFUT")
    assert fut is not None and fut.exchange == "NFO" and fut.segment == "NFO-FUT"
    assert fut.lot_size == 65 and fut.is_derivative and fut.band_percent is None
    assert instruments.get("RELIANCE", "NFO") is None
    reliance = instruments.get("RELIANCE")
    assert reliance is not None and reliance.band_percent == Decimal(20)


def test_kite_dump_without_our_column_loads(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text(HEADER + "\n408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE\n"
                    "12073986,47164,BANKNIFTY18JAN23500CE,,2528.4,2018-01-25,23500.0,0.05,40,"
                    "CE,NFO-OPT,NFO\n")
    instruments = load_instruments(path)
    assert len(instruments) == 2
    opt = instruments.get("BANKNIFTY18JAN23500CE")
    assert opt is not None and opt.lot_size == 40 and opt.instrument_token == 12073986
    assert opt.strike == Decimal("23500.0")


def test_explicit_band_column(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text(HEADER + ",circuit_percent\n0,0,PENNY,,9.5,,0,0.01,1,EQ,NSE,NSE,5\n"
                    "0,0,WIDE,,100,,0,0.01,1,EQ,NSE,NSE,\n")
    instruments = load_instruments(path)
    penny, wide = instruments.get("PENNY"), instruments.get("WIDE")
    assert penny is not None and penny.band_percent == Decimal(5)
    assert wide is not None and wide.band_percent == Decimal(20)


@pytest.mark.parametrize(("row", "message"), [
    ("0,0,X,,1,,0,abc,1,EQ,NSE,NSE", "line 2: tick_size 'abc' is not a number"),
    ("0,0,X,,1,,0,0,1,EQ,NSE,NSE", "line 2: tick_size must be positive"),
    ("0,0,X,,1,,0,0.05,0,EQ,NSE,NSE", "line 2: lot_size '0' must be >= 1"),
])
def test_bad_rows_name_file_line_and_column(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "i.csv"
    path.write_text(HEADER + "\n" + row + "\n")
    with pytest.raises(InvalidConfiguration, match=message):
        load_instruments(path)


def test_missing_columns_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text("tradingsymbol,exchange\nINFY,NSE\n")
    with pytest.raises(InvalidConfiguration, match="missing columns instrument_token"):
        load_instruments(path)
    with pytest.raises(InvalidConfiguration, match="No such file"):
        load_instruments(tmp_path / "none.csv")


def test_paise_round_half_even_at_the_paisa() -> None:
    assert to_paise(-999.9999999999999) == -100_000
    assert to_paise(0.1 + 0.2) == 30
    assert to_paise(1000) == 100_000
    assert to_paise(2500.03) == 250_003
