"""The market-feed worker with ``--feed kite``, in its own process (its own Twisted
reactor), against the simulator: Tick events on ``market.ticks`` on the real broker; a
symbol missing from the dump is reported, the rest stream; the access token appears in no
log line of the feed nor of the simulator."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alphaspt.core.config import Settings
from alphaspt.core.events import Codec, Tick, Topics, now_ns
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.kite_sim.instruments import nse_equities
from alphaspt.kite_sim.ticker import TickerConfig
from tests.support.kite_sim_server import SimServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
ACCESS_TOKEN = "acc-E2E-7c31f0"  # the simulator's token, asserted absent from logs


def test_kite_feed_process_puts_ticks_on_market_ticks(
        settings: Settings, configure: Callable[..., None], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    configure({"k": TradingStrategySpec(strategy="momentum",
                                        instruments=("WIPRO", "HCLTECH", "NOTLISTED"),
                                        risk_profile_ref="p")}, {"p": RiskProfileSpec()})
    token_file = tmp_path / "kite-token.json"  # as the daily login writes it
    token_file.write_text(json.dumps({"access_token": ACCESS_TOKEN}))
    token_file.chmod(0o600)
    with SimServer(nse_equities(["WIPRO", "HCLTECH", "ITC"]), TickerConfig(interval_s=0.2),
                   authorize=lambda k, t: (k, t) == ("kitekey", ACCESS_TOKEN)) as sim:
        assert settings.postgres.url is not None
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ALPHASPT_LOG_LEVEL": "DEBUG",
               "ALPHASPT_NAMESPACE": settings.namespace,
               "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
               "ALPHASPT_POSTGRES__URL": settings.postgres.url.get_secret_value(),
               "ALPHASPT_KITE__API_KEY": "kitekey",
               "ALPHASPT_KITE__API_ROOT": sim.api_root,
               "ALPHASPT_KITE__TICKER_ROOT": sim.ticker_root,
               "ALPHASPT_KITE__TOKEN_FILE": str(token_file),
               "ALPHASPT_KITE__INSTRUMENTS_DIR": str(tmp_path / "instruments")}
        started = now_ns()
        log_path = tmp_path / "feed.log"
        with log_path.open("w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from alphaspt.cli import main; raise SystemExit(main())",
                 "worker", "market-feed", "--feed", "kite", "--kite-mode", "full"],
                env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp_path)
            try:
                ticks = _wait_for_ticks(settings, started, proc, log_path)
            finally:
                proc.terminate()
                rc = proc.wait(30)
        log_text = log_path.read_text()
        assert rc == 0, log_text
        produced = {(sim.market.instruments[t].tradingsymbol, q.last_price, q.volume,
                     q.exchange_timestamp * 10**9, q.bids[0].price, q.asks[0].price)
                    for t, quotes in sim.market.produced.items() for q in quotes}
    assert {t.symbol for t in ticks} == {"WIPRO", "HCLTECH"}
    for tick in ticks:
        assert (tick.symbol, tick.price, tick.volume, tick.exchange_ts, tick.bid,
                tick.ask) in produced
        assert tick.exchange == "NSE" and tick.ingest_ts >= tick.exchange_ts - 2 * 10**9
    assert len({t.event_id for t in ticks}) == len(ticks)
    assert "NSE:NOTLISTED is not in Kite's instrument dump" in log_text
    assert "kite ticker connection 1 open (2 instruments, first)" in log_text
    assert (tmp_path / "instruments").is_dir()
    assert ACCESS_TOKEN not in log_text
    assert ACCESS_TOKEN not in caplog.text  # the simulator's own logs (access log too)
    assert "GET / 101" in caplog.text  # logged, without its query string


def _wait_for_ticks(settings: Settings, since: int, proc: subprocess.Popen[bytes],
                    log_path: Path) -> list[Tick]:
    codec = Codec(Tick)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log_path.read_text()
        ticks = [t for t in (codec.decode(m.value())
                             for m in read_to_end(settings.kafka, Topics.TICKS))
                 if t.ingest_ts >= since and t.symbol in ("WIPRO", "HCLTECH", "NOTLISTED")]
        if len({t.symbol for t in ticks}) == 2 and len(ticks) >= 20:
            return ticks
        assert time.monotonic() < deadline, f"{len(ticks)} ticks\n{log_path.read_text()}"
        time.sleep(0.5)
