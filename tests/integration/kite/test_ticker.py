"""The real kiteconnect KiteTicker (in its own process, through our feed's KiteStream)
against the simulator's ticker route: modes, the silent-stall watchdog, the limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alphaspt.kite_sim.instruments import nse_equities, nse_index
from alphaspt.kite_sim.ticker import TickerConfig
from tests.support.kite_sim_server import SimServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
SYMBOLS = ("INFY", "TCS", "RELIANCE")
INSTRUMENTS = [*nse_equities(SYMBOLS), nse_index("NIFTY 50")]
TOKENS = [i.instrument_token for i in INSTRUMENTS]
ACCESS_TOKEN = "acc-SECRET-5d1e"  # the simulator's token, asserted absent from logs


class Client:
    """The stream client subprocess; collects its JSON lines and its stderr."""

    def __init__(self, sim: SimServer, mode: str, stall_timeout: float,
                 tokens: list[int], later: list[int] | None = None,
                 access_token: str = ACCESS_TOKEN) -> None:
        self.ticks: list[tuple[float, dict[str, Any]]] = []
        self.state: dict[str, Any] = {"opened": 0, "drops": 0}
        self.switched: float | None = None
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/support/kite_stream_client.py"),
             sim.ticker_root, "kitekey", access_token, mode, str(stall_timeout),
             ",".join(map(str, tokens)),
             *([] if later is None else [",".join(map(str, later))])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.stderr = ""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            if "tick" in item:
                self.ticks.append((time.monotonic(), item["tick"]))
            elif "switched" in item:
                self.switched = time.monotonic()
            else:
                self.state = item["state"]

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait(self, what: str, cond: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert self.proc.poll() is None, f"client died: {self.stderr}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def tokens_since(self, since: float) -> set[int]:
        return {t["instrument_token"] for at, t in list(self.ticks) if at >= since}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._err.join(5)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(INSTRUMENTS, TickerConfig(interval_s=0.2),
                   authorize=lambda key, token: (key, token) == ("kitekey", ACCESS_TOKEN)
                   ) as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> Iterator[Callable[..., Client]]:
    started: list[Client] = []

    def start(mode: str, stall_timeout: float = 5.0, tokens: list[int] = TOKENS,
              **kwargs: Any) -> Client:
        c = Client(sim, mode, stall_timeout, tokens, **kwargs)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()


@pytest.mark.parametrize("mode", ["quote", "full"])
def test_subscribed_instruments_tick_in_the_mode_asked(
        sim: SimServer, client: Callable[..., Client], mode: str) -> None:
    c = client(mode)
    c.wait("ticks of every instrument", lambda: c.tokens_since(0) == set(TOKENS)
           and len(c.ticks) >= 5 * len(TOKENS))
    assert sim.hub.subscribed() == [dict.fromkeys(TOKENS, mode)]
    index_token = TOKENS[-1]

    def matches(tick: dict[str, Any], q: Any) -> bool:
        same = (tick["last_price"] == q.last_price and tick["ohlc"] == {
            "open": q.open, "high": q.high, "low": q.low, "close": q.close})
        if tick["tradable"]:
            same = same and (tick["volume_traded"], tick["last_traded_quantity"],
                             tick["average_traded_price"]) == (
                q.volume, q.last_quantity, q.average_price)
        if mode == "full":
            same = same and tick["exchange_timestamp"] == q.exchange_timestamp
            if tick["tradable"]:
                same = same and tick["depth"]["buy"] == [
                    {"price": b.price, "quantity": b.quantity, "orders": b.orders}
                    for b in q.bids] and tick["depth"]["sell"][0]["price"] == q.asks[0].price
        return same

    for _, tick in c.ticks[len(TOKENS):]:  # after the first snapshot, in the asked mode
        assert tick["mode"] == mode
        token = tick["instrument_token"]
        assert tick["tradable"] is (token != index_token)
        assert any(matches(tick, q) for q in sim.market.produced[token]), tick
        if mode == "quote":
            assert "depth" not in tick and "exchange_timestamp" not in tick
    c.stop()
    assert ACCESS_TOKEN not in c.stderr


def test_a_silent_stall_reconnects_and_resubscribes_within_the_watchdog_interval(
        sim: SimServer, client: Callable[..., Client]) -> None:
    stall_timeout = 2.0
    c = client("full", stall_timeout)
    c.wait("ticks", lambda: c.tokens_since(0) == set(TOKENS))
    assert sim.hub.accepted == 1
    assert sim.hub.stall() == 1  # the connection stays open and goes silent
    stalled = time.monotonic()
    c.wait("the watchdog's reconnect", lambda: sim.hub.accepted == 2, timeout=30)
    reconnected = time.monotonic() - stalled
    c.wait("ticks of every instrument again", lambda: c.tokens_since(stalled + 0.5)
           == set(TOKENS), timeout=30)
    resumed = time.monotonic() - stalled
    # silence noticed after stall_timeout (checked every 0.5 s); Twisted's first retry
    # after ~1.4 s; generous slack for a loaded machine, but far below "never"
    assert stall_timeout <= reconnected < stall_timeout + 0.5 + 1.4 + 6, reconnected
    assert resumed < reconnected + 5
    c.wait("the client's count", lambda: c.state["drops"] == 1 and c.state["opened"] == 2)
    open_now = sim.hub.subscribed()
    assert dict.fromkeys(TOKENS, "full") in open_now  # re-subscribed, with its mode
    assert sim.hub.subscribe_messages == 2
    c.stop()
    assert "no frame for" in c.stderr and ACCESS_TOKEN not in c.stderr


def test_no_watchdog_reconnect_while_only_heartbeats_arrive() -> None:
    # one snapshot, then a market step only every 60 s: the 1-byte heartbeats (every
    # 0.3 s) are the only frames, and they keep the connection alive
    with SimServer(INSTRUMENTS, TickerConfig(interval_s=60, heartbeat_s=0.3)) as quiet:
        c = Client(quiet, "quote", 1.0, TOKENS)
        try:
            c.wait("the snapshot", lambda: c.tokens_since(0) == set(TOKENS))
            time.sleep(4.0)
            assert c.state["drops"] == 0 and quiet.hub.accepted == 1
            assert len(c.ticks) <= 2 * len(TOKENS)  # the subscribe and mode snapshots
        finally:
            c.stop()


def test_instrument_changes_and_a_second_connection_beyond_3000(
        sim: SimServer, client: Callable[..., Client]) -> None:
    unknown = list(range(10_001 * 256 + 1, 12_999 * 256 + 1, 256))  # 2,998 not listed
    first = [*TOKENS[:2], *unknown[:2997]]  # 2,999: one connection
    later = [*TOKENS[1:], *unknown]  # drops one, adds three: 3,001, a second connection
    c = client("quote", later=later, tokens=first)
    c.wait("the switch", lambda: c.switched is not None)
    assert c.switched is not None
    # the first connection fills up to 3,000, the one left over opens a second
    c.wait("both connections subscribed",
           lambda: sorted(len(s) for s in sim.hub.subscribed()) == [1, 3000])
    assert set().union(*sim.hub.subscribed()) == set(later)
    c.wait("ticks of the instruments kept and added",
           lambda: c.tokens_since(c.switched + 1.0) == set(TOKENS[1:]))  # type: ignore[operator]
    time.sleep(1.0)
    assert c.tokens_since(c.switched + 1.0) == set(TOKENS[1:])  # none of the dropped one


def test_an_expired_token_stops_the_stream_with_a_clear_reason(
        sim: SimServer, client: Callable[..., Client]) -> None:
    c = client("quote", access_token="expired-token")
    c.wait("the failure", lambda: "failed" in c.state)
    assert "HTTP 403" in c.state["failed"] and "log in again" in c.state["failed"]
    assert sim.hub.refused == {403: 1}  # no retry loop against a refused token
    time.sleep(3)
    assert sim.hub.refused == {403: 1} and sim.hub.accepted == 0


async def test_upgrade_refused_for_a_bad_token_and_a_fourth_connection(
        sim: SimServer) -> None:
    url = sim.ticker_root
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as bad:
            await http.ws_connect(f"{url}?api_key=kitekey&access_token=wrong")
        assert bad.value.status == 403
        good = f"{url}?api_key=kitekey&access_token={ACCESS_TOKEN}"
        sockets = [await http.ws_connect(good) for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as fourth:
            await http.ws_connect(good)
        assert fourth.value.status == 429
        ws = sockets[0]
        await ws.send_str(json.dumps({"a": "subscribe", "v": list(range(257, 257 + 3005))}))
        error = await _next_text(ws)
        assert error == {"type": "error", "data": "5 instruments not subscribed: at most "
                                                  "3000 instruments per connection"}
        assert len(sim.hub.subscribed()[0]) == 3000
        await ws.send_str("{not json")
        assert (await _next_text(ws))["type"] == "error"
        sim.hub.push_order_update({"order_id": "1", "status": "OPEN"})
        assert await _next_text(sockets[1]) == {"type": "order",
                                                "data": {"order_id": "1", "status": "OPEN"}}
        for s in sockets:
            await s.close()


async def test_order_update_faults_drop_and_reorder(sim: SimServer) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{sim.ticker_root}?api_key=kitekey&access_token={ACCESS_TOKEN}")
        sim.hub.drop_order_updates(1)
        sim.hub.reorder_order_updates(3)
        for n in range(4):
            sim.hub.push_order_update({"order_id": str(n)})
        got = [(await _next_text(ws))["data"]["order_id"] for _ in range(3)]
        assert got == ["3", "2", "1"]  # "0" dropped, the next three newest first
        await ws.close()


async def _next_text(ws: aiohttp.ClientWebSocketResponse) -> Any:
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type is aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)


def test_the_real_client_receives_order_updates_dropped_and_reordered_as_armed(
        sim: SimServer) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/support/kite_order_client.py"), sim.ticker_root,
         "kitekey", ACCESS_TOKEN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"connected": True}
        deadline = time.monotonic() + 10
        while not sim.hub.connections:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        update = {"order_id": "1953341975595868160", "status": "COMPLETE", "tag": "AP01",
                  "filled_quantity": 5, "order_timestamp": "2026-12-02 10:00:00"}
        sim.hub.push_order_update(update)
        assert json.loads(proc.stdout.readline()) == {"order": update}
        sim.hub.drop_order_updates(1)
        sim.hub.reorder_order_updates(2)
        for n in range(3):
            sim.hub.push_order_update({**update, "order_id": str(n)})
        got = [json.loads(proc.stdout.readline())["order"]["order_id"] for _ in range(2)]
        assert got == ["2", "1"]
    finally:
        proc.terminate()
        proc.wait(10)
