"""Pure parts of the Kite broker: the account's order limiter and the token's expiry."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path

from alphaspt.brokers.kite import AccountLimiter, FileTokenStore
from alphaspt.brokers.kite.login import request_token_of
from alphaspt.brokers.kite.tokens import IST, expires_at


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_limiter_never_admits_more_than_the_limit_in_any_window() -> None:
    t = FakeTime()
    limiter = AccountLimiter(10, 400, 5000, guard=0.0, clock=t.clock, sleep=t.sleep)
    admitted = []
    for _ in range(450):
        assert limiter.acquire() is None
        admitted.append(t.now)
    for i, start in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u - start < 1.0) <= 10
        assert sum(1 for u in admitted[i:] if u - start < 60.0) <= 400
    assert admitted[-1] - admitted[0] >= 60.0  # the 401st waited for the minute


def test_limiter_refuses_beyond_the_daily_cap_instead_of_waiting() -> None:
    t = FakeTime()
    limiter = AccountLimiter(1000, 1000, 3, guard=0.0, clock=t.clock, sleep=t.sleep)
    assert [limiter.acquire() for _ in range(3)] == [None, None, None]
    reason = limiter.acquire()
    assert reason is not None and "3 orders a day" in reason
    assert t.now == 1000.0


def test_token_expires_at_the_next_0600_ist() -> None:
    assert expires_at(datetime(2026, 3, 2, 5, 59)) == datetime(2026, 3, 2, 6, 0, tzinfo=IST)
    assert expires_at(datetime(2026, 3, 2, 6, 0)) == datetime(2026, 3, 3, 6, 0, tzinfo=IST)
    assert expires_at(datetime(2026, 3, 2, 9, 30)) == datetime(2026, 3, 3, 6, 0, tzinfo=IST)


def test_token_file_is_private_and_reread_after_a_new_login(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    assert store.read() is None
    store.write("first", datetime(2026, 3, 2, 9, 0))
    assert stat.S_IMODE((tmp_path / "t.json").stat().st_mode) == 0o600
    first = store.read()
    assert first is not None and first.token == "first"
    assert first.expired(datetime(2026, 3, 3, 6, 0, tzinfo=IST))
    assert not first.expired(datetime(2026, 3, 3, 5, 59, tzinfo=IST))
    assert "first" not in repr(first)
    store.write("second", datetime(2026, 3, 3, 9, 0))
    second = store.read()
    assert second is not None and second.token == "second"


def test_request_token_from_a_pasted_redirect_url() -> None:
    url = "http://127.0.0.1:5000/?request_token=abc123&action=login&status=success"
    assert request_token_of(url) == "abc123"
    assert request_token_of("  abc123\n") == "abc123"
