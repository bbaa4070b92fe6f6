"""A fake clock whose ``sleep`` advances ``monotonic``: feeds are paced without waiting."""

from __future__ import annotations

import pytest


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.ns = 1_736_000_000_000_000_000

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> int:
        self.ns += 1_000_000
        return self.ns


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
