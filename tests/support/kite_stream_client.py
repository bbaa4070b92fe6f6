"""Runs ``alphaspt.feeds.kite.KiteStream`` (the real KiteTicker) in its own process and
prints what it sees as JSON lines: ``{"tick": …}`` and ``{"state": …}`` every 0.2 s.

argv: ticker_root api_key access_token mode stall_timeout_s tokens [later_tokens]
(comma-separated; ``later_tokens``: the set to switch to after the first ticks)
"""

from __future__ import annotations

import json
import sys
import time

from alphaspt.feeds.kite import KiteStream, StreamConfig


def main() -> None:
    root, api_key, token, mode, stall, tokens = sys.argv[1:7]
    stream = KiteStream(StreamConfig(api_key=api_key, ticker_root=root, mode=mode,  # type: ignore[arg-type]
                                     watchdog="always", stall_timeout_s=float(stall)), token)
    stream.start([int(t) for t in tokens.split(",") if t])
    later = [int(t) for t in sys.argv[7].split(",") if t] if len(sys.argv) > 7 else None
    while True:
        try:
            got = stream.get(0.2)
        except Exception as exc:  # the test reads why
            print(json.dumps({"state": {"failed": str(exc)}}), flush=True)
            time.sleep(0.2)
            continue
        if got and later is not None:
            print(json.dumps({"switched": later}), flush=True)
            stream.update(later)
            later = None
        for tick in got:
            tick.pop("received_ns")
            print(json.dumps({"tick": tick}, default=lambda d: int(d.timestamp())), flush=True)
        print(json.dumps({"state": {"opened": stream.opened, "drops": stream.watchdog_drops,
                                    "time": time.monotonic()}}), flush=True)


if __name__ == "__main__":
    main()
