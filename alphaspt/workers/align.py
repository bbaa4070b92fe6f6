"""Tick alignment: a stage's ticks kept from running far ahead of its orders in event time.

Flink's watermark alignment, for the two stages that read ``market.ticks`` beside a
slower input derived from it (the risk manager's signals, the trading engine's decisions).
Ticks come straight from the feed; the other input comes three or four hops later, so in
a replay the ticks can be minutes of market time ahead. While the other input has messages
waiting and the ticks are more than ``ahead_ns`` ahead of it, the ticks topic is paused;
it resumes when the other input catches up, has nothing waiting, or after ``max_pause_s``
(so a stalled upstream never stops the market data). Correctness never depends on it:
each stage handles a late order by its own timestamp. It keeps the cases rare.
"""

from __future__ import annotations

import time
from typing import Protocol

from alphaspt.core.events import Topics


class _Stage(Protocol):
    def backlog(self, topic: str | None = None) -> int: ...
    def pause_input(self, topic: str) -> None: ...
    def resume_input(self, topic: str) -> None: ...


class TickAlignment:
    def __init__(self, stage: _Stage, lead: str, *, ahead_s: float,
                 max_pause_s: float = 5.0, probe_s: float = 0.05) -> None:
        self.stage = stage
        self.lead = lead
        """The input the ticks wait for."""
        self.ahead_ns = int(ahead_s * 1e9)
        self.max_pause_s = max_pause_s
        self.tick_ts = 0
        self.lead_ts = 0
        self.paused = False
        self.paused_at = 0.0
        self.probe_s = probe_s
        """The lead's backlog (a watermark lookup per partition) is asked at most this
        often while the ticks run ahead unpaused: in a replay they usually do, and asking
        on every tick was a tenth of the risk manager's time per tick."""
        self.probed_at = -probe_s

    def on_tick(self, ts: int) -> None:
        if ts > self.tick_ts:
            self.tick_ts = ts
        self._check()

    def on_lead(self, ts: int) -> None:
        self.lead_ts = max(self.lead_ts, ts)
        self._check()

    def on_idle(self) -> None:
        if self.paused and (not self.stage.backlog(self.lead) or self._overdue()):
            self._resume()

    def reset(self) -> None:
        """The stage's tasks were dropped: forget the clocks, let the ticks flow."""
        self.tick_ts = self.lead_ts = 0
        if self.paused:
            self._resume()

    def _overdue(self) -> bool:
        return time.monotonic() - self.paused_at > self.max_pause_s

    def _check(self) -> None:
        ahead = self.tick_ts - self.lead_ts > self.ahead_ns
        if ahead and not self.paused:
            now = time.monotonic()
            if now - self.probed_at < self.probe_s:
                return
            self.probed_at = now
            if self.stage.backlog(self.lead):
                self.stage.pause_input(Topics.TICKS)
                self.paused = True
                self.paused_at = now
        elif self.paused and (not ahead or self._overdue()):
            self._resume()

    def _resume(self) -> None:
        self.stage.resume_input(Topics.TICKS)
        self.paused = False
