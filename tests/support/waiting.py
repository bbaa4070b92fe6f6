"""Waiting on a condition a stage running in the background will make true."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(what: str, check: Callable[[], object], timeout: float = 45.0) -> object:
    """``check()``'s first truthy value, polled every 0.3 s; AssertionError naming ``what``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
