"""Kite's order limits for one account, shared by every strategy that trades through it.

10 orders/s, 400/min and 5,000/day (kite-protocol.md §3.4; since 1 April 2026 the 10/s is
strict and account-wide). Kept as sliding windows (at most N in *any* window), because a
token bucket of 10 refilled at 10/s admits 20 in one second and Kite counts windows.
A small ``guard`` widens each window so that network jitter cannot squeeze two requests
closer together at Kite than they left here.

Bounds: each window holds at most its limit of timestamps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.times: deque[float] = deque(maxlen=limit)

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0: now)."""
        if len(self.times) < self.limit:
            return 0.0
        return max(0.0, self.times[0] + self.seconds - now)


class AccountLimiter:
    """Admits order requests of one Kite account (thread-safe)."""

    def __init__(self, per_second: int = 10, per_minute: int = 400, per_day: int = 5000, *,
                 guard: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._windows = [SlidingWindow(per_second, 1.0 + guard),
                         SlidingWindow(per_minute, 60.0 + guard)]
        self._day = SlidingWindow(per_day, 86_400.0)
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self.waited_s = 0.0
        """Total time spent waiting for a slot (for tests and metrics)."""

    def acquire(self) -> str | None:
        """Wait for a slot; ``None`` once admitted, or why not (the day's cap is reached:
        waiting would take hours, so the order is refused instead)."""
        while True:
            with self._lock:
                now = self._clock()
                if self._day.wait(now) > 0:
                    return (f"Kite's limit of {self._day.limit} orders a day is reached "
                            "for this account")
                delay = max(w.wait(now) for w in self._windows)
                if delay <= 0:
                    for w in (*self._windows, self._day):
                        w.times.append(now)
                    return None
            self.waited_s += delay
            self._sleep(delay)
