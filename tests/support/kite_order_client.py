"""The bare ``kiteconnect.KiteTicker`` (no AlphasPT code) in its own process: prints
``{"connected": true}`` and then every order update it hands to ``on_order_update``.

argv: ticker_root api_key access_token
"""

from __future__ import annotations

import json
import sys
from typing import Any

from kiteconnect import KiteTicker


def main() -> None:
    root, api_key, token = sys.argv[1:4]
    kws = KiteTicker(api_key, token, root=root)

    def on_connect(ws: KiteTicker, response: Any) -> None:
        print(json.dumps({"connected": True}), flush=True)

    def on_order_update(ws: KiteTicker, data: dict[str, Any]) -> None:
        print(json.dumps({"order": data}), flush=True)

    kws.on_connect = on_connect
    kws.on_order_update = on_order_update
    kws.connect()


if __name__ == "__main__":
    main()
