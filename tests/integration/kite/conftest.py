"""The Kite-protocol simulator on a free loopback port, and a logged-in Kite config.

``kite_sim`` is the fixture other Kite tests use: the running simulator, its book and
fault hooks, and ``login()`` which does the daily login through the real kiteconnect
client (``generate_session`` with the checksum) and stores the token in a 0600 file.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from alphaspt.brokers.kite import FileTokenStore
from alphaspt.brokers.kite.login import Session, exchange
from alphaspt.core.config import KiteConfig
from alphaspt.kite_sim import Book, Faults, SimServer, Simulator


@dataclass
class KiteSim:
    server: SimServer
    book: Book
    faults: Faults
    config: KiteConfig
    token_file: Path

    @property
    def api_secret(self) -> str:
        assert self.config.api_secret is not None
        return self.config.api_secret.get_secret_value()

    def login(self) -> Session:
        session = exchange(self.config, self.book.issue_request_token())
        FileTokenStore(self.token_file).write(session.access_token, session.login_time)
        return session

    def tagged(self, tag: str) -> list[dict[str, object]]:
        return [o for o in self.book.order_list() if o["tag"] == tag]


@pytest.fixture
def kite_sim(tmp_path: Path) -> Iterator[KiteSim]:
    api_key = "sim" + secrets.token_hex(4)
    api_secret = secrets.token_hex(16)
    book = Book(api_key, api_secret)
    sim = Simulator(book)
    with SimServer(sim) as server:
        config = KiteConfig(api_root=server.api_root, ticker_root=server.ticker_root,
                            api_key=api_key, api_secret=SecretStr(api_secret),
                            token_file=tmp_path / "kite-token.json", timeout_s=2.0,
                            poll_interval_s=0.2, lookup_window_s=3.0)
        assert config.token_file is not None
        yield KiteSim(server, book, sim.faults, config, config.token_file)
