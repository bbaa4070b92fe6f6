"""No query string (a token) in the API's log lines; log files 0600."""

from __future__ import annotations

import logging
import logging.config
import stat
from pathlib import Path

from uvicorn.logging import AccessFormatter

from alphaspt.api.logs import NoQueryString, log_config, strip_query
from alphaspt.local.process import ManagedProcess


def test_access_and_websocket_lines_lose_their_query_string() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/api/v1/portfolio?token=s3cret",
                                "1.1", 401), None)
    assert NoQueryString().filter(record)
    line = AccessFormatter("%(client_addr)s - \"%(request_line)s\" %(status_code)s").format(
        record)
    assert "s3cret" not in line and "/api/v1/portfolio" in line
    ws = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1,
                           '%s - "WebSocket %s" 403', ("127.0.0.1:1", "/s?token=a&b=c"), None)
    NoQueryString().filter(ws)
    assert ws.getMessage() == '127.0.0.1:1 - "WebSocket /s" 403'
    assert strip_query("GET /a?x=1 and /b?y HTTP") == "GET /a and /b HTTP"


def test_every_uvicorn_handler_has_the_filter() -> None:
    config = log_config()
    assert config["handlers"] and all("no_query_string" in h["filters"]
                                      for h in config["handlers"].values())
    logging.config.dictConfig(config)
    handler = logging.getLogger("uvicorn.access").handlers[0]
    assert any(isinstance(f, NoQueryString) for f in handler.filters)


def test_process_logs_are_private(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    log.parent.mkdir()
    log.write_text("old\n")
    log.chmod(0o644)
    proc = ManagedProcess("x", ["true"], log)
    proc.start()
    proc.stop()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
