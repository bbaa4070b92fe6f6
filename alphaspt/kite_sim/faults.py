"""Fault hooks of the simulator, armed by tests (thread-safe, each consumed when it fires).

- :meth:`Faults.accept_then_timeout`: the next placement(s) create the order, then hold
  the answer ``delay_s`` (longer than the client's timeout): the client sees a timeout for
  an order that exists, the case ``OrderOutcomeUnknown`` is for.
- :meth:`Faults.fail_next`: the next request(s) on a path prefix answer a 5xx (or any
  status) with an ``error_type``, without doing anything.
- :meth:`Faults.html_next`: the next request(s) answer a non-JSON gateway page.
Token expiry mid-session is :meth:`~alphaspt.kite_sim.book.Book.expire_sessions`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    prefix: str
    status: int
    error_type: str
    message: str
    html: bool = False


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timeouts = 0
        self.delay_s = 10.0
        self._failures: deque[Failure] = deque(maxlen=1000)

    def accept_then_timeout(self, count: int = 1, delay_s: float = 10.0) -> None:
        with self._lock:
            self._timeouts += count
            self.delay_s = delay_s

    def take_timeout(self) -> float | None:
        """The delay for this placement's answer, if one is armed."""
        with self._lock:
            if self._timeouts <= 0:
                return None
            self._timeouts -= 1
            return self.delay_s

    def fail_next(self, prefix: str = "/", *, status: int = 503, count: int = 1,
                  error_type: str = "NetworkException",
                  message: str = "Service unavailable") -> None:
        with self._lock:
            self._failures.extend([Failure(prefix, status, error_type, message)] * count)

    def html_next(self, prefix: str = "/", *, status: int = 502, count: int = 1) -> None:
        with self._lock:
            self._failures.extend([Failure(prefix, status, "", "Bad gateway", html=True)]
                                  * count)

    def take_failure(self, path: str) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if path.startswith(failure.prefix):
                    self._failures.remove(failure)
                    return failure
            return None
