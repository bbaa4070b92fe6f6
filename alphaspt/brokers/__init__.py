"""Brokers behind one protocol: the deterministic paper broker (and later Kite Connect)."""

from alphaspt.brokers.base import (
    Broker,
    BrokerError,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerUnavailable,
    OrderAck,
    OrderOutcomeUnknown,
    client_order_id,
    is_client_order_id,
    is_valid_tag,
)
from alphaspt.brokers.paper import PaperBroker, PaperConfig

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerOrder",
    "BrokerOrderStatus",
    "BrokerUnavailable",
    "OrderAck",
    "OrderOutcomeUnknown",
    "PaperBroker",
    "PaperConfig",
    "client_order_id",
    "is_client_order_id",
    "is_valid_tag",
]
