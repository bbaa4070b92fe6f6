"""PostgreSQL and Kafka outages, noticed by probes rather than by the next resync.

:class:`OutageMonitor` runs one cheap probe per server every ``probe_interval`` seconds (a
query; a metadata request). When the set of servers that are down changes, it calls
``on_change`` (the operator reconciles every strategy, so each shows
``DatabaseUnavailable`` / ``KafkaUnavailable`` within one interval plus a reconcile, and
clears it as soon as the server answers again). The reconcilers ask :meth:`outages` before
calling a server that is known to be down, so they fail in milliseconds, not after a
15-second timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from alphaspt.exceptions import AlphasptError

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]


class OutageMonitor:
    def __init__(self, probes: Mapping[str, Probe], *, timeout: float = 3.0,
                 on_change: Callable[[], Awaitable[None]] | None = None) -> None:
        self._probes = dict(probes)
        self._timeout = timeout
        self._down: dict[str, str] = {}
        """Server -> what failed (at most one entry per probe)."""
        self.on_change = on_change

    def outages(self) -> Mapping[str, str]:
        return dict(self._down)

    async def check(self) -> bool:
        """Probe every server once; returns whether the set of outages changed."""
        before = set(self._down)
        for server, probe in self._probes.items():
            try:
                await asyncio.wait_for(probe(), self._timeout)
            except (TimeoutError, AlphasptError, OSError) as exc:
                detail = str(exc) or f"no answer within {self._timeout:.0f}s"
                if server not in self._down:
                    log.warning("%s is unavailable: %s", server, detail)
                self._down[server] = detail[:500]
            else:
                if self._down.pop(server, None) is not None:
                    log.warning("%s is available again", server)
        changed = set(self._down) != before
        if changed and self.on_change is not None:
            await self.on_change()
        return changed

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.check()
            except AlphasptError as exc:  # on_change failed (the API server): next round
                log.warning("after a change of outages: %s", exc)
            await asyncio.sleep(interval)
