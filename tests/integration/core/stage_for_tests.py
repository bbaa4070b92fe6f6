"""A tiny stage used by the streaming tests, runnable as a separate process.

    python stage_for_tests.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP TXID|- DELAY_S \
        [STATE_TOPIC [STALL_AT]]

It doubles each input Tick's price into an output Tick whose id derives from the input's.
A Tick whose symbol is ``POISON`` makes ``process`` raise (it must be dead-lettered).
With STATE_TOPIC, the stage counts the ticks it has seen in state kept in that topic and
puts the running count in each output's ``volume``. With STALL_AT, once the count reaches
it the stage stalls for a minute inside the open transaction, after producing that batch's
outputs and before committing: the moment a crash test kills it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Event, Tick
from alphaspt.core.streaming import Output, ProcessorConfig, StreamProcessor


class Doubler(StreamProcessor):
    stage = "doubler"

    def __init__(self, kafka: KafkaConfig, config: ProcessorConfig, in_topic: str,
                 out_topic: str, delay: float) -> None:
        super().__init__(kafka, config, {in_topic: Codec(Tick)})
        self.out_topic = out_topic
        self.delay = delay
        self.count = 0
        self.stall_at: int | None = None

    def save_state(self) -> bytes | None:
        if self.stall_at is not None and self.count >= self.stall_at:
            self.stall_at = None
            time.sleep(60)
        return str(self.count).encode() if self.config.state_topic else None

    def load_state(self, data: bytes) -> None:
        self.count = int(data)

    def process(self, topic: str, event: Event) -> Iterable[Output]:
        assert isinstance(event, Tick)
        if event.symbol == "POISON":
            raise ValueError("poison tick")
        if self.delay:
            time.sleep(self.delay)
        self.count += 1
        out = Tick(event_id=f"out-{event.event_id}", exchange_ts=event.exchange_ts,
                   symbol=event.symbol, price=event.price * 2, volume=self.count)
        yield Output(self.out_topic, event.symbol, out)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    bootstrap, in_topic, out_topic, group, txid, delay = sys.argv[1:7]
    state_topic = sys.argv[7] if len(sys.argv) > 7 else None
    stall_at = int(sys.argv[8]) if len(sys.argv) > 8 else None
    stage = Doubler(
        KafkaConfig(bootstrap_servers=bootstrap),
        ProcessorConfig(group_id=group, transactional_id=None if txid == "-" else txid,
                        batch_size=50, state_topic=state_topic),
        in_topic, out_topic, float(delay),
    )
    stage.stall_at = stall_at
    stage.install_signal_handlers()
    stage.run()


if __name__ == "__main__":
    main()
