"""Client order ids: deterministic, unique per signal, valid Kite order tags."""

from __future__ import annotations

import pytest

from alphaspt.brokers.base import (
    BrokerOrderStatus,
    OrderOutcomeUnknown,
    client_order_id,
    is_client_order_id,
    is_valid_tag,
)
from alphaspt.core.events import stable_id
from alphaspt.exceptions import TemporaryFailure


def test_deterministic_twenty_alphanumeric_chars() -> None:
    sid = stable_id("momo", "RELIANCE", 1_700_000_000_000_000_000)
    cid = client_order_id(sid)
    assert cid == client_order_id(sid)
    assert len(cid) == 20
    assert cid.isalnum()
    assert cid.isascii()
    assert cid.startswith("AP")
    assert is_valid_tag(cid)
    assert is_client_order_id(cid)


def test_pinned_value() -> None:
    # Pinned: changing the derivation would orphan every open order across an upgrade.
    assert client_order_id("sig-1") == "APe26001c42045e7f50c"


def test_distinct_signals_distinct_ids() -> None:
    ids = {client_order_id(f"signal-{i}") for i in range(50_000)}
    assert len(ids) == 50_000


def test_long_and_unicode_signal_ids_still_make_valid_tags() -> None:
    assert is_valid_tag(client_order_id("x" * 10_000))
    assert is_valid_tag(client_order_id("सिग्नल-₹"))
    with pytest.raises(ValueError, match="empty"):
        client_order_id("")


def test_foreign_tags_are_not_ours() -> None:
    assert not is_client_order_id(None)
    assert not is_client_order_id("manualorder")
    assert not is_client_order_id("AP" + "g" * 18)
    assert not is_valid_tag("")
    assert not is_valid_tag("has space")


def test_status_and_unknown_outcome() -> None:
    assert not BrokerOrderStatus.OPEN.terminal
    assert BrokerOrderStatus.REJECTED.terminal
    exc = OrderOutcomeUnknown("AP123")
    assert isinstance(exc, TemporaryFailure)
    assert exc.client_order_id == "AP123"
    assert "AP123" in str(exc)
