"""``alphaspt up --kite-sim``: the Kite-protocol simulator next to the pipeline.

The simulator runs inside ``up`` with a fresh API key and secret; ``up`` then does the
daily login against it exactly as ``alphaspt kite login`` does against Kite (request
token, checksum, ``generate_session``) and stores the access token in the state
directory's token file (mode 0600). Workers get only the two roots, the API key and the
token file's path; the secret never leaves this process. The strategies of the manifests
run in Live mode, so their orders go through the Kite broker.

Until the Kite live feed drives the ticks from the simulator's ticker, the simulator's
market follows ``market.ticks`` (the mock or replay feed): each tick sets the symbol's
price there, so orders fill at the prices the strategies saw.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import Consumer
from pydantic import SecretStr

from alphaspt.brokers.kite import KITE_TOKEN_FILE, FileTokenStore
from alphaspt.brokers.kite.login import exchange
from alphaspt.core.config import KafkaConfig, KiteConfig
from alphaspt.core.events import Codec, DecodeError, Tick, Topics
from alphaspt.core.specs import Mode, SecretRef
from alphaspt.kite_sim import Book, SimServer, Simulator
from alphaspt.operator.planning import StrategyResource

log = logging.getLogger(__name__)

SIM_SECRET_REF = "kite-sim"  # noqa: S105 - a Secret's name


class LocalKiteSim:
    def __init__(self, state_dir: Path) -> None:
        self.token_file = state_dir / KITE_TOKEN_FILE
        self.api_key = "sim" + secrets.token_hex(6)
        self._secret = secrets.token_hex(16)
        self.book = Book(self.api_key, self._secret)
        self.server = SimServer(Simulator(self.book))
        self._stop = threading.Event()
        self._bridge: threading.Thread | None = None

    def start(self, kafka: KafkaConfig) -> None:
        self.server.start()
        config = KiteConfig(api_root=self.server.api_root, api_key=self.api_key,
                            api_secret=SecretStr(self._secret))
        session = exchange(config, self.book.issue_request_token())
        FileTokenStore(self.token_file).write(session.access_token, session.login_time)
        self._bridge = threading.Thread(target=self._follow_ticks, args=(kafka,),
                                        name="kite-sim-ticks", daemon=True)
        self._bridge.start()

    def env(self) -> list[tuple[str, str]]:
        return [("ALPHASPT_KITE__API_ROOT", self.server.api_root),
                ("ALPHASPT_KITE__TICKER_ROOT", self.server.ticker_root),
                ("ALPHASPT_KITE__API_KEY", self.api_key),
                ("ALPHASPT_KITE__TOKEN_FILE", str(self.token_file))]

    def _follow_ticks(self, kafka: KafkaConfig) -> None:
        consumer = Consumer({**kafka.consumer_config(),
                             "group.id": f"alphaspt-kite-sim-{uuid.uuid4().hex[:8]}",
                             "auto.offset.reset": "latest", "enable.auto.commit": False})
        codec = Codec(Tick)
        try:
            consumer.subscribe([Topics.TICKS])
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.5):
                    if msg.error() is not None:
                        continue
                    try:
                        tick = codec.decode(msg.value())
                    except DecodeError:
                        continue
                    self.book.set_price(tick.symbol, tick.price)
        except Exception:  # the simulator keeps its last prices
            log.exception("kite-sim: following market.ticks failed")
        finally:
            consumer.close()

    def summary(self) -> str:
        return (f"{len(self.book.order_list())} orders, {len(self.book.trade_list())} trades "
                "at the simulator")

    def stop(self) -> None:
        self._stop.set()
        if self._bridge is not None:
            self._bridge.join(10)
        self.server.stop()


def live(strategies: Sequence[StrategyResource]) -> list[StrategyResource]:
    """The strategies in Live mode against the simulator's account."""
    return [dataclasses.replace(s, spec=s.spec.model_copy(update={
        "mode": Mode.LIVE, "broker_secret_ref": SecretRef(name=SIM_SECRET_REF)}))
        for s in strategies]
